/** Precisions a mixed-adapter engine can run its shared base in (a module of its own: the CLI reads it without loading ORT). */
export const BASE_PRECISIONS = ['fp32', 'int8'] as const;
export type BasePrecision = (typeof BASE_PRECISIONS)[number];
