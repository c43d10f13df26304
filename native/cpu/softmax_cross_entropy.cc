// Softmax cross-entropy over logits [N,K] and i32 labels [N]: PyTorch's CrossEntropyLoss (mean over the
// batch, with optional label smoothing), plus top-1 and top-k hit counts. Training forward saves the
// probabilities and a copy of the labels, so backward needs neither input and the planner may free both
// after the forward pass.
//
// With a third input, soft targets t [N,K] (mixup, cutmix), the target is t smoothed, (1 - e) t + e / K,
// as PyTorch's CrossEntropyLoss with probability targets; the labels then only feed the hit counts. The
// loss of a row is S log(sum exp) - sum_j t'_j (x_j - max) with S = sum_j t'_j, its gradient p S - t':
// forward saves that gradient (unscaled) in place of the probabilities, so backward stays one scaling.
#include <cmath>
#include <cstring>

#include "../core/error.h"
#include "kernels.h"

namespace crunet::cpu {

namespace {

class SoftmaxCrossEntropy final : public Kernel {
 public:
  explicit SoftmaxCrossEntropy(const NodeSpec& spec)
      : node_(node_label(spec)), n_(spec.in[0][0]), k_(spec.in[0][1]), topk_(spec.xent.topk), eps_(spec.xent.smoothing),
        soft_(spec.in.size() == 3) {}

  size_t saved_bytes() const override { return (n_ * k_ + n_) * 4; }
  bool backward_reads_input(int) const override { return false; }
  std::string impl_info() const override { return "omp loop"; }

  void forward(const KernelIO& io) override {
    const auto* x = static_cast<const float*>(io.in[0]);
    const auto* labels = static_cast<const int32_t*>(io.in[1]);
    const auto* targets = soft_ ? static_cast<const float*>(io.in[2]) : nullptr;
    // Checked up front: an exception cannot leave an OpenMP region.
    for (int64_t i = 0; i < n_; i++)
      if (labels[i] < 0 || labels[i] >= k_)
        fail(node_, ": label ", labels[i], " of sample ", i, " is outside [0, ", k_, ")");

    float* probs = io.training ? static_cast<float*>(io.saved) : nullptr;
    double loss = 0;
    int correct = 0, topk_correct = 0;
#pragma omp parallel for schedule(static) reduction(+ : loss, correct, topk_correct)
    for (int64_t i = 0; i < n_; i++) {
      const float* row = x + i * k_;
      const int32_t label = labels[i];
      int64_t argmax = 0;
      for (int64_t j = 1; j < k_; j++)
        if (row[j] > row[argmax]) argmax = j;  // strict: ties go to the lowest index
      const float mx = row[argmax];
      double sum = 0;
      if (probs) {
        float* p = probs + i * k_;
        for (int64_t j = 0; j < k_; j++) {
          p[j] = std::exp(row[j] - mx);
          sum += p[j];
        }
        const float inv = static_cast<float>(1 / sum);
        for (int64_t j = 0; j < k_; j++) p[j] *= inv;
      } else {
        for (int64_t j = 0; j < k_; j++) sum += std::exp(row[j] - mx);
      }
      if (targets) {
        // Terms with a zero target are left out: 0 * (x_j - mx) is NaN for x_j = -inf.
        const float* t = targets + i * k_;
        const double off = double(eps_) / k_;
        double s = 0, dot = 0;
        for (int64_t j = 0; j < k_; j++) {
          const double tj = (1 - double(eps_)) * t[j] + off;
          s += tj;
          if (tj != 0) dot += tj * (row[j] - mx);
        }
        loss += s * std::log(sum) - dot;
        if (probs) {
          float* g = probs + i * k_;  // p S - t', the unscaled gradient
          for (int64_t j = 0; j < k_; j++) g[j] = static_cast<float>(g[j] * s - ((1 - double(eps_)) * t[j] + off));
        }
      } else {
        double target = row[label] - mx;  // sum over j of target_j (x_j - mx); the target sums to 1
        if (eps_ > 0) {
          double mean = 0;
          for (int64_t j = 0; j < k_; j++) mean += row[j] - mx;
          target = (1 - double(eps_)) * target + double(eps_) * mean / k_;
        }
        loss += std::log(sum) - target;
      }
      correct += argmax == label;
      if (topk_ > 0) {
        int64_t above = 0;
        for (int64_t j = 0; j < k_; j++) above += row[j] > row[label];
        topk_correct += above < topk_;
      }
    }
    if (probs) std::memcpy(probs + n_ * k_, labels, n_ * sizeof(int32_t));

    const float mean = static_cast<float>(loss / n_);
    if (io.out) *static_cast<float*>(io.out) = mean;
    if (io.stats) {
      io.stats->loss = mean;
      io.stats->correct = correct;
      io.stats->topk_correct = topk_correct;
    }
  }

  void backward(const KernelIO& io) override {
    float* dx = io.in_grad[0];
    if (!dx) return;
    const auto* probs = static_cast<const float*>(io.saved);
    const auto* labels = reinterpret_cast<const int32_t*>(probs + n_ * k_);
    const float scale = (io.out_grad ? *static_cast<const float*>(io.out_grad) : 1.0f) / n_;
    if (soft_) {
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < n_ * k_; i++) dx[i] = probs[i] * scale;
      return;
    }
    const float off = eps_ / k_, on = 1 - eps_ + off;  // the smoothed target off and on the label
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n_; i++) {
      const float* p = probs + i * k_;
      float* d = dx + i * k_;
      for (int64_t j = 0; j < k_; j++) d[j] = (p[j] - off) * scale;
      d[labels[i]] = (p[labels[i]] - on) * scale;
    }
  }

 private:
  std::string node_;
  int64_t n_, k_;
  int topk_;
  float eps_;
  bool soft_;  // a soft-target input: saved holds the unscaled gradient, not the probabilities
};

}  // namespace

std::unique_ptr<Kernel> make_softmax_cross_entropy(const NodeSpec& spec) {
  return std::make_unique<SoftmaxCrossEntropy>(spec);
}

}  // namespace crunet::cpu
