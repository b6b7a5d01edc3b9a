/**
 * The fairness budget: limits on group disparities and behavioural flip rates that a model must meet, checked the
 * way an accuracy gate is (pass/fail with one reason per failed limit). Pure: it reads reports, it measures nothing.
 * A limit whose measurement is missing fails, since a gate that cannot check must not pass.
 */
import { ConfigError } from '../errors.ts';
import type { BehaviourReport } from './behaviour.ts';
import type { DisaggregatedReport } from './disaggregate.ts';

export interface FairnessBudget {
  /** Largest allowed demographic parity difference (worst class) in any sensitive view. */
  maxParityDifference?: number;
  /** Smallest allowed disparate impact ratio (worst class) in any sensitive view; 0.8 is the four-fifths rule. */
  minDisparateImpact?: number;
  /** Largest allowed equalized odds difference (worst class) in any sensitive view. */
  maxEqualizedOddsDifference?: number;
  /** Largest allowed flip rate of any behavioural test that had cases. */
  maxFlipRate?: number;
}

export interface BudgetCheck {
  limit: keyof FairnessBudget;
  bound: number;
  /** The worst measured value, or null when nothing was measured. */
  value: number | null;
  /** Where the worst value comes from: a view and class, or a behavioural test. */
  where: string;
  pass: boolean;
}

export interface BudgetResult {
  pass: boolean;
  checks: BudgetCheck[];
  /** One sentence per failed check. */
  reasons: string[];
}

const f4 = (v: number): string => v.toFixed(4);

function checkBudget(budget: FairnessBudget): void {
  for (const [k, v] of Object.entries(budget)) {
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 1)
      throw new ConfigError(`fairness budget ${k} must be a number in [0, 1], got ${String(v)}`, {
        field: k,
        value: String(v),
      });
  }
}

/** Checks the reports against the budget. Views whose disparities are undefined (fewer than two judged groups) are skipped. */
export function checkFairnessBudget(
  budget: FairnessBudget,
  reports: { fairness?: DisaggregatedReport; behaviour?: BehaviourReport },
): BudgetResult {
  checkBudget(budget);
  const checks: BudgetCheck[] = [];
  const reasons: string[] = [];
  const views = (reports.fairness?.views ?? []).filter((v) => v.judged.length >= 2);
  const disparity = (
    limit: 'maxParityDifference' | 'minDisparateImpact' | 'maxEqualizedOddsDifference',
    key: 'demographicParityDifference' | 'disparateImpact' | 'equalizedOddsDifference',
    name: string,
  ): void => {
    const bound = budget[limit];
    if (bound === undefined) return;
    const lower = limit === 'minDisparateImpact';
    let worst: { value: number; where: string } | undefined;
    for (const v of views) {
      const d = v[key];
      if (Number.isNaN(d.estimate)) continue;
      if (!worst || (lower ? d.estimate < worst.value : d.estimate > worst.value)) {
        const ci = d.lower !== undefined ? `, 95% CI [${f4(d.lower)}, ${f4(d.upper!)}]` : '';
        const cls = reports.fairness!.task === 'multiclass' ? `, class "${d.label}"` : '';
        worst = { value: d.estimate, where: `"${v.name}"${cls}${ci}` };
      }
    }
    if (!worst) {
      checks.push({ limit, bound, value: null, where: 'not measured', pass: false });
      reasons.push(
        `${name} was not measured (no sensitive column with two groups of at least ${reports.fairness?.minGroupSize ?? 'the minimum'} examples), so the limit ${bound} cannot be checked`,
      );
      return;
    }
    const pass = lower ? worst.value >= bound : worst.value <= bound;
    checks.push({ limit, bound, value: worst.value, where: worst.where, pass });
    if (!pass)
      reasons.push(`${name} ${f4(worst.value)} in ${worst.where} is ${lower ? 'below' : 'above'} the limit ${bound}`);
  };
  disparity('maxParityDifference', 'demographicParityDifference', 'demographic parity difference');
  disparity('minDisparateImpact', 'disparateImpact', 'disparate impact ratio');
  disparity('maxEqualizedOddsDifference', 'equalizedOddsDifference', 'equalized odds difference');

  if (budget.maxFlipRate !== undefined) {
    const bound = budget.maxFlipRate;
    const tests = (reports.behaviour?.tests ?? []).filter((t) => t.cases > 0);
    if (tests.length === 0) {
      checks.push({ limit: 'maxFlipRate', bound, value: null, where: 'not measured', pass: false });
      reasons.push(
        `flip rate was not measured (no behavioural test had cases), so the limit ${bound} cannot be checked`,
      );
    } else {
      const worst = tests.reduce((a, b) => (b.flipRate > a.flipRate ? b : a));
      const pass = worst.flipRate <= bound;
      const where = `${worst.test} (${worst.flips}/${worst.cases} flipped)`;
      checks.push({ limit: 'maxFlipRate', bound, value: worst.flipRate, where, pass });
      if (!pass) reasons.push(`flip rate ${f4(worst.flipRate)} in ${where} is above the limit ${bound}`);
    }
  }
  return { pass: checks.every((c) => c.pass), checks, reasons };
}
