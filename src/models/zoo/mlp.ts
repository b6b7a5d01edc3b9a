/**
 * MLP for tabular data: `features` float32 [batch, input_size] -> hidden Linear+activation layers -> `logits`.
 * Parameters `layers.<i>.weight|bias` ([in, out] in the graph) and `classifier.weight|bias`. Initialised like
 * PyTorch's nn.Linear (uniform in ±1/√fan_in), which trains better than BERT's N(0, 0.02) for small nets.
 */
import { ConfigError } from '../../errors.ts';
import { GraphBuilder } from '../../onnx/builder.ts';
import type { Model } from '../model.ts';
import { renameLastOutput } from './bert.ts';
import { ParamContext, type WeightSource } from './params.ts';

export interface MlpConfig {
  model_type: 'mlp';
  input_size: number;
  hidden_sizes: number[];
  num_labels: number;
  activation: 'relu' | 'gelu' | 'tanh';
  id2label?: Record<string, string>;
}

export interface BuildOptions {
  seed?: number;
  weights?: WeightSource;
  trainable?: (path: string) => boolean;
}

function checkPositive(v: unknown, field: string): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1)
    throw new ConfigError(`MLP config: '${field}' must be a positive integer, found ${JSON.stringify(v)}`, { field });
}

/** An MlpConfig with defaults (hidden [64], relu, 2 labels). */
export function mlpConfig(c: Partial<MlpConfig> & { input_size: number }): MlpConfig {
  const cfg: MlpConfig = { model_type: 'mlp', hidden_sizes: [64], num_labels: 2, activation: 'relu', ...c };
  checkPositive(cfg.input_size, 'input_size');
  checkPositive(cfg.num_labels, 'num_labels');
  cfg.hidden_sizes.forEach((h, i) => checkPositive(h, `hidden_sizes[${i}]`));
  if (!['relu', 'gelu', 'tanh'].includes(cfg.activation))
    throw new ConfigError(`MLP config: activation '${cfg.activation}' is not one of relu, gelu, tanh`, {
      field: 'activation',
    });
  return cfg;
}

/** Builds the MLP as a Model. */
export function buildMlp(config: MlpConfig, opts: BuildOptions = {}): Model {
  const c = mlpConfig(config);
  const b = new GraphBuilder('mlp');
  const ctx = new ParamContext(b, opts.seed ?? 0, opts.weights, opts.trainable);
  let x = b.input('features', 'float32', ['batch', c.input_size]);
  let width = c.input_size;
  c.hidden_sizes.forEach((h, i) => {
    const bound = 1 / Math.sqrt(width);
    const path = `layers.${i}`;
    const y = ctx.linear(x, path, width, h, { kind: 'uniform', bound }, { kind: 'uniform', bound });
    x = b.scope(`${path}.activation`, () => {
      if (c.activation === 'relu') return b.relu(y);
      if (c.activation === 'tanh') return b.tanh(y);
      return b.mul(b.mul(y, b.add(b.erf(b.div(y, b.scalar(Math.SQRT2))), b.scalar(1))), b.scalar(0.5));
    });
    width = h;
  });
  const bound = 1 / Math.sqrt(width);
  b.output(
    b.identity(
      ctx.linear(x, 'classifier', width, c.num_labels, { kind: 'uniform', bound }, { kind: 'uniform', bound }),
    ),
    'float32',
    ['batch', c.num_labels],
  );
  renameLastOutput(b, 'logits');
  return {
    architecture: 'mlp',
    task: 'tabular-classification',
    graph: b.graph,
    params: ctx.params,
    config: { ...c },
    labels: Array.from({ length: c.num_labels }, (_, i) => c.id2label?.[String(i)] ?? `LABEL_${i}`),
    source: { kind: 'zoo' },
    ...(ctx.newlyInitialized.length ? { newlyInitialized: ctx.newlyInitialized } : {}),
  };
}
