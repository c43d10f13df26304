// Reference elementwise add of two same-shape tensors, float64. Backward passes dy to both operands.

export function addForward(a: Float64Array, b: Float64Array): Float64Array {
  if (a.length !== b.length) throw new Error(`add reference: lengths differ (${a.length} vs ${b.length})`);
  const y = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) y[i] = a[i]! + b[i]!;
  return y;
}

/** da = dy, db = dy (copies, so a caller may accumulate into them). */
export function addBackward(dy: Float64Array): { da: Float64Array; db: Float64Array } {
  return { da: Float64Array.from(dy), db: Float64Array.from(dy) };
}
