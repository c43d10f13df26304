// A simple caching allocator for one device (after PyTorch's CUDACachingAllocator, much reduced): freed
// blocks are kept by size and handed out again, so a session's compile and dispose cost no cudaMalloc
// or cudaFree after warm-up. All users of one allocator work on one stream, so a block released on the
// host may be reused at once: later work on the stream is ordered after the work that used it.
// When cudaMalloc fails the cache is returned to the driver and the allocation retried once; a second
// failure is an Error naming what asked, the bytes asked, and the device's free and total memory.
#pragma once
#include <cstddef>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>

namespace crunet::cuda {

class Allocator {
 public:
  explicit Allocator(int device) : device_(device) {}
  ~Allocator();
  Allocator(const Allocator&) = delete;
  Allocator& operator=(const Allocator&) = delete;

  // `what` names the requester in an out-of-memory error ("node conv1 (conv2d): workspace").
  void* alloc(size_t bytes, const std::string& what);
  void release(void* p);
  void empty_cache();  // returns every cached block to the driver
  size_t cached_bytes() const;
  size_t live_bytes() const;
  // Device memory a new allocation could use: the driver's free memory plus this cache.
  size_t available_bytes() const;

  static size_t round(size_t bytes);

 private:
  int device_;
  mutable std::mutex mu_;
  std::unordered_map<void*, size_t> live_;  // pointer -> rounded size
  std::multimap<size_t, void*> free_;       // rounded size -> pointer
  size_t live_bytes_ = 0, cached_bytes_ = 0;
};

}  // namespace crunet::cuda
