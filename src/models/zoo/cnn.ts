/**
 * Small ResNet-style CNN for images: `pixel_values` float32 [batch, channels, H, W] -> 3x3 conv stem + BatchNorm +
 * ReLU -> stages of basic residual blocks (conv-bn-relu-conv-bn + shortcut, a 1x1 conv+bn shortcut when the stride
 * or width changes) -> global average pool -> `fc` -> `logits`. Parameter names follow torchvision's ResNet
 * (`conv1`, `bn1`, `layer1.0.conv1`, `layer1.0.downsample.0`, `fc`), so checkpoints map by name.
 * BatchNorm runs on its running statistics (inference form); `running_mean`/`running_var` are buffers
 * (never trainable). Training in batch-statistics mode is the training graph's business.
 */
import { ConfigError } from '../../errors.ts';
import { GraphBuilder } from '../../onnx/builder.ts';
import type { Model } from '../model.ts';
import { renameLastOutput } from './bert.ts';
import type { BuildOptions } from './mlp.ts';
import { ParamContext } from './params.ts';

export interface CnnStage {
  channels: number;
  blocks: number;
  stride: number;
}

export interface CnnConfig {
  model_type: 'cnn';
  num_channels: number;
  stem_channels: number;
  stages: CnnStage[];
  num_labels: number;
  batch_norm_eps: number;
  id2label?: Record<string, string>;
}

/** A CnnConfig with defaults: 3 channels, stem 16, stages 16/32/64 with one block each, 10 labels. */
export function cnnConfig(c: Partial<CnnConfig> = {}): CnnConfig {
  const cfg: CnnConfig = {
    model_type: 'cnn',
    num_channels: 3,
    stem_channels: 16,
    num_labels: 10,
    batch_norm_eps: 1e-5,
    stages: [
      { channels: 16, blocks: 1, stride: 1 },
      { channels: 32, blocks: 1, stride: 2 },
      { channels: 64, blocks: 1, stride: 2 },
    ],
    ...c,
  };
  for (const k of ['num_channels', 'stem_channels', 'num_labels'] as const) {
    if (!Number.isInteger(cfg[k]) || cfg[k] < 1)
      throw new ConfigError(`CNN config: '${k}' must be a positive integer, found ${String(cfg[k])}`, { field: k });
  }
  cfg.stages.forEach((s, i) => {
    if (![s.channels, s.blocks, s.stride].every((v) => Number.isInteger(v) && v >= 1)) {
      throw new ConfigError(`CNN config: stages[${i}] needs positive integer channels, blocks and stride`, {
        field: `stages[${i}]`,
      });
    }
  });
  return cfg;
}

/** Builds the CNN as a Model. */
export function buildCnn(config: CnnConfig, opts: BuildOptions = {}): Model {
  const c = cnnConfig(config);
  const b = new GraphBuilder('cnn');
  const ctx = new ParamContext(b, opts.seed ?? 0, opts.weights, opts.trainable);

  const conv = (x: string, path: string, cin: number, cout: number, k: number, stride: number): string => {
    // torchvision: kaiming normal, fan_out, relu gain.
    const w = ctx.param(`${path}.weight`, {
      shape: [cout, cin, k, k],
      role: 'weight',
      init: { kind: 'normal', std: Math.sqrt(2 / (cout * k * k)) },
    });
    const p = (k - 1) / 2;
    return b.scope(path, () =>
      b.op('Conv', [x, w], { kernel_shape: [k, k], strides: [stride, stride], pads: [p, p, p, p] }),
    );
  };
  const bn = (x: string, path: string, ch: number): string => {
    const w = ctx.param(`${path}.weight`, { shape: [ch], role: 'norm', init: { kind: 'ones' } });
    const bias = ctx.param(`${path}.bias`, { shape: [ch], role: 'norm', init: { kind: 'zeros' } });
    const mean = ctx.param(`${path}.running_mean`, { shape: [ch], role: 'buffer', init: { kind: 'zeros' } });
    const variance = ctx.param(`${path}.running_var`, { shape: [ch], role: 'buffer', init: { kind: 'ones' } });
    // ONNX momentum weighs the old statistic: 1 - PyTorch's 0.1.
    return b.scope(path, () =>
      b.op('BatchNormalization', [x, w, bias, mean, variance], { epsilon: c.batch_norm_eps, momentum: 0.9 }),
    );
  };

  let x = b.input('pixel_values', 'float32', ['batch', c.num_channels, 'height', 'width']);
  x = b.scope('relu', () =>
    b.relu(bn(conv(x, 'conv1', c.num_channels, c.stem_channels, 3, 1), 'bn1', c.stem_channels)),
  );
  let ch = c.stem_channels;
  c.stages.forEach((s, si) => {
    for (let bi = 0; bi < s.blocks; bi++) {
      const P = `layer${si + 1}.${bi}`;
      const stride = bi === 0 ? s.stride : 1;
      const input = x;
      let y = b.scope(`${P}.relu`, () =>
        b.relu(bn(conv(input, `${P}.conv1`, ch, s.channels, 3, stride), `${P}.bn1`, s.channels)),
      );
      y = bn(conv(y, `${P}.conv2`, s.channels, s.channels, 3, 1), `${P}.bn2`, s.channels);
      const shortcut =
        stride !== 1 || ch !== s.channels
          ? bn(conv(input, `${P}.downsample.0`, ch, s.channels, 1, stride), `${P}.downsample.1`, s.channels)
          : input;
      x = b.scope(P, () => b.relu(b.add(y, shortcut)));
      ch = s.channels;
    }
  });
  const pooled = b.scope('avgpool', () => b.op('Flatten', [b.op('GlobalAveragePool', [x])], { axis: 1 }));
  const bound = 1 / Math.sqrt(ch);
  b.output(
    b.identity(ctx.linear(pooled, 'fc', ch, c.num_labels, { kind: 'uniform', bound }, { kind: 'uniform', bound })),
    'float32',
    ['batch', c.num_labels],
  );
  renameLastOutput(b, 'logits');
  return {
    architecture: 'cnn',
    task: 'image-classification',
    graph: b.graph,
    params: ctx.params,
    config: { ...c },
    labels: Array.from({ length: c.num_labels }, (_, i) => c.id2label?.[String(i)] ?? `LABEL_${i}`),
    source: { kind: 'zoo' },
    ...(ctx.newlyInitialized.length ? { newlyInitialized: ctx.newlyInitialized } : {}),
  };
}
