// Softmax cross-entropy over logits [N,K] and i32 labels [N]: PyTorch's CrossEntropyLoss (mean over the
// batch, with optional label smoothing), plus top-1 and top-k hit counts. Training forward saves the
// probabilities and a copy of the labels, so backward needs neither input (as the CPU kernel). With soft
// targets [N,K] (a third input) it saves the unscaled gradient p S - t' instead (see the CPU kernel).
//
// The executor reads the loss on the host right after forward (it refuses a non-finite loss before
// backward and the update), so forward ends with the step's one device-to-host copy, of 24 bytes into
// pinned memory, and a stream synchronization. An out-of-range label is found by the same kernels.
#include <climits>
#include <cmath>

#include "kernels.h"

namespace crunet::cuda {
namespace {

struct Result {  // written by the device, read by the host after the synchronization
  float loss;
  int correct, topk_correct;
  int bad_sample;  // first sample whose label is outside [0, K), or INT_MAX
};

// One warp per sample: max and argmax (ties to the lowest index, as the CPU kernel), sum of exp,
// the sample's loss, hit counts, and (training) the probabilities.
__global__ void xent_rows(const float* x, const int32_t* labels, const float* targets, int64_t n, int64_t k, int topk,
                          float eps, float* probs, float* row_loss, int* row_hits, Result* res) {
  const int64_t row = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (row >= n) return;
  const float* r = x + row * k;
  const int32_t label = labels[row];
  if (label < 0 || label >= k) {
    if (lane == 0) {
      atomicMin(&res->bad_sample, int(row));
      row_loss[row] = 0;
      row_hits[row] = 0;
    }
    return;
  }
  float mx = -INFINITY;
  int64_t arg = k;  // past the end: no element compared greater yet
  for (int64_t j = lane; j < k; j += 32)
    if (arg == k || r[j] > mx) mx = r[j], arg = j;  // strict: within a lane the lowest index wins
  for (int off = 16; off > 0; off >>= 1) {
    const float om = __shfl_down_sync(0xffffffffu, mx, off);
    const int64_t oa = __shfl_down_sync(0xffffffffu, arg, off);
    if (oa != k && (arg == k || om > mx || (om == mx && oa < arg))) mx = om, arg = oa;
  }
  mx = __shfl_sync(0xffffffffu, mx, 0);
  arg = __shfl_sync(0xffffffffu, arg, 0);
  float sum = 0, shifted = 0;  // shifted: sum of (x_j - mx), for label smoothing
  float tsum = 0, tdot = 0;     // soft targets t' (smoothed): sum of t'_j and of t'_j (x_j - mx)
  int above = 0;
  const float xl = r[label];
  const float* t = targets ? targets + row * k : nullptr;
  const float off_t = eps / float(k);
  for (int64_t j = lane; j < k; j += 32) {
    sum += expf(r[j] - mx);
    shifted += r[j] - mx;
    above += r[j] > xl;
    if (t) {
      const float tj = (1.f - eps) * t[j] + off_t;
      tsum += tj;
      if (tj != 0.f) tdot += tj * (r[j] - mx);  // 0 * -inf would be NaN
    }
  }
  for (int off = 16; off > 0; off >>= 1) {
    sum += __shfl_xor_sync(0xffffffffu, sum, off);
    shifted += __shfl_xor_sync(0xffffffffu, shifted, off);
    above += __shfl_xor_sync(0xffffffffu, above, off);
    tsum += __shfl_xor_sync(0xffffffffu, tsum, off);
    tdot += __shfl_xor_sync(0xffffffffu, tdot, off);
  }
  if (probs) {
    const float inv = 1.f / sum;
    if (t) {
      for (int64_t j = lane; j < k; j += 32) probs[row * k + j] = expf(r[j] - mx) * inv * tsum - ((1.f - eps) * t[j] + off_t);
    } else {
      for (int64_t j = lane; j < k; j += 32) probs[row * k + j] = expf(r[j] - mx) * inv;
    }
  }
  if (lane == 0) {
    // Unsmoothed, the loss is finite even when some logit is -inf (0 * -inf would make it NaN).
    const float target = eps > 0.f ? (1.f - eps) * (xl - mx) + eps * shifted / float(k) : xl - mx;
    row_loss[row] = t ? tsum * logf(sum) - tdot : logf(sum) - target;
    row_hits[row] = (arg == label ? 1 : 0) | (topk > 0 && above < topk ? 2 : 0);
  }
}

// One block: the mean loss (summed in double, in a fixed order), the hit counts, the saved labels.
__global__ void xent_reduce(const float* row_loss, const int* row_hits, const int32_t* labels, int64_t n,
                            float* loss_out, int32_t* saved_labels, Result* res) {
  __shared__ double s[256];
  __shared__ int c1[256], c2[256];
  double acc = 0;
  int a = 0, b = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    acc += row_loss[i];
    a += row_hits[i] & 1;
    b += (row_hits[i] >> 1) & 1;
    if (saved_labels) saved_labels[i] = labels[i];
  }
  s[threadIdx.x] = acc, c1[threadIdx.x] = a, c2[threadIdx.x] = b;
  __syncthreads();
  for (int st = blockDim.x / 2; st > 0; st >>= 1) {
    if (threadIdx.x < st) {
      s[threadIdx.x] += s[threadIdx.x + st];
      c1[threadIdx.x] += c1[threadIdx.x + st];
      c2[threadIdx.x] += c2[threadIdx.x + st];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    const float mean = float(s[0] / double(n));
    res->loss = mean;
    res->correct = c1[0];
    res->topk_correct = c2[0];
    if (loss_out) *loss_out = mean;
  }
}

__global__ void xent_reset(Result* res) {
  res->bad_sample = INT_MAX;
}

// dx = (p - target) * seed / N, target = (1 - eps) onehot(label) + eps / K, seed = dL/dloss (1 when none
// is given); with soft targets, saved already holds p S - t' and dx = saved * seed / N.
__global__ void xent_bwd(const float* probs, const int32_t* labels, const float* seed, float* dx, int64_t n,
                         int64_t k, float eps, bool soft) {
  const float scale = (seed ? *seed : 1.f) / float(n);
  const float off = eps / float(k), on = 1.f - eps + off;
  const int64_t total = n * k;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = i / k, j = i % k;
    dx[i] = soft ? probs[i] * scale : (probs[i] - (j == labels[row] ? on : off)) * scale;
  }
}

class SoftmaxCrossEntropy final : public CudaKernel {
 public:
  SoftmaxCrossEntropy(Device& dev, const NodeSpec& spec)
      : CudaKernel(dev, spec), n_(spec.in[0][0]), k_(spec.in[0][1]), topk_(spec.xent.topk), eps_(spec.xent.smoothing),
        soft_(spec.in.size() == 3) {
    CK(cudaMallocHost, op_, reinterpret_cast<void**>(&host_), sizeof(Result));
  }
  ~SoftmaxCrossEntropy() override { cudaFreeHost(host_); }

  size_t saved_bytes() const override { return (n_ * k_ + n_) * 4; }
  // scratch: per-row loss, per-row hits, the device Result
  size_t scratch_bytes() const override { return n_ * 4 * 2 + 64 + sizeof(Result); }
  bool backward_reads_input(int) const override { return false; }
  std::string impl_info() const override { return "own kernels (warp per sample)"; }

 protected:
  void fwd(const KernelIO& io) override {
    auto* scratch = static_cast<char*>(io.scratch);
    auto* row_loss = reinterpret_cast<float*>(scratch);
    auto* row_hits = reinterpret_cast<int*>(scratch + n_ * 4);
    auto* res = reinterpret_cast<Result*>(scratch + (n_ * 8 + 63) / 64 * 64);
    const auto* labels = static_cast<const int32_t*>(io.in[1]);
    float* probs = io.training ? static_cast<float*>(io.saved) : nullptr;
    int32_t* saved_labels = io.training ? reinterpret_cast<int32_t*>(probs + n_ * k_) : nullptr;
    xent_reset<<<1, 1, 0, dev_.stream>>>(res);
    check_launch("xent_reset", op_);
    xent_rows<<<unsigned((n_ * 32 + kThreads - 1) / kThreads), kThreads, 0, dev_.stream>>>(
        static_cast<const float*>(io.in[0]), labels, soft_ ? static_cast<const float*>(io.in[2]) : nullptr, n_, k_, topk_, eps_,
        probs, row_loss, row_hits, res);
    check_launch("xent_rows", op_);
    xent_reduce<<<1, 256, 0, dev_.stream>>>(row_loss, row_hits, labels, n_, static_cast<float*>(io.out), saved_labels,
                                            res);
    check_launch("xent_reduce", op_);
    CK(cudaMemcpyAsync, op_, host_, res, sizeof(Result), cudaMemcpyDeviceToHost, dev_.stream);
    CK(cudaStreamSynchronize, op_, dev_.stream);
    if (host_->bad_sample != INT_MAX) {
      int32_t label = 0;
      CK(cudaMemcpyAsync, op_, &label, labels + host_->bad_sample, sizeof label, cudaMemcpyDeviceToHost, dev_.stream);
      CK(cudaStreamSynchronize, op_, dev_.stream);
      fail(op_, ": label ", label, " of sample ", host_->bad_sample, " is outside [0, ", k_, ")");
    }
    if (io.stats) {
      io.stats->loss = host_->loss;
      io.stats->correct = host_->correct;
      io.stats->topk_correct = host_->topk_correct;
    }
  }

  void bwd(const KernelIO& io) override {
    float* dx = grad(io.in_grad, 0);
    if (!dx) return;
    const auto* probs = static_cast<const float*>(io.saved);
    const auto* labels = reinterpret_cast<const int32_t*>(probs + n_ * k_);
    xent_bwd<<<grid_for(n_ * k_), kThreads, 0, dev_.stream>>>(probs, labels, static_cast<const float*>(io.out_grad),
                                                              dx, n_, k_, eps_, soft_);
    check_launch("xent_bwd", op_);
  }

 private:
  int64_t n_, k_;
  int topk_;
  float eps_;
  bool soft_;  // a soft-target input: saved holds the unscaled gradient
  Result* host_ = nullptr;  // pinned
};

}  // namespace

std::unique_ptr<Kernel> make_softmax_cross_entropy(Device& dev, const NodeSpec& spec) {
  return std::make_unique<SoftmaxCrossEntropy>(dev, spec);
}

}  // namespace crunet::cuda
