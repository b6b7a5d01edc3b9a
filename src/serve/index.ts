/** Public API of the server: start one over a registry, its engine seam, and its config readers. */
export type { Prediction, ServedModel } from './backend.ts';
export { startServer, defaultRefs, type ServeOptions, type ServeHandle } from './server.ts';
export { loadFolderModel, softmax, type EngineOptions } from './engine.ts';
export { Batcher, BATCHING_DEFAULTS, type BatchingOptions, type BatchObserver, type BatchInfo } from './batcher.ts';
export { ModelManager, canonicalRef, type ModelLoader, type ModelEntry, type Lease } from './models.ts';
export { parseRoutes, readRoutes, pickVariant, stickyPoint, type Route, type Variant } from './routes.ts';
export { parseApiKeys, readApiKeys, hashApiKey, type ApiKey } from './auth.ts';
export { JsonlAppender, type AppenderOptions } from './applog.ts';
export { ServeMetrics } from './metrics.ts';
export { DEFAULT_LIMITS, type Limits, type LogInputs } from './context.ts';
export { HttpError, QueueFullError } from './errors.ts';
