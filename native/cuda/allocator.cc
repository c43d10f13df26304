#include "allocator.h"

#include <cuda_runtime_api.h>

#include "../core/error.h"

namespace crunet::cuda {
namespace {

std::string mib(size_t b) {
  char s[64];
  snprintf(s, sizeof s, "%zu bytes (%.1f MiB)", b, b / 1048576.0);
  return s;
}

}  // namespace

// Small blocks in 512-byte steps, large ones in 2 MiB steps (fewer distinct sizes to cache).
size_t Allocator::round(size_t bytes) {
  if (bytes == 0) bytes = 1;
  const size_t step = bytes < (1u << 20) ? 512 : (2u << 20);
  return (bytes + step - 1) / step * step;
}

Allocator::~Allocator() { empty_cache(); }

void* Allocator::alloc(size_t bytes, const std::string& what) {
  const size_t size = round(bytes);
  std::lock_guard<std::mutex> lock(mu_);
  // Reuse a cached block of this size, or one at most 1/8 larger.
  auto it = free_.lower_bound(size);
  if (it != free_.end() && it->first <= size + size / 8) {
    void* p = it->second;
    size_t got = it->first;
    free_.erase(it);
    cached_bytes_ -= got;
    live_[p] = got;
    live_bytes_ += got;
    return p;
  }
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, size);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // clear it, then give the cache back and try once more
    for (auto& [s, q] : free_) cudaFree(q);
    free_.clear();
    cached_bytes_ = 0;
    e = cudaMalloc(&p, size);
  }
  if (e != cudaSuccess) {
    cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    if (e == cudaErrorMemoryAllocation)
      fail(what, ": out of device memory on cuda:", device_, ": asked for ", mib(bytes), "; ", mib(free_b),
           " free of ", mib(total_b), ", ", mib(live_bytes_), " in use by crunet (its cache was released first)");
    fail(what, ": cudaMalloc of ", mib(bytes), " on cuda:", device_, " failed: ", cudaGetErrorName(e), ": ",
         cudaGetErrorString(e));
  }
  live_[p] = size;
  live_bytes_ += size;
  return p;
}

void Allocator::release(void* p) {
  if (!p) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_.find(p);
  if (it == live_.end()) return;  // not ours: nothing to do (never cudaFree a foreign pointer)
  free_.emplace(it->second, p);
  cached_bytes_ += it->second;
  live_bytes_ -= it->second;
  live_.erase(it);
}

void Allocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [s, p] : free_) cudaFree(p);
  free_.clear();
  cached_bytes_ = 0;
}

size_t Allocator::cached_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cached_bytes_;
}
size_t Allocator::live_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return live_bytes_;
}
size_t Allocator::available_bytes() const {
  size_t free_b = 0, total_b = 0;
  if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
    cudaGetLastError();
    free_b = 0;
  }
  return free_b + cached_bytes();
}

}  // namespace crunet::cuda
