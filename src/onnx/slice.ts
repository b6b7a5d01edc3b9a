/**
 * ONNX Slice's bound rules for one axis of a known size: negative indices count from the end, then starts/ends
 * are clamped to [0, dim] for positive steps and [0, dim-1] / [-1, dim-1] for negative ones. Shape inference and
 * Slice's gradient both need exactly these rules, so they live here once.
 */
export function sliceBounds(dim: number, start: number, end: number, step: number): { start: number; count: number } {
  let s = start < 0 ? start + dim : start;
  let e = end < 0 ? end + dim : end;
  if (step > 0) {
    s = Math.min(Math.max(s, 0), dim);
    e = Math.min(Math.max(e, 0), dim);
  } else {
    s = Math.min(Math.max(s, 0), dim - 1);
    e = Math.min(Math.max(e, -1), dim - 1);
  }
  return { start: s, count: Math.max(0, Math.ceil((e - s) / step)) };
}
