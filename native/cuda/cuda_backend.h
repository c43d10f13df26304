// The CUDA backend: one device, one stream, one cuDNN and one cuBLAS handle bound to that stream, a
// caching allocator, and the cuDNN options its convolutions choose algorithms with. All of its work is
// enqueued on its stream; the host waits only where a value must reach it (download, the loss).
#pragma once
#include <climits>
#include <memory>

#include "allocator.h"
#include "cuda_util.h"

namespace crunet::cuda {

class CudaBackend final : public Backend {
 public:
  CudaBackend(int device, const CrunetCudnnOptionsV1& options);  // throws crunet::Error
  ~CudaBackend() override;

  std::string name() const override { return dev_.name(); }
  std::unique_ptr<Kernel> make_kernel(const NodeSpec& spec) override;

  void* alloc(size_t bytes) override;
  // cudaMalloc's alignment, which cuDNN's kernels assume of operands and workspaces; the memory plan
  // places every arena buffer on it.
  size_t arena_alignment() const override { return 256; }
  // cuDNN's legacy API describes tensors with int dimensions and strides: at most 2^31 - 1 elements.
  int64_t max_tensor_elements() const override { return INT32_MAX; }
  void release(void* p) override;
  void upload(void* dst, const void* host_src, size_t bytes) override;
  void download(void* host_dst, const void* src, size_t bytes) override;
  // Activations are NCHW on this backend: both are plain copies.
  void upload_activation(void* dst, const float* host_nchw, const Shape& s) override;
  void download_activation(float* host_nchw, const void* src, const Shape& s) override;

  void copy(void* dst, const void* src, size_t bytes) override;  // on the stream, no host round trip
  void zero(void* dst, size_t bytes) override;                    // cudaMemsetAsync on the stream
  void synchronize() override;                                    // cudaStreamSynchronize
  void accumulate(float* dst, const float* src, size_t n) override;
  double grad_sum_squares(const std::vector<UpdateSlot>& slots) override;
  int optimizer_step(const OptimizerConfig& cfg, const UpdateStep& step, const std::vector<UpdateSlot>& slots) override;
  void ema_step(float decay, const std::vector<EmaSlot>& slots) override;

  // No host threads compute here; the count is kept only so that the setting reads back.
  void set_num_threads(int n) override { threads_ = n; }
  int num_threads() const override { return threads_; }

 private:
  void make_current(const char* what);
  Device dev_;
  std::unique_ptr<Allocator> alloc_;
  int threads_ = 1;
  // Per parameter of the last step: an int set by the update kernels on NaN/Inf, then (8-byte aligned)
  // two doubles for LAMB's norms.
  void* update_flags_ = nullptr;
  size_t update_flag_count_ = 0;
  void* sum_ = nullptr;  // one double: grad_sum_squares' accumulator
};

}  // namespace crunet::cuda
