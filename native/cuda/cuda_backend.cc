#include "cuda_backend.h"

#include "kernels.h"

namespace crunet::cuda {

CudaBackend::CudaBackend(int device, const CrunetCudnnOptionsV1& options) {
  dev_.index = device;
  dev_.options = options;
  const std::string who = "device '" + dev_.name() + "'";
  CK(cudaSetDevice, who, device);
  CK(cudaStreamCreateWithFlags, who, &dev_.stream, cudaStreamNonBlocking);
  alloc_ = std::make_unique<Allocator>(device);
  dev_.alloc = alloc_.get();
  try {
    CK(cudnnCreate, who, &dev_.cudnn);
    CK(cudnnSetStream, who, dev_.cudnn, dev_.stream);
    CK(cublasCreate, who, &dev_.cublas);
    CK(cublasSetStream, who, dev_.cublas, dev_.stream);
    CK(cublasSetMathMode, who, dev_.cublas, CUBLAS_DEFAULT_MATH);
  } catch (...) {
    if (dev_.cublas) cublasDestroy(dev_.cublas);
    if (dev_.cudnn) cudnnDestroy(dev_.cudnn);
    cudaStreamDestroy(dev_.stream);
    throw;
  }
}

CudaBackend::~CudaBackend() {
  cudaSetDevice(dev_.index);
  cudaStreamSynchronize(dev_.stream);
  cublasDestroy(dev_.cublas);
  cudnnDestroy(dev_.cudnn);
  if (update_flags_) alloc_->release(update_flags_);
  if (sum_) alloc_->release(sum_);
  alloc_.reset();
  cudaStreamDestroy(dev_.stream);
}

void CudaBackend::make_current(const char* what) { CK(cudaSetDevice, std::string(what) + " on " + dev_.name(), dev_.index); }

std::unique_ptr<Kernel> CudaBackend::make_kernel(const NodeSpec& spec) {
  make_current("make_kernel");
  switch (spec.op) {
    case OpKind::conv2d: return make_conv2d(dev_, spec);
    case OpKind::linear: return make_linear(dev_, spec);
    case OpKind::batch_norm: return make_batch_norm(dev_, spec);
    case OpKind::relu: return make_relu(dev_, spec);
    case OpKind::max_pool:
    case OpKind::avg_pool: return make_pool(dev_, spec);
    case OpKind::global_avg_pool: return make_global_avg_pool(dev_, spec);
    case OpKind::add: return make_add(dev_, spec);
    case OpKind::softmax_cross_entropy: return make_softmax_cross_entropy(dev_, spec);
  }
  fail(node_label(spec), ": op has no CUDA kernel");
}

// Zero-filled on the stream, so ordered before any later use (the Backend contract).
void* CudaBackend::alloc(size_t bytes) {
  make_current("alloc");
  void* p = alloc_->alloc(bytes, "session memory (parameters, activations or workspace)");
  CK(cudaMemsetAsync, "alloc", p, 0, Allocator::round(bytes), dev_.stream);
  return p;
}

void CudaBackend::release(void* p) { alloc_->release(p); }

// From pageable host memory the driver stages the bytes before cudaMemcpyAsync returns, so the caller may
// reuse its buffer at once; the copy is ordered on the stream like every kernel.
void CudaBackend::upload(void* dst, const void* host_src, size_t bytes) {
  if (!bytes) return;
  make_current("upload");
  CK(cudaMemcpyAsync, "upload", dst, host_src, bytes, cudaMemcpyHostToDevice, dev_.stream);
}

void CudaBackend::download(void* host_dst, const void* src, size_t bytes) {
  if (!bytes) return;
  make_current("download");
  CK(cudaMemcpyAsync, "download", host_dst, src, bytes, cudaMemcpyDeviceToHost, dev_.stream);
  CK(cudaStreamSynchronize, "download (a fault raised here may come from an earlier kernel)", dev_.stream);
}

void CudaBackend::upload_activation(void* dst, const float* host_nchw, const Shape& s) {
  upload(dst, host_nchw, static_cast<size_t>(numel(s)) * sizeof(float));
}
void CudaBackend::download_activation(float* host_nchw, const void* src, const Shape& s) {
  download(host_nchw, src, static_cast<size_t>(numel(s)) * sizeof(float));
}

void CudaBackend::copy(void* dst, const void* src, size_t bytes) {
  if (!bytes) return;
  make_current("copy");
  CK(cudaMemcpyAsync, "copy", dst, src, bytes, cudaMemcpyDeviceToDevice, dev_.stream);
}

void CudaBackend::zero(void* dst, size_t bytes) {
  if (!bytes) return;
  make_current("zero");
  CK(cudaMemsetAsync, "zero", dst, 0, bytes, dev_.stream);
}

void CudaBackend::synchronize() {
  make_current("synchronize");
  CK(cudaStreamSynchronize, "synchronize", dev_.stream);
}

void CudaBackend::accumulate(float* dst, const float* src, size_t n) {
  make_current("accumulate");
  cuda::accumulate(dev_, dst, src, n);
}

double CudaBackend::grad_sum_squares(const std::vector<UpdateSlot>& slots) {
  make_current("grad_sum_squares");
  if (!sum_) sum_ = alloc(sizeof(double));
  zero(sum_, sizeof(double));
  for (const auto& s : slots) add_sum_squares(dev_, s.grad, s.n, static_cast<double*>(sum_));
  double host = 0;
  download(&host, sum_, sizeof host);  // the norm decides the clipping factor: one small read back per step
  return host;
}

int CudaBackend::optimizer_step(const OptimizerConfig& cfg, const UpdateStep& step, const std::vector<UpdateSlot>& slots) {
  make_current("optimizer_step");
  if (slots.empty()) return -1;
  const size_t flag_bytes = (slots.size() * sizeof(int) + 7) / 8 * 8, bytes = flag_bytes + slots.size() * 2 * sizeof(double);
  if (update_flag_count_ < slots.size()) {
    if (update_flags_) release(update_flags_);
    update_flags_ = nullptr;
    update_flags_ = alloc(bytes);
    update_flag_count_ = slots.size();
  }
  int* flags = static_cast<int*>(update_flags_);
  double* sums = reinterpret_cast<double*>(static_cast<char*>(update_flags_) + flag_bytes);
  zero(update_flags_, cfg.rule == UpdateRule::lamb ? bytes : flag_bytes);
  for (size_t k = 0; k < slots.size(); k++) optimizer_update(dev_, cfg, step, slots[k], flags + k, sums + 2 * k);
  std::vector<int> host(slots.size());
  download(host.data(), flags, host.size() * sizeof(int));  // one small read back per step (it synchronizes)
  for (size_t k = 0; k < host.size(); k++)
    if (host[k]) return static_cast<int>(k);
  return -1;
}

void CudaBackend::ema_step(float decay, const std::vector<EmaSlot>& slots) {
  make_current("ema_step");
  for (const auto& s : slots) ema_update(dev_, decay, s);
}

}  // namespace crunet::cuda
