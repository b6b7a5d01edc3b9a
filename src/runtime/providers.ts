/**
 * Which execution providers this onnxruntime-node install can use. The npm package bundles CPU (and WebGPU on most
 * platforms); CUDA/TensorRT are listed but their libraries are downloaded by the package's install script, which
 * Tailor's `.npmrc` skips. Checking here turns ORT's "Failed to load shared library" into a message that says how
 * to get the provider.
 */
import { createRequire } from 'node:module';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { ConfigError, RuntimeError } from '../errors.ts';

export type ExecutionProvider = 'cpu' | 'cuda' | 'webgpu' | 'dml' | 'coreml' | 'tensorrt';

export interface ProviderInfo {
  name: string;
  /** Shipped inside the npm package (true) or downloaded by its install script (false). */
  bundled: boolean;
  /** Usable now: bundled, or its libraries are present. WebGPU still needs an adapter at session creation. */
  installed: boolean;
}

const require = createRequire(import.meta.url);

/** The folder that holds this platform's ORT binaries (where the install script puts the CUDA libraries). */
export function ortBinaryDir(): string {
  const pkg = path.dirname(require.resolve('onnxruntime-node/package.json'));
  return path.join(pkg, 'bin', 'napi-v6', os.platform(), os.arch());
}

const PROVIDER_LIBS: Record<string, string[]> = {
  cuda: ['libonnxruntime_providers_shared.so', 'libonnxruntime_providers_cuda.so'],
  tensorrt: ['libonnxruntime_providers_shared.so', 'libonnxruntime_providers_tensorrt.so'],
};

/** The execution providers this install lists, and whether each is actually installed. */
export function listProviders(): ProviderInfo[] {
  const dir = ortBinaryDir();
  return ort.listSupportedBackends().map((b) => ({
    name: b.name,
    bundled: b.bundled,
    installed: b.bundled || (PROVIDER_LIBS[b.name] ?? []).every((f) => fs.existsSync(path.join(dir, f))),
  }));
}

const HOW_TO: Record<string, string> = {
  cuda:
    'Reinstall onnxruntime-node with its CUDA 12 binaries on a Linux x64 machine with CUDA 12 and cuDNN 9: ' +
    '`ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node` (or `npm install --onnxruntime-node-install=cuda12`; ' +
    "Tailor's .npmrc sets onnxruntime-node-install=skip, which must be overridden). See docs/runtime.md.",
  tensorrt:
    'TensorRT comes with the CUDA binaries: `ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node`, plus a TensorRT install. See docs/runtime.md.',
  webgpu:
    'WebGPU is bundled on Windows, macOS and Linux x64; it also needs a GPU adapter (Vulkan/Metal/D3D12 drivers).',
  dml: 'DirectML is only available on Windows.',
  coreml: 'CoreML is only available on macOS.',
};

/**
 * Throws a RuntimeError for the first requested provider this install cannot use, naming the provider and how to
 * get it. 'cpu' is always available.
 */
export function assertProvidersAvailable(requested: readonly string[]): void {
  const info = new Map(listProviders().map((p) => [p.name, p]));
  const platform = `${os.platform()}/${os.arch()}`;
  for (const p of requested) {
    if (p === 'cpu') continue;
    const i = info.get(p);
    if (!i) {
      throw new RuntimeError(
        `execution provider '${p}' is not available in this onnxruntime-node build on ${platform} ` +
          `(available: ${[...info.keys()].join(', ')}). ${HOW_TO[p] ?? ''}`.trim(),
        { value: p },
      );
    }
    if (!i.installed) {
      throw new RuntimeError(
        `execution provider '${p}' is supported on ${platform} but its libraries are not installed in ${ortBinaryDir()}. ${HOW_TO[p] ?? ''}`.trim(),
        { value: p },
      );
    }
  }
}

/** A RuntimeError for ORT failing to initialise a provider that looked installed (no GPU, driver mismatch). */
export function providerInitError(provider: string, label: string, cause: unknown): RuntimeError {
  return new RuntimeError(
    `execution provider '${provider}' failed to start for ${label}: ${(cause as Error).message.trim()}. ${HOW_TO[provider] ?? ''}`.trim(),
    { value: provider },
    { cause },
  );
}

/** The providers for a `--device` name (cpu, cuda, webgpu); a ConfigError names an unknown device. */
export function providersForDevice(device: string | undefined): ExecutionProvider[] {
  switch (device ?? 'cpu') {
    case 'cpu':
      return ['cpu'];
    case 'cuda':
      return ['cuda'];
    case 'webgpu':
      return ['webgpu'];
    default:
      throw new ConfigError(`unknown --device '${device}' (cpu, cuda, webgpu)`, { field: 'device', value: device });
  }
}
