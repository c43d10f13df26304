// The update phase on the CPU: the optimizer's update rules, the gradient's global norm and the weights'
// moving average (backend.h, OptimizerConfig; docs/ARCHITECTURE.md, "A training step").
//
// Each thread updates its static share of every parameter (what schedule(static) would give it) and ORs
// the exponent test of the new weights into a flag, so finding a NaN or infinity costs no second pass.
// A zero state buffer makes the first step's m*buf + g equal PyTorch's buf = g exactly (SGD), and is
// PyTorch's initial exp_avg and exp_avg_sq (AdamW).
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels.h"

namespace crunet::cpu {
namespace {

// 1 when x is NaN or infinite (all exponent bits set); branch-free so that the update loop vectorises.
inline uint32_t exponent_all_ones(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return (bits & 0x7f800000u) == 0x7f800000u;
}

// PyTorch's SGD: g = grad*scale (+ wd*w); buf = m*buf + g; g = nesterov ? g + m*buf : buf; w -= lr*g.
// With m == 0 the buffer is neither read nor written (torch.optim.SGD keeps none).
uint32_t sgd_range(const OptimizerConfig& cfg, const UpdateSlot& s, float lr, float scale, size_t begin, size_t end) {
  const float m = cfg.momentum, wd = s.weight_decay;
  const bool decay = wd != 0, nesterov = cfg.nesterov;  // PyTorch skips the term when weight_decay is 0
  float* w = s.w;
  float* buf = s.state[0];
  const float* grad = s.grad;
  uint32_t nonfinite = 0;
  if (m == 0) {
#pragma omp simd reduction(| : nonfinite)
    for (size_t i = begin; i < end; i++) {
      const float g0 = grad[i] * scale;
      const float g = decay ? g0 + wd * w[i] : g0;
      const float nw = w[i] - lr * g;
      w[i] = nw;
      nonfinite |= exponent_all_ones(nw);
    }
  } else {
#pragma omp simd reduction(| : nonfinite)
    for (size_t i = begin; i < end; i++) {
      const float g0 = grad[i] * scale;
      const float g = decay ? g0 + wd * w[i] : g0;
      const float b = m * buf[i] + g;
      buf[i] = b;
      const float nw = w[i] - lr * (nesterov ? g + m * b : b);
      w[i] = nw;
      nonfinite |= exponent_all_ones(nw);
    }
  }
  return nonfinite;
}

// Adam's moments of one element, shared by AdamW and LAMB: m = b1*m + (1-b1)*g, v = b2*v + (1-b2)*g*g.
struct Moments {
  float m, v;
};
inline Moments adam_moments(float m, float v, float g, float b1, float b2) { return {b1 * m + (1.0f - b1) * g, b2 * v + (1.0f - b2) * g * g}; }

// PyTorch's AdamW (torch/optim/adamw.py, single-tensor path): w *= 1 - lr*wd; m = b1*m + (1-b1)*g;
// v = b2*v + (1-b2)*g*g; w -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
uint32_t adamw_range(const OptimizerConfig& cfg, const UpdateSlot& s, float lr, float scale, int64_t t, size_t begin, size_t end) {
  const float b1 = cfg.beta1, b2 = cfg.beta2, eps = cfg.eps;
  // The bias corrections in double, once per parameter, as PyTorch computes them on the host.
  const float step_size = static_cast<float>(lr / bias_correction(b1, t));
  const float bc2_sqrt = static_cast<float>(std::sqrt(bias_correction(b2, t)));
  const float keep = 1.0f - lr * s.weight_decay;
  float* w = s.w;
  float* m = s.state[0];
  float* v = s.state[1];
  const float* grad = s.grad;
  uint32_t nonfinite = 0;
#pragma omp simd reduction(| : nonfinite)
  for (size_t i = begin; i < end; i++) {
    const Moments mv = adam_moments(m[i], v[i], grad[i] * scale, b1, b2);
    m[i] = mv.m;
    v[i] = mv.v;
    const float nw = w[i] * keep - step_size * mv.m / (std::sqrt(mv.v) / bc2_sqrt + eps);
    w[i] = nw;
    nonfinite |= exponent_all_ones(nw);
  }
  return nonfinite;
}

// timm's Lamb on one parameter: m and v as AdamW's; u = (m / (1 - b1^t)) / (sqrt(v) / sqrt(1 - b2^t) + eps)
// + wd*w; with wd != 0 the update is scaled by the trust ratio ||w|| / ||u|| (1 where either norm is 0);
// w -= lr * ratio * u. Two passes: the first writes m and v and sums the squares of w and u (in double),
// the second recomputes u from the stored m and v (the same floats) and applies it.
bool lamb_slot(const OptimizerConfig& cfg, const UpdateSlot& s, float lr, float scale, int64_t t) {
  const float b1 = cfg.beta1, b2 = cfg.beta2, eps = cfg.eps, wd = s.weight_decay;
  const float bc1 = static_cast<float>(bias_correction(b1, t));
  const float bc2_sqrt = static_cast<float>(std::sqrt(bias_correction(b2, t)));
  float* w = s.w;
  float* m = s.state[0];
  float* v = s.state[1];
  const float* grad = s.grad;
  const int64_t n = static_cast<int64_t>(s.n);
  double wsq = 0, usq = 0;
#pragma omp parallel for simd schedule(static) reduction(+ : wsq, usq)
  for (int64_t i = 0; i < n; i++) {
    const Moments mv = adam_moments(m[i], v[i], grad[i] * scale, b1, b2);
    m[i] = mv.m;
    v[i] = mv.v;
    const float u = (mv.m / bc1) / (std::sqrt(mv.v) / bc2_sqrt + eps) + wd * w[i];
    wsq += static_cast<double>(w[i]) * w[i];
    usq += static_cast<double>(u) * u;
  }
  const float ratio = wd != 0 && wsq > 0 && usq > 0 ? static_cast<float>(std::sqrt(wsq) / std::sqrt(usq)) : 1.0f;
  const float step = lr * ratio;
  uint32_t nonfinite = 0;
#pragma omp parallel for simd schedule(static) reduction(| : nonfinite)
  for (int64_t i = 0; i < n; i++) {
    const float u = (m[i] / bc1) / (std::sqrt(v[i]) / bc2_sqrt + eps) + wd * w[i];
    const float nw = w[i] - step * u;
    w[i] = nw;
    nonfinite |= exponent_all_ones(nw);
  }
  return nonfinite != 0;
}

}  // namespace

int optimizer_step(const OptimizerConfig& cfg, const UpdateStep& step, const std::vector<UpdateSlot>& slots) {
  if (cfg.rule == UpdateRule::lamb) {  // per-parameter norms: a reduction per parameter before its update
    int first_bad = -1;
    for (size_t k = 0; k < slots.size(); k++)
      if (lamb_slot(cfg, slots[k], step.lr * slots[k].lr_scale, step.grad_scale, step.t) && first_bad < 0) first_bad = static_cast<int>(k);
    return first_bad;
  }
  std::vector<unsigned char> bad(slots.size(), 0);
#pragma omp parallel
  {
    const size_t team = static_cast<size_t>(omp_get_num_threads()), me = static_cast<size_t>(omp_get_thread_num());
    for (size_t k = 0; k < slots.size(); k++) {
      const UpdateSlot& s = slots[k];
      const size_t begin = s.n * me / team, end = s.n * (me + 1) / team;
      const float lr = step.lr * s.lr_scale;
      const uint32_t nonfinite = cfg.rule == UpdateRule::adamw ? adamw_range(cfg, s, lr, step.grad_scale, step.t, begin, end)
                                                               : sgd_range(cfg, s, lr, step.grad_scale, begin, end);
      if (nonfinite) {
#pragma omp atomic write
        bad[k] = 1;
      }
    }
  }
  for (size_t k = 0; k < slots.size(); k++)
    if (bad[k]) return static_cast<int>(k);
  return -1;
}

double grad_sum_squares(const std::vector<UpdateSlot>& slots) {
  double sum = 0;
  for (const UpdateSlot& s : slots) {
    const float* g = s.grad;
    const int64_t n = static_cast<int64_t>(s.n);
#pragma omp parallel for simd reduction(+ : sum)
    for (int64_t i = 0; i < n; i++) sum += static_cast<double>(g[i]) * g[i];
  }
  return sum;
}

void ema_step(float decay, const std::vector<EmaSlot>& slots) {
  const float keep = decay, take = 1.0f - decay;
  for (const EmaSlot& s : slots) {
    float* e = s.ema;
    const float* w = s.w;
    const int64_t n = static_cast<int64_t>(s.n);
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) e[i] = keep * e[i] + take * w[i];
  }
}

}  // namespace crunet::cpu
