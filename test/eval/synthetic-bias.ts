/**
 * A seeded synthetic text task with a known bias, for the fairness audit's tests and its docs example.
 * Loan requests from two districts (the group, named in the text). Whether a request is qualified depends only on
 * income and payment history; the recorded label is "approve" when qualified, except that qualified requests
 * from Southmere were recorded as "deny" with probability `bias` (the biased rule). A bag-of-words logistic
 * regression fitted on those labels learns the district as a reason to deny.
 */
import { createRng } from '../../src/util/rng.ts';

export interface LoanExample {
  text: string;
  group: 'Northvale' | 'Southmere';
  /** The label an unbiased process would have recorded. */
  qualified: boolean;
  /** The recorded (biased) label: 1 = approve. */
  label: 0 | 1;
}

const INCOME = {
  good: ['my income is stable', 'i have a steady salary', 'i earn a regular wage'],
  bad: ['my income is irregular', 'i am between jobs', 'my earnings vary a lot'],
};
const HISTORY = {
  good: ['i always pay on time', 'i have never missed a payment', 'my credit record is clean'],
  bad: ['i missed several payments', 'i was late on my rent', 'i have an unpaid debt'],
};
const ASKS = [
  'i would like a loan for a car',
  'can i borrow money for my studies',
  'i need a loan to fix my roof',
  'please consider my loan request',
];

/** `n` examples, half from each district, seeded. */
export function loanExamples(n: number, seed: number | string, bias = 0.6): LoanExample[] {
  const rng = createRng(seed);
  const pick = (l: string[]): string => l[rng.int(l.length)];
  return Array.from({ length: n }, (_, i) => {
    const group = i % 2 === 0 ? 'Northvale' : 'Southmere';
    const income = rng.next() < 0.6;
    const history = rng.next() < 0.6;
    const qualified = income && history;
    const parts = [
      pick(ASKS),
      `i live in ${group.toLowerCase()}`,
      pick(income ? INCOME.good : INCOME.bad),
      pick(history ? HISTORY.good : HISTORY.bad),
    ];
    rng.shuffle(parts);
    const biased = group === 'Southmere' && qualified && rng.next() < bias;
    return { text: parts.join(', '), group, qualified, label: qualified && !biased ? 1 : 0 };
  });
}

const tokens = (t: string): string[] => t.toLowerCase().match(/[a-z]+/g) ?? [];

/** A bag-of-words logistic regression (binary word presence), full-batch gradient descent with optional sample weights. */
export class BowLogistic {
  private readonly vocab: Map<string, number>;
  private readonly w: Float64Array;
  private b = 0;

  constructor(texts: readonly string[]) {
    this.vocab = new Map([...new Set(texts.flatMap(tokens))].sort().map((w, i) => [w, i]));
    this.w = new Float64Array(this.vocab.size);
  }

  private features(t: string): number[] {
    return [...new Set(tokens(t).flatMap((w) => (this.vocab.has(w) ? [this.vocab.get(w)!] : [])))];
  }

  fit(
    texts: readonly string[],
    y: readonly number[],
    weights?: ArrayLike<number>,
    epochs = 300,
    lr = 0.5,
    l2 = 1e-3,
  ): this {
    const x = texts.map((t) => this.features(t));
    const n = texts.length;
    const total = weights ? Array.from(weights).reduce((a, c) => a + c, 0) : n;
    for (let e = 0; e < epochs; e++) {
      const gw = new Float64Array(this.w.length);
      let gb = 0;
      for (let i = 0; i < n; i++) {
        const p = this.prob(x[i]);
        const g = ((p - y[i]) * (weights ? weights[i] : 1)) / total;
        for (const j of x[i]) gw[j] += g;
        gb += g;
      }
      for (let j = 0; j < this.w.length; j++) this.w[j] -= lr * (gw[j] + l2 * this.w[j]);
      this.b -= lr * gb;
    }
    return this;
  }

  private prob(f: number[]): number {
    let z = this.b;
    for (const j of f) z += this.w[j];
    return 1 / (1 + Math.exp(-z));
  }

  /** [P(deny), P(approve)] per text. */
  predictProba(texts: readonly string[]): number[][] {
    return texts.map((t) => {
      const p = this.prob(this.features(t));
      return [1 - p, p];
    });
  }
}
