// Reference SGD update (PyTorch's torch.optim.SGD with dampening 0), float64, one parameter tensor:
//   g = grad + weightDecay * w (when decay applies);  buf = momentum * buf + g  (buf starts at 0, which
//   equals PyTorch's buf = g on the first step);  g = nesterov ? g + momentum * buf : buf;  w -= lr * g.
// Updates w and buf in place.

export interface SgdOptions {
  lr: number;
  momentum: number;
  nesterov: boolean;
  weightDecay: number;
}

export function sgdStep(w: Float64Array, grad: Float64Array, buf: Float64Array, o: SgdOptions, decay: boolean): void {
  for (let i = 0; i < w.length; i++) {
    let g = grad[i]! + (decay ? o.weightDecay * w[i]! : 0);
    buf[i] = o.momentum * buf[i]! + g;
    g = o.nesterov ? g + o.momentum * buf[i]! : buf[i]!;
    w[i] -= o.lr * g;
  }
}
