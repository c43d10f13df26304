// The memory planner: one pure function from buffer lifetimes over the linear schedule to offsets in
// one arena (after tinygrad's schedule/memory.py). Buffers whose lifetimes do not overlap may share
// bytes; reuse can be switched off to measure what it saves. Offsets and sizes are rounded up to the
// backend's alignment (Backend::arena_alignment()): 64 bytes on the CPU (a cache line, AVX-512 loads),
// 256 on CUDA (what cudaMalloc guarantees and cuDNN's kernels assume of their operands and workspaces).
#pragma once
#include <cstddef>
#include <vector>

namespace crunet {

struct BufferRequest {
  size_t bytes;
  int first, last;  // schedule steps (inclusive) during which the buffer holds live data
};

struct MemoryPlan {
  std::vector<size_t> offsets;  // one per request, each a multiple of the alignment
  size_t arena_bytes = 0;       // what the plan needs
  size_t naive_bytes = 0;       // the sum of all requests: what no reuse would need
};

MemoryPlan plan_memory(const std::vector<BufferRequest>& requests, bool reuse, size_t alignment);

}  // namespace crunet
