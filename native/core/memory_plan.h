// The memory planner: one pure function from buffer lifetimes over the linear schedule to offsets in
// one arena (after tinygrad's schedule/memory.py). Buffers whose lifetimes do not overlap may share
// bytes; reuse can be switched off to measure what it saves.
#pragma once
#include <cstddef>
#include <vector>

namespace crunet {

struct BufferRequest {
  size_t bytes;
  int first, last;  // schedule steps (inclusive) during which the buffer holds live data
};

struct MemoryPlan {
  std::vector<size_t> offsets;  // one per request, 64-byte aligned
  size_t arena_bytes = 0;       // what the plan needs
  size_t naive_bytes = 0;       // the sum of all requests: what no reuse would need
};

MemoryPlan plan_memory(const std::vector<BufferRequest>& requests, bool reuse = true);

}  // namespace crunet
