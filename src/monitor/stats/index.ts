export * from './ks.ts';
export * from './distance.ts';
export * from './tests.ts';
export * from './mmd.ts';
export * from './classifier.ts';
export * from './text.ts';
export * from './embedding.ts';
