/** Monitoring: drift and performance on the prediction log, reference profiles, policy, gates and A/B analysis. */
export * from './stats/index.ts';
export * from './log.ts';
export * from './profile.ts';
export * from './drift.ts';
export * from './performance.ts';
export * from './ab.ts';
export * from './gate.ts';
export * from './policy.ts';
export * from './report.ts';
export * from './html.ts';
export * from './run.ts';
export * from './retrain.ts';
export * from './reference.ts';
export * from './loop.ts';
export * from './fairness.ts';
