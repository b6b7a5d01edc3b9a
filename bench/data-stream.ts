/**
 * Streams a generated ~1 GB CSV through validate + clean + dedup + fingerprint and reports peak RSS and
 * throughput. The file lives in os.tmpdir() and is deleted afterwards.
 * Usage: node --import tsx bench/data-stream.ts [sizeMiB=1024]
 */
import { createWriteStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Fingerprinter } from '../src/data/fingerprint.ts';
import { SplitLog } from '../src/data/report.ts';
import { streamExamples } from '../src/data/stream.ts';

const sizeMiB = Number(process.argv[2] ?? 1024);
const file = join(tmpdir(), `tailor-bench-${process.pid}.csv`);
const WORDS =
  'book flight hotel weather rain music play song alarm timer transfer money balance card lost reset password order pizza'.split(
    ' ',
  );

async function generate(): Promise<number> {
  const out = createWriteStream(file);
  out.write('text,label,group\n');
  let bytes = 0;
  let i = 0;
  const target = sizeMiB * 1024 * 1024;
  while (bytes < target) {
    const lines: string[] = [];
    for (let k = 0; k < 10_000; k++, i++) {
      // ~3% exact repeats and ~2% near-duplicates, like a real scraped corpus.
      const id = i % 33 === 0 ? i - 7 : i;
      const near = i % 50 === 1;
      const base = near ? i - 1 : id;
      const w = (j: number): string => WORDS[(base * 7 + j * 13) % WORDS.length];
      const text = near
        ? `Please ${w(1)}, the ${w(2)} ${w(3)} for request number ${base} and ${w(4)} ${w(5)} thanks!`
        : `please ${w(1)} the ${w(2)} ${w(3)} for request number ${base} and ${w(4)} ${w(5)} thanks`;
      lines.push(`"${text}",intent_${base % 150},${base % 2 ? 'a' : 'b'}\n`);
    }
    const chunk = lines.join('');
    bytes += Buffer.byteLength(chunk);
    if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((res, rej) => out.end((e?: Error | null) => (e ? rej(e) : res())));
  return i;
}

let peakRss = 0;
const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 50);
try {
  const t0 = performance.now();
  const rows = await generate();
  const { size } = await stat(file);
  const tGen = performance.now() - t0;
  peakRss = process.memoryUsage().rss;
  const rssBefore = peakRss;
  const log = new SplitLog([file]);
  const fp = new Fingerprinter({ bench: true });
  const t1 = performance.now();
  let kept = 0;
  for await (const _ of streamExamples(
    file,
    { textColumn: 'text', labelColumn: 'label', groupColumn: 'group', fingerprinter: fp },
    log,
  ))
    kept++;
  const secs = (performance.now() - t1) / 1000;
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
  const mib = (b: number): string => `${(b / 1024 / 1024).toFixed(0)} MiB`;
  console.log(`file: ${mib(size)}, ${rows.toLocaleString('en-US')} rows (generated in ${(tGen / 1000).toFixed(1)} s)`);
  console.log(
    `kept ${kept.toLocaleString('en-US')}; removed ${JSON.stringify(log.report.removed)}; flagged ${JSON.stringify(log.report.flagged)}`,
  );
  console.log(`fingerprint ${fp.digest()}`);
  console.log(
    `stream: ${secs.toFixed(1)} s, ${(size / 1024 / 1024 / secs).toFixed(1)} MiB/s, ${Math.round(rows / secs).toLocaleString('en-US')} rows/s`,
  );
  console.log(`peak RSS ${mib(peakRss)} (RSS before streaming ${mib(rssBefore)}); file size ${mib(size)}`);
} finally {
  clearInterval(sampler);
  await rm(file, { force: true });
}
