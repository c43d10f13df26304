// The update phase on CUDA: the optimizer's update rules (the formulas at OptimizerConfig in
// native/core/backend.h, as native/cpu/optimizer.cc computes them), the gradient's sum of squares and the
// weights' moving average. One launch per parameter, no host round trip; an update launch sets
// *nonfinite when a new weight is NaN or infinite (the caller reads the flags back once per step), so
// the check costs no extra pass over the weights. A zero state buffer makes the first SGD step's
// m*buf + g equal PyTorch's buf = g exactly, and is PyTorch's initial exp_avg and exp_avg_sq.
#include <cmath>

#include "kernels.h"

namespace crunet::cuda {
namespace {

__global__ void sgd_kernel(float* w, const float* grad, float* buf, int64_t n, float lr, float scale, float m, float wd,
                           bool nesterov, int* nonfinite) {
  bool bad = false;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float g0 = grad[i] * scale;
    const float g = wd != 0.f ? g0 + wd * w[i] : g0;  // PyTorch skips the term when weight_decay is 0
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

// Adam's moments of one element, shared by AdamW and LAMB: m = b1*m + (1-b1)*g, v = b2*v + (1-b2)*g*g.
struct Moments {
  float m, v;
};
__device__ __forceinline__ Moments adam_moments(float m, float v, float g, float b1, float b2) {
  return {b1 * m + (1.f - b1) * g, b2 * v + (1.f - b2) * g * g};
}

__global__ void adamw_kernel(float* w, const float* grad, float* m, float* v, int64_t n, float scale, float b1, float b2,
                             float eps, float keep, float step_size, float bc2_sqrt, int* nonfinite) {
  bool bad = false;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const Moments mv = adam_moments(m[i], v[i], grad[i] * scale, b1, b2);
    m[i] = mv.m;
    v[i] = mv.v;
    const float nw = w[i] * keep - step_size * mv.m / (sqrtf(mv.v) / bc2_sqrt + eps);
    w[i] = nw;
    bad |= !isfinite(nw);
  }
  if (bad) *nonfinite = 1;
}

// timm's Lamb, first pass: m and v as AdamW's, and the sums of squares of w and of the update
// u = (m / bc1) / (sqrt(v) / bc2_sqrt + eps) + wd*w into sums[0] and sums[1] (double, one atomic add per block).
__global__ void lamb_moments_kernel(const float* w, const float* grad, float* m, float* v, int64_t n, float scale, float b1, float b2,
                                    float eps, float bc1, float bc2_sqrt, float wd, double* sums) {
  __shared__ double part[2][kThreads];
  double ws = 0, us = 0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const Moments mv = adam_moments(m[i], v[i], grad[i] * scale, b1, b2);
    m[i] = mv.m;
    v[i] = mv.v;
    const float u = (mv.m / bc1) / (sqrtf(mv.v) / bc2_sqrt + eps) + wd * w[i];
    ws += double(w[i]) * w[i];
    us += double(u) * u;
  }
  part[0][threadIdx.x] = ws;
  part[1][threadIdx.x] = us;
  __syncthreads();
  for (int k = blockDim.x / 2; k > 0; k /= 2) {
    if (threadIdx.x < k) {
      part[0][threadIdx.x] += part[0][threadIdx.x + k];
      part[1][threadIdx.x] += part[1][threadIdx.x + k];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    atomicAdd(sums, part[0][0]);
    atomicAdd(sums + 1, part[1][0]);
  }
}

// Second pass: the trust ratio ||w|| / ||u|| (1 where either is 0, or without weight decay) from the
// sums, and w -= lr * ratio * u with u recomputed from the stored m and v.
__global__ void lamb_apply_kernel(float* w, const float* m, const float* v, int64_t n, float lr, float eps, float bc1, float bc2_sqrt,
                                  float wd, const double* sums, int* nonfinite) {
  const double wsq = sums[0], usq = sums[1];
  const float step = lr * (wd != 0.f && wsq > 0 && usq > 0 ? float(sqrt(wsq) / sqrt(usq)) : 1.f);
  bool bad = false;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float u = (m[i] / bc1) / (sqrtf(v[i]) / bc2_sqrt + eps) + wd * w[i];
    const float nw = w[i] - step * u;
    w[i] = nw;
    bad |= !isfinite(nw);
  }
  if (bad) *nonfinite = 1;
}

// Each block sums its grid-stride share in double, reduces in shared memory and adds one value to *sum.
__global__ void sum_squares_kernel(const float* g, int64_t n, double* sum) {
  __shared__ double part[kThreads];
  double s = 0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    s += double(g[i]) * g[i];
  part[threadIdx.x] = s;
  __syncthreads();
  for (int k = blockDim.x / 2; k > 0; k /= 2) {
    if (threadIdx.x < k) part[threadIdx.x] += part[threadIdx.x + k];
    __syncthreads();
  }
  if (threadIdx.x == 0) atomicAdd(sum, part[0]);
}

__global__ void ema_kernel(float* e, const float* w, int64_t n, float keep, float take) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    e[i] = keep * e[i] + take * w[i];
}

}  // namespace

void optimizer_update(Device& dev, const OptimizerConfig& cfg, const UpdateStep& step, const UpdateSlot& s, int* nonfinite, double* sums) {
  if (s.n == 0) return;
  const float lr = step.lr * s.lr_scale;
  if (cfg.rule == UpdateRule::lamb) {
    const float bc1 = static_cast<float>(bias_correction(cfg.beta1, step.t));
    const float bc2_sqrt = static_cast<float>(std::sqrt(bias_correction(cfg.beta2, step.t)));
    lamb_moments_kernel<<<grid_for(s.n), kThreads, 0, dev.stream>>>(s.w, s.grad, s.state[0], s.state[1], int64_t(s.n), step.grad_scale,
                                                                    cfg.beta1, cfg.beta2, cfg.eps, bc1, bc2_sqrt, s.weight_decay, sums);
    check_launch("lamb_moments_kernel", "optimizer_step");
    lamb_apply_kernel<<<grid_for(s.n), kThreads, 0, dev.stream>>>(s.w, s.state[0], s.state[1], int64_t(s.n), lr, cfg.eps, bc1, bc2_sqrt,
                                                                  s.weight_decay, sums, nonfinite);
    check_launch("lamb_apply_kernel", "optimizer_step");
  } else if (cfg.rule == UpdateRule::adamw) {
    // The bias corrections in double on the host, as PyTorch computes them.
    const float step_size = static_cast<float>(lr / bias_correction(cfg.beta1, step.t));
    const float bc2_sqrt = static_cast<float>(std::sqrt(bias_correction(cfg.beta2, step.t)));
    adamw_kernel<<<grid_for(s.n), kThreads, 0, dev.stream>>>(s.w, s.grad, s.state[0], s.state[1], int64_t(s.n), step.grad_scale,
                                                             cfg.beta1, cfg.beta2, cfg.eps, 1.f - lr * s.weight_decay, step_size,
                                                             bc2_sqrt, nonfinite);
    check_launch("adamw_kernel", "optimizer_step");
  } else {
    sgd_kernel<<<grid_for(s.n), kThreads, 0, dev.stream>>>(s.w, s.grad, s.state[0], int64_t(s.n), lr, step.grad_scale, cfg.momentum,
                                                           s.weight_decay, cfg.nesterov, nonfinite);
    check_launch("sgd_kernel", "optimizer_step");
  }
}

void add_sum_squares(Device& dev, const float* g, size_t n, double* sum) {
  if (n == 0) return;
  sum_squares_kernel<<<grid_for(n), kThreads, 0, dev.stream>>>(g, int64_t(n), sum);
  check_launch("sum_squares_kernel", "grad_sum_squares");
}

void ema_update(Device& dev, float decay, const EmaSlot& s) {
  if (s.n == 0) return;
  ema_kernel<<<grid_for(s.n), kThreads, 0, dev.stream>>>(s.ema, s.w, int64_t(s.n), decay, 1.f - decay);
  check_launch("ema_kernel", "ema_step");
}

}  // namespace crunet::cuda
