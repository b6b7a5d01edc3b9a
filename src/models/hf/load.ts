/**
 * Hugging Face model folders as transformers.js and the hub lay them out:
 *   config.json, tokenizer.json (+ tokenizer_config.json), and model.safetensors and/or onnx/model.onnx.
 * Two routes: safetensors weights are loaded into the zoo architecture named by config.json (PyTorch [out, in]
 * linear weights transposed into the graph's [in, out]); an ONNX export is used as is, its parameters recovered
 * by module path from node names (names.ts). `saveHfModel` writes the same layout back.
 */
import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ConfigError, ModelFileError } from '../../errors.ts';
import { GraphBuilder } from '../../onnx/builder.ts';
import type { DType } from '../../onnx/dtype.ts';
import { readModel, tempName, writeModel } from '../../onnx/io.ts';
import { cloneGraph, type Graph, type Tensor } from '../../onnx/ir.ts';
import { encodeSafetensors, readSafetensors } from '../../onnx/safetensors.ts';
import { tensorFromArray, tensorToArray } from '../../onnx/tensor.ts';
import {
  fromPyTorchLayout,
  paramValues,
  pytorchShape,
  toOnnxModel,
  toPyTorchLayout,
  type Model,
  type ModelTask,
} from '../model.ts';
import {
  buildBert,
  configLabels,
  parseBertConfig,
  renameLastOutput,
  taskFromArchitectures,
  type BertTask,
} from '../zoo/bert.ts';
import type { WeightSource } from '../zoo/params.ts';
import { recoverParams } from './names.ts';
import { readJson, TextTokenizer } from './tokenizer.ts';

export interface LoadHfOptions {
  /** Head to build (safetensors route) or expect (ONNX route); default from config.json `architectures`. */
  task?: BertTask;
  /** Which weights to use when a folder has both (default: safetensors, the trainable zoo architecture). */
  prefer?: 'safetensors' | 'onnx';
  /** Seed for parameters the checkpoint lacks (a new classification head). */
  seed?: number;
  /** Skip the tokenizer (default: loaded when tokenizer.json exists, and required by text models). */
  tokenizer?: boolean;
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

/** The ONNX file of a folder: onnx/model.onnx (transformers.js) or model.onnx at the top. */
async function findOnnx(dir: string): Promise<string | undefined> {
  for (const f of [join(dir, 'onnx', 'model.onnx'), join(dir, 'model.onnx')]) if (await exists(f)) return f;
  return undefined;
}

/** Architectures by config.json `model_type`. */
const SUPPORTED = ['bert'];

/** Reads config.json and checks its `model_type`. */
export async function readHfConfig(dir: string): Promise<Record<string, unknown>> {
  const file = join(dir, 'config.json');
  if (!(await exists(file)))
    throw new ModelFileError(`${file}: file not found (a Hugging Face model folder needs config.json)`, {
      file,
      field: 'config.json',
    });
  const raw = await readJson(file);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new ModelFileError(`${file}: expected a JSON object`, { file });
  const cfg = raw as Record<string, unknown>;
  if (typeof cfg.model_type !== 'string')
    throw new ModelFileError(`${file}: field 'model_type' is missing`, { file, field: 'model_type' });
  if (!SUPPORTED.includes(cfg.model_type)) {
    throw new ModelFileError(
      `${file}: model_type '${cfg.model_type}' is not supported (supported: ${SUPPORTED.join(', ')})`,
      { file, field: 'model_type', value: cfg.model_type },
    );
  }
  return cfg;
}

/** Loads a Hugging Face model folder (safetensors or ONNX route) with its tokenizer. */
export async function loadHfModel(dir: string, opts: LoadHfOptions = {}): Promise<Model> {
  const cfg = await readHfConfig(dir);
  const st = join(dir, 'model.safetensors');
  const hasSt = await exists(st);
  const onnx = await findOnnx(dir);
  if (!hasSt && !onnx) {
    throw new ModelFileError(`${dir}: no weights: expected model.safetensors or onnx/model.onnx`, {
      file: dir,
      field: 'model.safetensors',
    });
  }
  let tokenizer: TextTokenizer | undefined;
  if (opts.tokenizer !== false) {
    if (!(await exists(join(dir, 'tokenizer.json')))) {
      throw new ModelFileError(`${join(dir, 'tokenizer.json')}: file not found (text models need their tokenizer)`, {
        file: join(dir, 'tokenizer.json'),
        field: 'tokenizer.json',
      });
    }
    tokenizer = await TextTokenizer.fromDir(dir);
  }
  const useOnnx = onnx !== undefined && (!hasSt || opts.prefer === 'onnx');
  const model = useOnnx
    ? await loadOnnxRoute(onnx, cfg, join(dir, 'config.json'), opts)
    : await loadSafetensorsRoute(st, cfg, join(dir, 'config.json'), opts);
  return {
    ...model,
    ...(tokenizer ? { tokenizer } : {}),
    source: { kind: useOnnx ? 'onnx' : 'safetensors', path: dir },
  };
}

function toFloat32(t: Tensor, file: string): Float32Array {
  const a = tensorToArray(t);
  if (t.dtype === 'float32') return a as Float32Array;
  const out = new Float32Array(a.length);
  if (t.dtype === 'float64') {
    out.set(a as Float64Array);
  } else if (t.dtype === 'bfloat16') {
    const u = new Uint32Array(out.buffer);
    const src = a as Uint16Array;
    for (let i = 0; i < src.length; i++) u[i] = src[i] << 16;
  } else if (t.dtype === 'float16') {
    const src = a as Uint16Array;
    for (let i = 0; i < src.length; i++) out[i] = halfToFloat(src[i]);
  } else {
    throw new ModelFileError(`${file}: tensor '${t.name}' has dtype ${t.dtype}; weights must be floating point`, {
      file,
      field: t.name,
    });
  }
  return out;
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/** Heads a base checkpoint may lack; HF initialises them fresh, and so do we. */
const MAY_BE_NEW = /^(classifier|(bert\.)?pooler)\./;

async function loadSafetensorsRoute(
  file: string,
  rawCfg: Record<string, unknown>,
  cfgFile: string,
  opts: LoadHfOptions,
): Promise<Model> {
  const config = parseBertConfig(rawCfg, cfgFile);
  const { tensors } = await readSafetensors(file);
  const task = opts.task ?? taskFromArchitectures(config);
  const keyFor = (path: string): string | undefined => {
    const cands = [path, path.replace(/^bert\./, ''), `bert.${path}`];
    for (const c of [...cands]) if (c.endsWith('LayerNorm.weight')) cands.push(c.replace(/weight$/, 'gamma'));
    for (const c of [...cands]) if (c.endsWith('LayerNorm.bias')) cands.push(c.replace(/bias$/, 'beta'));
    return cands.find((c) => tensors.has(c));
  };
  const source: WeightSource = (path, shape, layout) => {
    const key = keyFor(path);
    if (!key) {
      if (MAY_BE_NEW.test(path)) return undefined;
      throw new ModelFileError(
        `${file}: tensor '${path}' is missing (config.json describes ${config.num_hidden_layers} layers of hidden_size ${config.hidden_size})`,
        { file, field: path },
      );
    }
    const t = tensors.get(key) as Tensor;
    const expected = layout === 'in_out' ? [shape[1], shape[0]] : [...shape];
    if (t.dims.length !== expected.length || t.dims.some((d, i) => d !== expected[i])) {
      // A head with another label count is replaced, as HF does with ignore_mismatched_sizes.
      if (MAY_BE_NEW.test(path) && path.startsWith('classifier.') && opts.task !== undefined) return undefined;
      throw new ModelFileError(
        `${file}: tensor '${key}' has shape [${t.dims.join(', ')}] but ${basename(cfgFile)} implies [${expected.join(', ')}] ` +
          `(${shapeFields(path)})`,
        { file, field: key, details: { expected, found: t.dims, configFields: shapeFields(path) } },
      );
    }
    const v = toFloat32(t, file);
    return fromPyTorchLayout(
      { path, initializer: path, dtype: 'float32', shape: [...shape], trainable: true, role: 'weight', layout },
      v,
    ) as Float32Array;
  };
  return buildBert(config, { task, seed: opts.seed, weights: source });
}

/** The config.json fields a BERT parameter's shape follows from, for error messages. */
function shapeFields(path: string): string {
  if (path.includes('word_embeddings')) return 'vocab_size, hidden_size';
  if (path.includes('position_embeddings')) return 'max_position_embeddings, hidden_size';
  if (path.includes('token_type_embeddings')) return 'type_vocab_size, hidden_size';
  if (path.includes('intermediate') || (/\.output\.dense/.test(path) && !path.includes('attention')))
    return 'hidden_size, intermediate_size';
  if (path.startsWith('classifier')) return 'hidden_size, num_labels';
  return 'hidden_size';
}

async function loadOnnxRoute(
  file: string,
  rawCfg: Record<string, unknown>,
  cfgFile: string,
  opts: LoadHfOptions,
): Promise<Model> {
  const config = parseBertConfig(rawCfg, cfgFile);
  const onnx = await readModel(file);
  const graph = onnx.graph;
  const params = recoverParams(graph);
  // The shapes config.json promises must be the graph's, or tokenizer ids and heads would silently disagree.
  const word = [...params.values()].find((p) => p.path.endsWith('embeddings.word_embeddings.weight'));
  if (word && (word.shape[0] !== config.vocab_size || word.shape[1] !== config.hidden_size)) {
    throw new ModelFileError(
      `${file}: '${word.path}' has shape [${word.shape.join(', ')}] but ${basename(cfgFile)} says vocab_size ${config.vocab_size}, hidden_size ${config.hidden_size}`,
      {
        file: cfgFile,
        field: word.shape[0] !== config.vocab_size ? 'vocab_size' : 'hidden_size',
        details: { found: word.shape },
      },
    );
  }
  const outputs = graph.outputs.map((o) => o.name);
  let task: ModelTask = opts.task ?? taskFromArchitectures(config);
  let g = graph;
  if (task === 'sentence-embedding' && !outputs.includes('sentence_embedding')) {
    if (!outputs.includes('last_hidden_state')) {
      throw new ModelFileError(
        `${file}: the graph has neither 'sentence_embedding' nor 'last_hidden_state' among its outputs [${outputs.join(', ')}]`,
        { file, field: 'outputs' },
      );
    }
    g = appendMeanPooling(graph);
  } else if (task !== 'sentence-embedding' && !outputs.includes('logits')) {
    if (outputs.includes('last_hidden_state') && opts.task === undefined) task = 'feature-extraction';
    else
      throw new ModelFileError(
        `${file}: a ${task} model needs a 'logits' output; the graph has [${outputs.join(', ')}]`,
        { file, field: 'outputs' },
      );
  }
  const hasHead = task === 'sequence-classification' || task === 'token-classification';
  return {
    architecture: 'bert',
    task,
    graph: g,
    params,
    config: { ...config },
    ...(hasHead ? { labels: configLabels(config) } : {}),
    source: { kind: 'onnx', path: file },
    opsets: onnx.opsetImports,
  };
}

/** Adds a `sentence_embedding` output: the attention-mask-weighted mean of `last_hidden_state`. */
export function appendMeanPooling(graph: Graph): Graph {
  const g = cloneGraph(graph);
  const b = new GraphBuilder(g);
  const hidden = 'last_hidden_state';
  const pooled = b.scope('pooling', () => {
    const m = b.unsqueeze(b.cast('attention_mask', 'float32'), [2]);
    const summed = b.reduceSum(b.mul(hidden, m), [1], false);
    const count = b.op('Max', [b.reduceSum(m, [1], false), b.scalar(1e-9)]);
    return b.div(summed, count);
  });
  const hOut = g.outputs.find((o) => o.name === hidden);
  const dim = hOut?.shape?.[2];
  b.output(pooled, 'float32', ['batch', typeof dim === 'number' ? dim : 'hidden']);
  renameLastOutput(b, 'sentence_embedding');
  return g;
}

/** The config.json to write for a model (HF's fields plus architectures and the label maps). */
export function hfConfigFor(model: Model): Record<string, unknown> {
  const cfg: Record<string, unknown> = { ...model.config };
  const arch: Partial<Record<ModelTask, string>> = {
    'sequence-classification': 'BertForSequenceClassification',
    'token-classification': 'BertForTokenClassification',
    'sentence-embedding': 'BertModel',
    'feature-extraction': 'BertModel',
  };
  if (model.architecture === 'bert' && arch[model.task]) cfg.architectures = [arch[model.task]];
  if (model.labels) {
    cfg.num_labels = model.labels.length;
    cfg.id2label = Object.fromEntries(model.labels.map((l, i) => [String(i), l]));
    cfg.label2id = Object.fromEntries(model.labels.map((l, i) => [l, i]));
  }
  return cfg;
}

/** The model's parameters as PyTorch-layout tensors keyed by state-dict name (buffers included). */
export function stateDict(model: Model): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const p of model.params.values()) {
    const v = toPyTorchLayout(p, paramValues(model, p.path));
    out.set(p.path, tensorFromArray(p.path, p.dtype as DType, v, pytorchShape(p)));
  }
  return out;
}

export interface SaveHfOptions {
  /** 'safetensors' (default) writes model.safetensors; 'onnx' writes onnx/model.onnx; 'both' writes both. */
  format?: 'safetensors' | 'onnx' | 'both';
  /** Replace an existing folder (default false: an existing folder is an error). */
  overwrite?: boolean;
}

/**
 * Writes a model as a Hugging Face folder (config.json, tokenizer files, weights). The folder is assembled under
 * a temporary name next to `dir` and renamed into place, so readers never see half a model.
 */
export async function saveHfModel(model: Model, dir: string, opts: SaveHfOptions = {}): Promise<void> {
  if ((await exists(dir)) && !opts.overwrite)
    throw new ConfigError(`${dir} already exists (pass overwrite to replace it)`, { file: dir });
  const format = opts.format ?? 'safetensors';
  await mkdir(dirname(dir), { recursive: true });
  const tmp = tempName(dir, 'hf');
  await mkdir(tmp, { recursive: true });
  try {
    await writeFile(join(tmp, 'config.json'), JSON.stringify(hfConfigFor(model), null, 2) + '\n');
    if (model.tokenizer) {
      await writeFile(join(tmp, 'tokenizer.json'), JSON.stringify(model.tokenizer.json));
      await writeFile(join(tmp, 'tokenizer_config.json'), JSON.stringify(model.tokenizer.config, null, 2) + '\n');
    }
    if (format !== 'onnx')
      await writeFile(join(tmp, 'model.safetensors'), encodeSafetensors(stateDict(model), { format: 'pt' }));
    if (format !== 'safetensors') {
      await mkdir(join(tmp, 'onnx'));
      await writeModel(toOnnxModel(model), join(tmp, 'onnx', 'model.onnx'));
    }
    if (await exists(dir)) await rm(dir, { recursive: true, force: true });
    await rename(tmp, dir);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}
