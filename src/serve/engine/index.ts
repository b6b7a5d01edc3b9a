/** The inference engine under the server: mixed-adapter batches over one base, dynamic batching, adapter slots. */
export {
  AdapterModel,
  MultiAdapterEngine,
  type AdapterModelOptions,
  type EngineObserver,
  type EngineOptions,
} from './engine.ts';
export { DynamicBatcher, type BatcherObserver, type BatcherOptions, type ExecutionStats } from './batcher.ts';
export { AdapterPool, type CacheEvent, type PoolObserver, type PoolOptions } from './pool.ts';
export { BASE_PRECISIONS, type BasePrecision } from './precision.ts';
