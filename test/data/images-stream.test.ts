import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createWriteStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { DataError } from '../../src/errors.ts';
import { prepareImageDataset } from '../../src/data/images.ts';
import { Fingerprinter } from '../../src/data/fingerprint.ts';
import { SplitLog } from '../../src/data/report.ts';
import { streamExamples } from '../../src/data/stream.ts';
import { tempFiles } from './helpers.ts';

const png = (r: number, g: number, b: number, w = 4, h = 3): Promise<Buffer> =>
  sharp({ create: { width: w, height: h, channels: 3, background: { r, g, b } } })
    .png()
    .toBuffer();

test('image folder: decode to RGB, resize, drop identical pixels, split, fingerprint; corrupt files are errors', async () => {
  const t = await tempFiles({});
  try {
    await mkdir(join(t.dir, 'cat'));
    await mkdir(join(t.dir, 'dog'));
    await writeFile(join(t.dir, 'cat', '1.png'), await png(255, 0, 0));
    await writeFile(join(t.dir, 'cat', '2.png'), await png(250, 0, 0, 8, 6));
    await writeFile(
      join(t.dir, 'cat', '3.jpg'),
      await sharp(await png(0, 0, 0))
        .jpeg()
        .toBuffer(),
    );
    await writeFile(join(t.dir, 'cat', 'notes.txt'), 'ignored');
    await writeFile(join(t.dir, 'dog', 'a.png'), await png(0, 0, 255));
    await writeFile(join(t.dir, 'dog', 'b.png'), await png(0, 0, 255)); // same pixels as a.png
    await writeFile(join(t.dir, 'dog', 'c.png'), await png(0, 255, 0));
    const ds = await prepareImageDataset(t.dir, {
      size: { width: 4, height: 3 },
      validationFraction: 0.4,
      seed: 1,
      augment: { copies: 1, flipProbability: 1 },
    });
    assert.deepEqual(ds.labels, ['cat', 'dog']);
    assert.deepEqual(ds.report.splits.train.removed, { 'exact-duplicate': 1 });
    assert.match(ds.report.splits.train.samples['exact-duplicate']![0].message, /a\.png/);
    const all = [...ds.train.filter((r) => !r.augmented), ...ds.validation];
    assert.equal(all.length, 5);
    for (const r of all)
      assert.deepEqual([r.image.width, r.image.height, r.image.channels, r.image.data.length], [4, 3, 3, 36]);
    const red = all.find((r) => r.file.endsWith('1.png'))!;
    assert.deepEqual([...red.image.data.slice(0, 3)], [255, 0, 0]);
    assert.equal(ds.train.filter((r) => r.augmented).length, ds.train.length / 2);
    const again = await prepareImageDataset(t.dir, {
      size: { width: 4, height: 3 },
      validationFraction: 0.4,
      seed: 1,
      augment: { copies: 1, flipProbability: 1 },
    });
    assert.equal(again.fingerprint, ds.fingerprint);

    await writeFile(join(t.dir, 'dog', 'broken.png'), 'not an image');
    await assert.rejects(
      prepareImageDataset(t.dir),
      (e: unknown) =>
        e instanceof DataError &&
        e.context.file === join(t.dir, 'dog', 'broken.png') &&
        /cannot decode image/.test(e.message),
    );
    const skipped = await prepareImageDataset(t.dir, { onUnreadable: 'skip' });
    assert.equal(skipped.report.splits.train.removed['unreadable-image'], 1);
    await assert.rejects(
      prepareImageDataset(t.dir, { onUnreadable: 'skip', minExamplesPerClass: 4 }),
      /fewer than 4 images/,
    );
  } finally {
    await t.cleanup();
  }
});

test('streaming a few-MB CSV: lazy, bounded, every row accounted for', async () => {
  const t = await tempFiles({});
  try {
    const file = join(t.dir, 'big.csv');
    const out = createWriteStream(file);
    out.write('text,label\n');
    const n = 60_000; // ~3 MB
    let nearExpected = 0;
    for (let i = 0; i < n; i++) {
      // Every 10th row repeats the previous one exactly; every 15th (otherwise) is the previous row with
      // different case and punctuation, i.e. a near-duplicate.
      let text = `query number ${i} about topic ${i % 50}`;
      let label = `label${i % 50}`;
      if (i % 10 === 9) {
        text = `query number ${i - 1} about topic ${(i - 1) % 50}`;
        label = `label${(i - 1) % 50}`;
      } else if (i % 15 === 14) {
        text = `Query Number ${i - 1}, about topic ${(i - 1) % 50}!`;
        label = `label${(i - 1) % 50}`;
        if ((i - 1) % 10 !== 9) nearExpected++;
      }
      out.write(`"${text}",${label}\n`);
    }
    await new Promise<void>((res, rej) => out.end((err?: Error | null) => (err ? rej(err) : res())));

    // Lazy: taking the first rows does not read the whole file.
    const early = new SplitLog();
    let taken = 0;
    for await (const _ of streamExamples(file, { textColumn: 'text', labelColumn: 'label' }, early)) {
      if (++taken === 10) break;
    }
    assert.ok(early.report.rowsRead < 100, `read ${early.report.rowsRead} rows for 10`);

    const log = new SplitLog();
    const fp = new Fingerprinter({ test: true });
    let kept = 0;
    for await (const _ of streamExamples(file, { textColumn: 'text', labelColumn: 'label', fingerprinter: fp }, log))
      kept++;
    assert.equal(log.report.rowsRead, n);
    assert.equal(kept + log.removedCount, n);
    assert.equal(log.report.removed['exact-duplicate'], n / 10);
    assert.equal(log.report.removed['near-duplicate'], nearExpected);
    assert.ok(nearExpected > 1000, String(nearExpected));
    assert.match(fp.digest(), /^sha256:/);
  } finally {
    await t.cleanup();
  }
});
