/**
 * USE-lite import: Tailor's ONNX rebuild (run in onnxruntime-node) against the original TF.js graph (run with
 * @tensorflow/tfjs, fed the sparse indices/values the package's own pipeline builds), the tokenizer against the
 * package's own tokenizer (@energetic-ai/embeddings), the cache, and bad package files.
 * TF.js runs on its wasm backend: the pure-JS cpu backend needs ~80 s for 64 sentences on this machine.
 */
import assert from 'node:assert/strict';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildGradientGraph } from '../../src/autodiff/index.ts';
import { ModelFileError } from '../../src/errors.ts';
import { GraphBuilder } from '../../src/onnx/builder.ts';
import { cloneGraph, modelFromGraph, type Graph } from '../../src/onnx/ir.ts';
import { tensorFromArray, tensorToArray } from '../../src/onnx/tensor.ts';
import {
  loadUseLite,
  locateUseLitePackage,
  readTfGraphModel,
  readVocab,
  useLiteCacheDir,
  type LoadedUseLite,
  type VocabEntry,
} from '../../src/models/use/index.ts';
import { Session, ort } from '../../src/runtime/session.ts';
import { loadTfModel, referenceTokenizer, tfEmbed, useTfBackend } from './use-lite.reference.ts';
import { clincPath } from '../clinc150.ts';

const pkg = locateUseLitePackage();
const tmpRoot = mkdtempSync(path.join(os.tmpdir(), 'tailor-use-lite-'));

const SENTENCES = [
  'hello world',
  'Hello, World!',
  'what is my checking account balance',
  'The quick brown fox jumps over the lazy dog.',
  'i need to book a flight from new york to san francisco next tuesday morning',
  'Can you set an alarm for 6:30 am?',
  'My meeting is at 10:30, remind me at 10:00.',
  'visit https://example.com/path?q=1 for details',
  'email me at someone@example.org :)',
  '',
  '   ',
  ' leading and trailing spaces ',
  'double  spaces   everywhere',
  'tabs\tand\nnewlines',
  '?',
  '...',
  '!!!???',
  'a',
  'I',
  '42',
  '3.14159 is pi, 2.71828 is e',
  '$100.00 & 50% off — today only!',
  '"quoted" and \'single quoted\' text',
  '(parentheses) [brackets] {braces} <angles>',
  'C++ / C# / F# / Objective-C',
  'Ünïcödé façade naïve café crème brûlée',
  'Straße und Grüße aus München',
  '¿Dónde está la biblioteca?',
  'Привет, как дела?',
  'Γειά σου κόσμε',
  'مرحبا بالعالم',
  'नमस्ते दुनिया',
  '日本語のテキストです',
  '中文句子测试',
  '한국어 문장',
  'emoji 😀🎉 party 🚀',
  'ﬁne ＦＵＬＬ　ｗｉｄｔｈ text',
  '① ② ③ circled numbers',
  'x² + y² = z²',
  'naïve vs naive',
  '\uFFFD replacement char',
  '<s> </s> extra_token_id_1',
  'ALL CAPS SENTENCE SHOUTING',
  'mIxEd CaSe SeNtEnCe',
  'dont cant wont shouldnt',
  "don't can't won't shouldn't",
  'the the the the the the the the',
  'supercalifragilisticexpialidocious antidisestablishmentarianism',
  'pneumonoultramicroscopicsilicovolcanoconiosis',
  'how do i say thank you in japanese',
  'what is the weather like in paris tomorrow',
  'transfer $500 from savings to checking',
  'play some jazz music',
  'is my credit card frozen?',
  'tell me a joke about computers',
  'Please cancel my reservation at the Italian restaurant for Friday night; we will reschedule later.',
  'One. Two. Three. Four. Five. Six. Seven. Eight. Nine. Ten.',
  'word '.repeat(40).trim(),
  // Longer than the graph's 128 positions: both sides keep the first 128 tokens.
  'This sentence is deliberately long so that it exceeds the maximum sequence length of the model. '.repeat(9).trim(),
  'last sentence, not empty',
];

async function tailorEmbed(session: Session, loaded: LoadedUseLite, texts: string[]): Promise<Float32Array[]> {
  const enc = loaded.tokenizer.encodeBatch(texts);
  const out = await session.run({
    input_ids: new ort.Tensor('int64', enc.inputIds, [enc.batch, enc.seq]),
    attention_mask: new ort.Tensor('int64', enc.attentionMask, [enc.batch, enc.seq]),
  });
  const flat = out.embeddings.data as Float32Array;
  assert.deepEqual(out.embeddings.dims, [texts.length, 512]);
  return texts.map((_, i) => flat.slice(i * 512, (i + 1) * 512));
}

function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return dot / Math.sqrt(na * nb);
}

describe('USE-lite', () => {
  let loaded: LoadedUseLite;
  let session: Session;
  let vocab: VocabEntry[];
  let rawVocab: unknown;

  before(async () => {
    process.env.TAILOR_CACHE = path.join(tmpRoot, 'cache');
    loaded = await loadUseLite();
    session = await Session.create(loaded.onnx, { intraOpThreads: 2 });
    vocab = readVocab(pkg.dir);
    rawVocab = JSON.parse(readFileSync(path.join(pkg.dir, 'vocab.json'), 'utf8'));
    await useTfBackend('wasm');
  });

  after(async () => {
    await session?.release();
    rmSync(tmpRoot, { recursive: true, force: true });
  });

  test('tokenizer matches the package tokenizer on every reference sentence and on clinc150', () => {
    const ref = referenceTokenizer(rawVocab);
    for (const s of SENTENCES) {
      const expected = ref.encode(s).slice(0, 128);
      const got = loaded.tokenizer.encode(s).ids;
      assert.deepEqual(got, expected, `tokens of ${JSON.stringify(s)}`);
    }
    // A wider sample: the only known difference is tie-breaking between equal-score paths (see tokenizer.ts).
    const lines = readFileSync(clincPath('validation.csv'), 'utf8')
      .split('\n')
      .slice(1, 901)
      .map((l) => l.replace(/,[a-z_]+\r?$/, '').replace(/^"|"$/g, ''));
    const diff = lines.filter((s) => ref.encode(s).join() !== loaded.tokenizer.encode(s).ids.join());
    assert.ok(
      diff.length <= 1,
      `tokenizations differ on ${diff.length} of ${lines.length}: ${diff.slice(0, 3).join(' | ')}`,
    );
  });

  test('a hand-checked tokenization: the best-scoring segmentation, by exhaustive search', () => {
    const ids = loaded.tokenizer.encode('hello world').ids;
    assert.deepEqual(
      ids.map((i) => vocab[i][0]),
      ['▁hell', 'o', '▁world'],
    );
    assert.deepEqual(ids, [2002, 102, 311]);
    // Every segmentation of '▁hello▁world' into vocabulary pieces (ids >= 6), scored independently.
    const text = '▁hello▁world';
    const score = new Map<string, number>();
    vocab.forEach(([piece, sc], i) => {
      if (i >= 6) score.set(piece, sc);
    });
    let best = -Infinity;
    let bestSeg: string[] = [];
    const walk = (pos: number, acc: number, seg: string[]): void => {
      if (pos === text.length) {
        if (acc > best) {
          best = acc;
          bestSeg = [...seg];
        }
        return;
      }
      for (let end = pos + 1; end <= text.length; end++) {
        const piece = text.slice(pos, end);
        const sc = score.get(piece);
        if (sc !== undefined) walk(end, acc + sc, [...seg, piece]);
      }
    };
    walk(0, 0, []);
    assert.deepEqual(bestSeg, ['▁hell', 'o', '▁world']);
    // An unknown character becomes id 0, and a run of them a single id 0.
    assert.equal(loaded.tokenizer.encode('a 中文句子').ids.filter((i) => i === 0).length, 1);
  });

  test(`embeddings match TF.js to cosine >= 0.9999 on ${SENTENCES.length} sentences, in one padded batch`, async (t) => {
    const ref = referenceTokenizer(rawVocab);
    const tfModel = await loadTfModel(pkg.dir);
    // Empty token lists give the TF graph no row; keep them away from the end so the dense batch keeps its size.
    const encodings = SENTENCES.map((s) => ref.encode(s));
    assert.ok(encodings[encodings.length - 1].length > 0);
    const expected = await tfEmbed(tfModel, encodings);
    tfModel.dispose();
    assert.equal(expected.length, SENTENCES.length);
    const got = await tailorEmbed(session, loaded, SENTENCES);
    let worst = 1;
    SENTENCES.forEach((s, i) => {
      const c = cosine(got[i], expected[i]);
      worst = Math.min(worst, c);
      assert.ok(c >= 0.9999, `cosine ${c} for ${JSON.stringify(s)}`);
      let norm = 0;
      for (const v of got[i]) norm += v * v;
      assert.ok(Math.abs(norm - 1) < 1e-4, `unit norm for ${JSON.stringify(s)}: ${norm}`);
    });
    assert.ok(worst > 0.9999);
    t.diagnostic(`worst cosine ${worst.toFixed(9)} (1 - cos = ${(1 - worst).toExponential(2)})`);
  });

  test('padding does not change an embedding', async () => {
    const alone = await tailorEmbed(session, loaded, ['play some jazz music']);
    const padded = await tailorEmbed(session, loaded, [
      'play some jazz music',
      SENTENCES[4],
      SENTENCES[SENTENCES.length - 2],
    ]);
    for (let j = 0; j < 512; j++) assert.ok(Math.abs(alone[0][j] - padded[0][j]) < 1e-5, `dim ${j}`);
    assert.ok(cosine(padded[0], padded[1]) < 0.99);
  });

  test('the graph is trainable: module-path parameters, float32 initializers, differentiable ops only', () => {
    const p = loaded.model.params;
    assert.deepEqual(p.get('encoder.layer.0.attention.self.query.weight')?.shape, [256, 256]);
    assert.deepEqual(p.get('encoder.layer.1.attention.self.value.weight')?.shape, [512, 512]);
    assert.deepEqual(p.get('encoder.layer.0.attention.residual.dense.weight')?.shape, [256, 512]);
    assert.deepEqual(p.get('encoder.layer.1.intermediate.dense.weight')?.shape, [512, 1536]);
    assert.deepEqual(p.get('embeddings.word_embeddings.weight')?.shape, [8002, 256]);
    assert.deepEqual(p.get('pooler.dense.weight')?.shape, [512, 512]);
    assert.equal(p.get('embeddings.timing_signal')?.trainable, false);
    assert.equal(p.get('encoder.layer.0.attention.self.query.weight')?.layout, 'in_out');
    for (const param of p.values()) {
      const t = loaded.model.graph.initializers.get(param.initializer);
      assert.ok(t, param.path);
      assert.equal(t.dtype, 'float32');
    }
    // Every TF weight tensor of the encoder lands in some parameter: count elements.
    const tfm = readTfGraphModel(pkg.dir);
    let tfFloats = 0;
    for (const w of tfm.weights.values())
      if (w.dtype === 'float32' && w.data.length > 1 && !w.name.includes('TimingSignal')) tfFloats += w.data.length;
    let ours = 0;
    for (const param of p.values()) if (param.role !== 'buffer') ours += param.shape.reduce((a, b) => a * b, 1);
    assert.equal(ours, tfFloats);
    const differentiable = new Set([
      'Gather',
      'Shape',
      'Slice',
      'Add',
      'Sub',
      'Mul',
      'Div',
      'Cast',
      'Unsqueeze',
      'LayerNormalization',
      'MatMul',
      'Reshape',
      'Transpose',
      'Softmax',
      'Relu',
      'ReduceSum',
      'Max',
      'Tanh',
      'Sqrt',
      'Identity',
    ]);
    const ops = new Set(loaded.model.graph.nodes.map((n) => n.opType));
    for (const op of ops) assert.ok(differentiable.has(op), `op ${op} is outside the differentiable set`);
    assert.equal(loaded.onnx.opsetImports.find((o) => o.domain === '')?.version, 17);
  });

  test('a training graph builds on the model: gradients through every layer agree with finite differences', async () => {
    // loss = sum((embeddings - 0.01)^2) over a two-sentence batch, differentiated w.r.t. every trainable parameter.
    const withLoss = (graph: Graph): { graph: Graph; loss: string } => {
      const g = cloneGraph(graph);
      const b = new GraphBuilder(g);
      const d = b.sub('embeddings', b.scalar(0.01));
      const loss = b.reduceSum(b.mul(d, d), [0, 1], false);
      b.output(loss, 'float32', []);
      return { graph: g, loss };
    };
    const { graph, loss } = withLoss(loaded.model.graph);
    const wrt = [...loaded.model.params.values()].filter((p) => p.trainable).map((p) => p.initializer);
    assert.equal(wrt.length, loaded.model.params.size - 1, 'all but the timing signal');
    const { graph: gg, gradients } = buildGradientGraph(graph, { loss, wrt });
    const enc = loaded.tokenizer.encodeBatch(['tell me a joke about computers', 'is my credit card frozen?']);
    const feeds = {
      input_ids: new ort.Tensor('int64', enc.inputIds, [enc.batch, enc.seq]),
      attention_mask: new ort.Tensor('int64', enc.attentionMask, [enc.batch, enc.seq]),
    };
    const gs = await Session.create(modelFromGraph(gg), { intraOpThreads: 2 });
    const out = await gs.run(feeds);
    await gs.release();
    const lossAt = async (name: string, index: number, delta: number): Promise<number> => {
      const g = cloneGraph(graph);
      const values = Float32Array.from(tensorToArray(g.initializers.get(name)!) as Float32Array);
      values[index] += delta;
      g.initializers.set(name, tensorFromArray(name, 'float32', values, g.initializers.get(name)!.dims));
      const s = await Session.create(modelFromGraph(g), { intraOpThreads: 2 });
      const v = (await s.run(feeds))[loss].data[0] as number;
      await s.release();
      return v;
    };
    for (const name of [
      'encoder.layer.0.attention.self.query.weight',
      'encoder.layer.1.intermediate.dense.weight',
      'pooler.dense.weight',
    ]) {
      const grad = out[gradients.get(name)!].data as Float32Array;
      let at = 0;
      grad.forEach((v, i) => {
        if (Math.abs(v) > Math.abs(grad[at])) at = i;
      });
      // float32 forward: a step large enough that the loss change dwarfs its rounding (~1e-7 relative).
      const h = 1e-2;
      const fd = ((await lossAt(name, at, h)) - (await lossAt(name, at, -h))) / (2 * h);
      assert.ok(
        Math.abs(fd - grad[at]) <= 0.05 * Math.abs(grad[at]),
        `${name}[${at}]: autodiff ${grad[at]}, finite difference ${fd}`,
      );
    }
  });

  test('the converted folder is cached per version and rebuilt when corrupt', async () => {
    const dir = useLiteCacheDir();
    assert.equal(dir, path.join(tmpRoot, 'cache', `use-lite-${pkg.version}`));
    assert.equal(loaded.dir, dir);
    const mtime = statSync(path.join(dir, 'model.onnx')).mtimeMs;
    const again = await loadUseLite();
    assert.equal(statSync(path.join(dir, 'model.onnx')).mtimeMs, mtime, 'second load reads the cache');
    assert.equal(again.model.params.size, loaded.model.params.size);
    writeFileSync(path.join(dir, 'model.onnx'), 'garbage');
    const rebuilt = await loadUseLite();
    assert.ok(statSync(path.join(dir, 'model.onnx')).size > 20e6);
    assert.equal(rebuilt.model.params.size, loaded.model.params.size);
    assert.deepEqual(readdirSync(path.dirname(dir)), [path.basename(dir)], 'no temporary folders left behind');
  });

  describe('bad package files', () => {
    /** A copy of the package folder (links to the big shards) with one file replaced or removed. */
    function brokenPackage(name: string, change: (dir: string) => void): string {
      const dir = path.join(tmpRoot, 'pkg-' + name, 'dist');
      mkdirSync(dir, { recursive: true });
      for (const f of readdirSync(pkg.dir)) {
        if (f.startsWith('group')) symlinkSync(path.join(pkg.dir, f), path.join(dir, f));
        else copyFileSync(path.join(pkg.dir, f), path.join(dir, f));
      }
      change(dir);
      return dir;
    }
    const opts = (packageDir: string) => ({ packageDir, cacheDir: path.join(packageDir, '..', 'out') });

    test('missing vocab.json', async () => {
      const dir = brokenPackage('novocab', (d) => rmSync(path.join(d, 'vocab.json')));
      await assert.rejects(
        loadUseLite(opts(dir)),
        (e: Error) =>
          e instanceof ModelFileError && e.message === `USE-lite model file ${path.join(dir, 'vocab.json')} is missing`,
      );
    });

    test('truncated weight shard', async () => {
      const dir = brokenPackage('shard', (d) => {
        const f = path.join(d, 'group1-shard7of7');
        rmSync(f);
        writeFileSync(f, readFileSync(path.join(pkg.dir, 'group1-shard7of7')).subarray(0, 1000));
      });
      await assert.rejects(
        loadUseLite(opts(dir)),
        (e: Error) =>
          e instanceof ModelFileError &&
          e.message.includes(path.join(dir, 'group1-shard7of7')) &&
          e.message.includes('truncated'),
      );
    });

    test('model.json that is not JSON', async () => {
      const dir = brokenPackage('json', (d) => writeFileSync(path.join(d, 'model.json'), '{"modelTopology": '));
      await assert.rejects(
        loadUseLite(opts(dir)),
        (e: Error) =>
          e instanceof ModelFileError &&
          e.message.startsWith(`USE-lite model file ${path.join(dir, 'model.json')} is not valid JSON`),
      );
    });

    test('a malformed vocab.json entry', async () => {
      const dir = brokenPackage('vocabentry', (d) => {
        const f = path.join(d, 'vocab.json');
        const v = JSON.parse(readFileSync(f, 'utf8')) as unknown[];
        v[42] = [7, -1];
        writeFileSync(f, JSON.stringify(v));
      });
      await assert.rejects(
        loadUseLite(opts(dir)),
        (e: Error) =>
          e instanceof ModelFileError &&
          e.message === `${path.join(dir, 'vocab.json')}: entry 42 is [7,-1]; expected [piece, score]`,
      );
    });

    test('a weight missing from model.json', async () => {
      const dir = brokenPackage('weight', (d) => {
        const f = path.join(d, 'model.json');
        const m = JSON.parse(readFileSync(f, 'utf8')) as { weightsManifest: { weights: { name: string }[] }[] };
        // Rename (not drop) so that the shard bytes still line up.
        for (const g of m.weightsManifest)
          for (const w of g.weights)
            if (w.name === 'module/Encoder_en/hidden_layers/tanh_layer_0/weights') w.name = 'renamed';
        writeFileSync(f, JSON.stringify(m));
      });
      await assert.rejects(
        loadUseLite(opts(dir)),
        (e: Error) =>
          e instanceof ModelFileError &&
          e.message ===
            `${path.join(dir, 'model.json')}: weight 'module/Encoder_en/hidden_layers/tanh_layer_0/weights' is missing`,
      );
      assert.ok(!existsSync(path.join(dir, '..', 'out')), 'nothing written on failure');
    });
  });
});
