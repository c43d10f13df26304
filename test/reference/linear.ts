// Reference fully connected layer (PyTorch's nn.Linear), float64: y = x w^T + b.
// x[N,F], w[O,F], b[O] -> y[N,O].

export function linearForward(x: Float64Array, w: Float64Array, b: Float64Array, n: number, f: number, o: number): Float64Array {
  const y = new Float64Array(n * o);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < o; k++) {
      let acc = b[k]!;
      for (let j = 0; j < f; j++) acc += x[i * f + j]! * w[k * f + j]!;
      y[i * o + k] = acc;
    }
  }
  return y;
}

/** dx = dy w [N,F];  dw = dy^T x [O,F];  db = sum over N of dy [O]. */
export function linearBackward(x: Float64Array, w: Float64Array, dy: Float64Array, n: number, f: number, o: number): {
  dx: Float64Array; dw: Float64Array; db: Float64Array;
} {
  const dx = new Float64Array(n * f), dw = new Float64Array(o * f), db = new Float64Array(o);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < o; k++) {
      const d = dy[i * o + k]!;
      db[k] += d;
      for (let j = 0; j < f; j++) {
        dx[i * f + j] += d * w[k * f + j]!;
        dw[k * f + j] += d * x[i * f + j]!;
      }
    }
  }
  return { dx, dw, db };
}
