/** Running ONNX graphs with onnxruntime-node. */
export * from './session.ts';
export * from './tensors.ts';
export { listProviders, assertProvidersAvailable } from './providers.ts';
export type { ProviderInfo } from './providers.ts';
export { summarizeProfile, formatProfile } from './profile.ts';
export type { ProfileSummary, OpTypeTime, NodeTime } from './profile.ts';
