// PyTorch's SGD (dampening 0), one launch per parameter, no host round trip:
//   g = grad + wd*w (if decay and wd != 0); buf = m*buf + g; g = nesterov ? g + m*buf : buf; w -= lr*g
// With m == 0 the momentum buffer is neither read nor written (torch.optim.SGD keeps none). A zero
// buffer makes the first step's m*buf + g equal PyTorch's buf = g exactly, as on the CPU backend.
// Each launch also sets *nonfinite when a new weight is NaN or infinite (the caller reads the flags back
// once per step), so the check costs no extra pass over the weights.
#include "kernels.h"

namespace crunet::cuda {
namespace {

__global__ void sgd_kernel(float* w, const float* grad, float* buf, int64_t n, float lr, float m, float wd,
                           bool decay, bool nesterov, int* nonfinite) {
  bool bad = false;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float g = decay ? grad[i] + wd * w[i] : grad[i];
    float nw;
    if (m == 0.f) {
      nw = w[i] - lr * g;
    } else {
      const float b = m * buf[i] + g;
      buf[i] = b;
      nw = w[i] - lr * (nesterov ? g + m * b : b);
    }
    w[i] = nw;
    bad |= !isfinite(nw);
  }
  if (bad) *nonfinite = 1;  // racing writes of the same value
}

}  // namespace

void sgd_update(Device& dev, const SgdConfig& cfg, const SgdSlot& s, int* nonfinite) {
  if (s.n == 0) return;
  const bool decay = s.decay && cfg.weight_decay != 0;  // PyTorch skips the term when weight_decay is 0
  sgd_kernel<<<grid_for(s.n), kThreads, 0, dev.stream>>>(s.w, s.grad, s.momentum, int64_t(s.n), cfg.lr, cfg.momentum,
                                                         cfg.weight_decay, decay, cfg.nesterov, nonfinite);
  check_launch("sgd_kernel", "sgd_step");
}

}  // namespace crunet::cuda
