import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../src/errors.ts';
import { cleanText, normalizeForMatch } from '../../src/data/clean.ts';
import { Deduplicator, heldOutKeys } from '../../src/data/dedup.ts';
import { HashMap64 } from '../../src/data/hashset.ts';
import { createRng } from '../../src/util/rng.ts';
import { stratifiedSplit } from '../../src/data/split.ts';
import { augmentImage, augmentText, crop, flipHorizontal, wordDropout, wordSwap } from '../../src/data/augment.ts';
import { canonicalJson, fingerprintSplits } from '../../src/data/fingerprint.ts';
import type { RawImage } from '../../src/data/load.ts';
import type { TextExample } from '../../src/data/types.ts';

const ex = (text: string, label: string, line = 1): TextExample => ({ text, label, file: 'f.csv', line });

test('cleanText: NFKC, invisible and control characters, whitespace', () => {
  assert.equal(cleanText('  ｆｕｌｌ\u00A0width\tﬁne\u200B \r\n  x\u0007y  '), 'full width fine x y');
  assert.equal(cleanText('caf\u0065\u0301'), 'caf\u00e9');
  assert.equal(normalizeForMatch("What's   the TIME?!"), 'what s the time');
  assert.equal(normalizeForMatch('what’s the time'), normalizeForMatch("What's the time"));
});

test('rng is reproducible and uniform-ish', () => {
  const a = createRng(42);
  const b = createRng(42);
  const xs = Array.from({ length: 1000 }, () => a.next());
  assert.deepEqual(
    xs,
    Array.from({ length: 1000 }, () => b.next()),
  );
  assert.ok(xs.every((x) => x >= 0 && x < 1));
  const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
  assert.ok(Math.abs(mean - 0.5) < 0.05);
  assert.notDeepEqual(createRng('a').next(), createRng('b').next());
  const perm = createRng(1).shuffle([1, 2, 3, 4, 5, 6]);
  assert.deepEqual([...perm].sort(), [1, 2, 3, 4, 5, 6]);
});

test('HashMap64 stores, finds and grows', () => {
  const m = new HashMap64(4, 2);
  for (let i = 0; i < 5000; i++) assert.equal(m.setIfAbsent(`k${i}`, [i, -i]), undefined);
  assert.equal(m.size, 5000);
  assert.deepEqual([...m.get('k4321')!], [4321, -4321]);
  assert.deepEqual([...m.setIfAbsent('k7', [0, 0])!], [7, -7]);
  assert.equal(m.get('nope'), undefined);
});

test('dedup: exact, near-duplicate, label conflict and leakage, first occurrence wins', () => {
  const held = heldOutKeys([{ ...ex('Is it raining?', 'weather', 9), file: 'test.csv' }]);
  const d = new Deduplicator({}, held);
  const verdicts = [
    ex('hello there', 'greet', 2),
    ex('hello there', 'greet', 3), // exact
    ex('Hello, there!', 'greet', 4), // near
    ex('hello there', 'bye', 5), // conflict
    ex('is it raining', 'weather', 6), // leakage
    ex('something new', 'greet', 7),
  ].map((e) => d.check(e));
  assert.deepEqual(
    verdicts.map((v) => (v.action === 'keep' ? 'keep' : `${v.action}:${v.reason}`)),
    ['keep', 'remove:exact-duplicate', 'remove:near-duplicate', 'flag:label-conflict', 'remove:leakage', 'keep'],
  );
  assert.match((verdicts[1] as { message: string }).message, /duplicates f\.csv:2/);
  assert.match((verdicts[3] as { message: string }).message, /labelled "bye" here but "greet" at f\.csv:2/);
  assert.match((verdicts[4] as { message: string }).message, /held-out test\.csv:9/);
  const keepAll = new Deduplicator({ nearDuplicates: 'keep', labelConflicts: 'remove', leakage: 'keep' }, held);
  const v2 = [ex('a b', 'x'), ex('A, b', 'x'), ex('a b', 'y'), ex('is it raining', 'w')].map((e) => keepAll.check(e));
  assert.deepEqual(
    v2.map((v) => v.action),
    ['keep', 'flag', 'remove', 'flag'],
  );
});

test('stratified split: per-class shares, seeded, every class on both sides, order kept', () => {
  const rows: TextExample[] = [];
  for (let i = 0; i < 100; i++) rows.push(ex(`a${i}`, 'a', i));
  for (let i = 0; i < 20; i++) rows.push(ex(`b${i}`, 'b', 100 + i));
  rows.push(ex('c0', 'c', 120), ex('c1', 'c', 121), ex('d0', 'd', 122));
  const s1 = stratifiedSplit(rows, { fraction: 0.2, seed: 5 });
  const s2 = stratifiedSplit(rows, { fraction: 0.2, seed: 5 });
  const s3 = stratifiedSplit(rows, { fraction: 0.2, seed: 6 });
  assert.deepEqual(s1, s2);
  assert.notDeepEqual(s1.validation, s3.validation);
  const count = (xs: TextExample[], l: string): number => xs.filter((x) => x.label === l).length;
  assert.equal(count(s1.validation, 'a'), 20);
  assert.equal(count(s1.validation, 'b'), 4);
  assert.equal(count(s1.validation, 'c'), 1, 'a two-example class gives one to each side');
  assert.equal(count(s1.train, 'c'), 1);
  assert.equal(count(s1.validation, 'd'), 0, 'a one-example class stays in train');
  assert.equal(s1.train.length + s1.validation.length, rows.length);
  const lines = s1.train.map((r) => r.line);
  assert.deepEqual(
    lines,
    [...lines].sort((x, y) => x - y),
  );
  assert.throws(() => stratifiedSplit(rows, { fraction: 1, seed: 0 }), ConfigError);
});

test('text augmentation: seeded, documented ops, never identical to the source', () => {
  const rng = createRng(3);
  const words = 'the quick brown fox jumps over the lazy dog';
  const swapped = wordSwap(words, 2, rng);
  assert.deepEqual(swapped.split(' ').sort(), words.split(' ').sort());
  assert.notEqual(swapped, words);
  const dropped = wordDropout(words, 0.5, rng);
  assert.ok(dropped.split(' ').length < 9 && dropped.split(' ').length >= 1);
  assert.equal(wordDropout('single', 0.99, rng), 'single');
  assert.equal(wordDropout('a b c', 0.9999, createRng(0)).split(' ').length, 1, 'at least one word survives');
  const src = [ex('book a table for two tonight', 'restaurant'), ex('hi', 'greet')];
  const a1 = augmentText(src, { copies: 3, seed: 9 });
  const a2 = augmentText(src, { copies: 3, seed: 9 });
  assert.deepEqual(a1, a2);
  assert.ok(a1.every((e) => e.augmented && e.text !== 'book a table for two tonight'));
  assert.ok(a1.filter((e) => e.label === 'restaurant').length >= 2);
  assert.equal(a1.filter((e) => e.label === 'greet').length, 0, 'one word cannot change');
  assert.throws(() => augmentText(src, { copies: -1 }), ConfigError);
});

test('image flip and crop on raw RGB buffers', () => {
  // 3x2 image, pixel value = 10*x + y in every channel.
  const data = new Uint8Array(3 * 2 * 3);
  for (let y = 0; y < 2; y++)
    for (let x = 0; x < 3; x++) for (let c = 0; c < 3; c++) data[(y * 3 + x) * 3 + c] = 10 * x + y;
  const img: RawImage = { data, width: 3, height: 2, channels: 3 };
  const f = flipHorizontal(img);
  assert.deepEqual([...f.data.filter((_, i) => i % 3 === 0)], [20, 10, 0, 21, 11, 1]);
  assert.deepEqual(flipHorizontal(f), img);
  const c = crop(img, 1, 1, 2, 1);
  assert.deepEqual([c.width, c.height], [2, 1]);
  assert.deepEqual([...c.data.filter((_, i) => i % 3 === 0)], [11, 21]);
  assert.throws(() => crop(img, 2, 0, 2, 1), ConfigError);
  const r1 = augmentImage(img, { crop: { width: 2, height: 2 }, flipProbability: 1 }, createRng(1));
  assert.deepEqual([r1.width, r1.height], [2, 2]);
  assert.deepEqual(
    augmentImage(img, { crop: { width: 2, height: 2 } }, createRng(4)),
    augmentImage(img, { crop: { width: 2, height: 2 } }, createRng(4)),
  );
});

test('fingerprint: content and options matter, paths and key order do not', () => {
  const rows = [ex('a', 'x'), ex('b', 'y')];
  const fp = (r: TextExample[], o: Record<string, unknown>): string =>
    fingerprintSplits([{ name: 'train', examples: r }], o);
  const base = fp(rows, { seed: 1, textColumn: 'text' });
  assert.match(base, /^sha256:[0-9a-f]{64}$/);
  assert.equal(
    fp(
      rows.map((r) => ({ ...r, file: '/elsewhere.csv', line: 99 })),
      { textColumn: 'text', seed: 1 },
    ),
    base,
  );
  assert.notEqual(fp(rows, { seed: 2, textColumn: 'text' }), base);
  assert.notEqual(fp([ex('a', 'x'), ex('b', 'z')], { seed: 1, textColumn: 'text' }), base);
  assert.notEqual(fp([ex('a', 'x'), { ...ex('b', 'y'), augmented: true }], { seed: 1, textColumn: 'text' }), base);
  // Field boundaries are unambiguous: ("ab","c") differs from ("a","bc").
  assert.notEqual(fp([ex('ab', 'c')], {}), fp([ex('a', 'bc')], {}));
  assert.equal(canonicalJson({ b: 1, a: [1, { d: undefined, c: 2 }] }), '{"a":[1,{"c":2}],"b":1}');
});
