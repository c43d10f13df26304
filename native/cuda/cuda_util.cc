#include "cuda_util.h"

namespace crunet::cuda {

void throw_status(const std::string& op, const char* call, cudaError_t e) {
  cudaGetLastError();  // clear a non-sticky error so that the session stays usable
  if (e == cudaErrorMemoryAllocation)
    fail(op, ": ", call, " failed: out of device memory (", cudaGetErrorString(e), ")");
  fail(op, ": ", call, " failed: ", cudaGetErrorName(e), ": ", cudaGetErrorString(e));
}

void throw_status(const std::string& op, const char* call, cudnnStatus_t s) {
  char last[512] = {0};
  cudnnGetLastErrorString(last, sizeof last);
  fail(op, ": ", call, " failed: ", cudnnGetErrorString(s), last[0] ? std::string(" (") + last + ")" : std::string());
}

void throw_status(const std::string& op, const char* call, cublasStatus_t s) {
  fail(op, ": ", call, " failed: ", cublasGetStatusName(s), " (", cublasGetStatusString(s), ")");
}

void check_launch(const char* kernel, const std::string& op) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) throw_status(op, kernel, e);
}

void TensorDesc::set_nchw(const Shape& s, const std::string& op) {
  if (!d) CK(cudnnCreateTensorDescriptor, op, &d);
  if (s.size() != 4 && s.size() != 2) fail(op, ": cuDNN tensors here are rank 2 or 4, got ", shape_str(s));
  for (auto v : s)
    if (v > 0x7fffffff) fail(op, ": dimension ", v, " of ", shape_str(s), " does not fit cuDNN's int");
  const int n = int(s[0]), c = int(s[1]), h = s.size() == 4 ? int(s[2]) : 1, w = s.size() == 4 ? int(s[3]) : 1;
  CK(cudnnSetTensor4dDescriptor, op, d, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, n, c, h, w);
}

void CudaKernel::forward(const KernelIO& io) {
  CK(cudaSetDevice, op_, dev_.index);
  fwd(io);
}

void CudaKernel::backward(const KernelIO& io) {
  CK(cudaSetDevice, op_, dev_.index);
  bwd(io);
}

}  // namespace crunet::cuda
