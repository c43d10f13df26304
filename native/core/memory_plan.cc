#include "memory_plan.h"

#include <algorithm>
#include <numeric>

#include "error.h"

namespace crunet {

// Greedy by size: place the largest buffers first, each at the lowest offset that does not collide
// with an already placed buffer whose lifetime overlaps. Simple, and within a few percent of optimal
// for the chain-like lifetimes of a training step.
MemoryPlan plan_memory(const std::vector<BufferRequest>& req, bool reuse, size_t alignment) {
  if (alignment == 0 || (alignment & (alignment - 1))) fail("memory plan: alignment ", alignment, " is not a power of two");
  auto align_up = [alignment](size_t n) { return (n + alignment - 1) / alignment * alignment; };
  MemoryPlan plan;
  plan.offsets.assign(req.size(), 0);
  for (auto& r : req) plan.naive_bytes += align_up(r.bytes);
  if (!reuse) {
    size_t off = 0;
    for (size_t i = 0; i < req.size(); i++) {
      plan.offsets[i] = off;
      off += align_up(req[i].bytes);
    }
    plan.arena_bytes = off;
    return plan;
  }

  std::vector<size_t> order(req.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return req[a].bytes > req[b].bytes; });

  std::vector<size_t> placed;  // indices, kept sorted by offset
  for (size_t i : order) {
    size_t size = align_up(req[i].bytes), off = 0;
    for (size_t j : placed) {  // walk live neighbours in offset order, sliding past each collision
      bool overlap_time = req[j].first <= req[i].last && req[i].first <= req[j].last;
      if (!overlap_time) continue;
      size_t jend = plan.offsets[j] + align_up(req[j].bytes);
      if (plan.offsets[j] < off + size && off < jend) off = jend;
    }
    plan.offsets[i] = off;
    plan.arena_bytes = std::max(plan.arena_bytes, off + size);
    placed.insert(std::upper_bound(placed.begin(), placed.end(), i,
                                   [&](size_t a, size_t b) { return plan.offsets[a] < plan.offsets[b]; }),
                  i);
  }
  return plan;
}

}  // namespace crunet
