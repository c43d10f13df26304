// Shared plumbing for the CUDA backend: status checks that turn a CUDA, cuDNN or cuBLAS failure into a
// crunet::Error naming the op, the device context every kernel holds (stream, library handles,
// allocator, cuDNN options), and the CudaKernel base that makes the device current around each call.
#pragma once
// The core's types cross into the addon (exceptions, virtual tables): keep their visibility default
// although this library is built with -fvisibility=hidden.
#pragma GCC visibility push(default)
#include "../core/backend.h"
#include "../core/backend_abi.h"
#include "../core/error.h"
#pragma GCC visibility pop

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <string>

namespace crunet::cuda {

class Allocator;

// One device's context, owned by CudaBackend and referenced by its kernels (which it outlives).
struct Device {
  int index = 0;
  cudaStream_t stream = nullptr;
  cudnnHandle_t cudnn = nullptr;
  cublasHandle_t cublas = nullptr;
  CrunetCudnnOptionsV1 options{};
  Allocator* alloc = nullptr;
  std::string name() const { return "cuda:" + std::to_string(index); }
};

// "node conv1 (conv2d): cudnnConvolutionForward failed: CUDNN_STATUS_BAD_PARAM (cuDNN's last message)"
[[noreturn]] void throw_status(const std::string& op, const char* call, cudaError_t e);
[[noreturn]] void throw_status(const std::string& op, const char* call, cudnnStatus_t s);
[[noreturn]] void throw_status(const std::string& op, const char* call, cublasStatus_t s);
inline void check(cudaError_t e, const char* call, const std::string& op) {
  if (e != cudaSuccess) throw_status(op, call, e);
}
inline void check(cudnnStatus_t s, const char* call, const std::string& op) {
  if (s != CUDNN_STATUS_SUCCESS) throw_status(op, call, s);
}
inline void check(cublasStatus_t s, const char* call, const std::string& op) {
  if (s != CUBLAS_STATUS_SUCCESS) throw_status(op, call, s);
}
// CK(cudnnConvolutionForward, op, args...) calls the function and names it in the error.
#define CK(fn, op, ...) ::crunet::cuda::check(fn(__VA_ARGS__), #fn, op)
// After a launch of one of our kernels: a bad launch configuration surfaces here, naming the op.
void check_launch(const char* kernel, const std::string& op);

// Owned cuDNN descriptors (created once per kernel, at compile time).
struct TensorDesc {
  cudnnTensorDescriptor_t d = nullptr;
  TensorDesc() = default;
  TensorDesc(const TensorDesc&) = delete;
  TensorDesc& operator=(const TensorDesc&) = delete;
  ~TensorDesc() { if (d) cudnnDestroyTensorDescriptor(d); }
  // Plain NCHW f32 (rank 2 [N,C] is viewed as [N,C,1,1]: the same bytes).
  void set_nchw(const Shape& s, const std::string& op);
};

// A Kernel whose forward/backward run with the device current (the engine thread may drive several
// devices) and with CUDA failures reported as errors naming the node.
class CudaKernel : public Kernel {
 public:
  CudaKernel(Device& dev, const NodeSpec& spec) : dev_(dev), op_(node_label(spec)) {}
  void forward(const KernelIO& io) final;
  void backward(const KernelIO& io) final;

 protected:
  virtual void fwd(const KernelIO& io) = 0;
  virtual void bwd(const KernelIO& io) = 0;
  static float* grad(const std::vector<float*>& v, size_t i) { return i < v.size() ? v[i] : nullptr; }
  Device& dev_;
  std::string op_;
};

// Threads per block for the elementwise kernels, and a grid that covers n elements with a grid-stride loop.
constexpr int kThreads = 256;
inline unsigned grid_for(size_t n) {
  size_t b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(b < 65535 * 8 ? (b ? b : 1) : 65535 * 8);
}

}  // namespace crunet::cuda
