/** A small CSV slice of the committed CLINC150 fixture (five intents), written into a folder for package tests. */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { clincPath } from '../clinc150.ts';

export const INTENTS = ['balance', 'bill_due', 'book_flight', 'carry_on', 'change_language'];

/** Writes train.csv (`perTrain` rows per intent) and eval.csv (10 per intent) into `dir`; returns their paths. */
export function writeSlice(dir: string, perTrain = 20): { train: string; eval: string } {
  const pick = (file: string, per: number): string => {
    const [head, ...rows] = readFileSync(clincPath(file), 'utf8').trimEnd().split(/\r?\n/);
    const count = new Map<string, number>();
    const kept = rows.filter((line) => {
      const intent = INTENTS.find((i) => line.endsWith(`,${i}`));
      if (!intent) return false;
      count.set(intent, (count.get(intent) ?? 0) + 1);
      return count.get(intent)! <= per;
    });
    return `${head}\n${kept.join('\n')}\n`;
  };
  const train = path.join(dir, 'train.csv');
  const evalFile = path.join(dir, 'eval.csv');
  writeFileSync(train, pick('train.csv', perTrain));
  writeFileSync(evalFile, pick('test.csv', 10));
  return { train, eval: evalFile };
}
