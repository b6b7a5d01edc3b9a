/**
 * Tailor's library API. Each area is a namespace (`tailor.onnx`, `tailor.train`, ...) so that names stay short
 * inside an area without colliding across areas; the most used entry points are also exported at the top level.
 *
 * @example
 * import { onnx, runtime } from 'tailor';
 * const b = new onnx.GraphBuilder('mlp');
 */
export * from './errors.ts';
export { VERSION } from './version.ts';
export * as onnx from './onnx/index.ts';
export * as runtime from './runtime/index.ts';
export * as autodiff from './autodiff/index.ts';
export * as models from './models/index.ts';
export * as data from './data/index.ts';
export * as evaluation from './eval/index.ts';
export * as registry from './registry/index.ts';
export * as monitor from './monitor/index.ts';
export { Trainer, tensorData } from './train/trainer.ts';
