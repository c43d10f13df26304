// Shared oneDNN plumbing for the CPU kernels: the one engine and stream, memory descriptors for
// crunet's layouts, user-mode scratchpads, and a checked execute. All oneDNN calls run on the engine thread (see
// native/addon/engine_thread.h), so one global stream is enough.
#pragma once
#include <oneapi/dnnl/dnnl.hpp>
#include <chrono>
#include <unordered_map>

#include "../core/error.h"
#include "../core/ops.h"

namespace crunet::cpu {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;
using dnnl::memory;
using Args = std::unordered_map<int, memory>;

dnnl::engine& engine();
dnnl::stream& stream();

// [N,C,H,W] activation stored NHWC.
inline memory::desc act_md(const Shape& s, dt t = dt::f32) {
  return memory::desc({s[0], s[1], s[2], s[3]}, t, tag::nhwc);
}
// Rank-2 [N,F] row-major.
inline memory::desc mat_md(const Shape& s, dt t = dt::f32) { return memory::desc({s[0], s[1]}, t, tag::ab); }
inline memory::desc vec_md(int64_t n, dt t = dt::f32) { return memory::desc({n}, t, tag::a); }

// A memory object over an existing buffer (no allocation).
inline memory wrap(const memory::desc& md, const void* p) {
  return memory(md, engine(), const_cast<void*>(p));
}

// Kernels build their primitives with a user-mode scratchpad and lay out io.scratch themselves (the
// executor gives every kernel the same scratch, sized for the largest): pieces start on kScratchAlign.
constexpr size_t kScratchAlign = 64;
inline size_t align_up(size_t n) { return (n + kScratchAlign - 1) / kScratchAlign * kScratchAlign; }

inline dnnl::primitive_attr user_scratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

template <typename PD>
size_t scratchpad_size(const PD& pd) {
  return pd.scratchpad_desc().get_size();
}

// Primitives run one after another, so all of them use the same scratchpad at the start of io.scratch.
template <typename PD>
void add_scratchpad(Args& args, const PD& pd, void* scratch) {
  if (scratchpad_size(pd) > 0) args[DNNL_ARG_SCRATCHPAD] = wrap(pd.scratchpad_desc(), scratch);
}

// Total time inside oneDNN primitives since start (engine thread only), so that benchmarks can
// compare a step with the library work it calls.
inline double& primitive_seconds() {
  static double s = 0;
  return s;
}

// Runs a primitive and waits; a dnnl::error becomes a crunet::Error naming the node (node_label).
inline void run(const dnnl::primitive& p, const Args& args, const std::string& node) {
  auto t0 = std::chrono::steady_clock::now();
  try {
    p.execute(stream(), args);
    stream().wait();
  } catch (const dnnl::error& e) {
    fail(node, ": oneDNN failed: ", e.what());
  }
  primitive_seconds() += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The implementation oneDNN picked, e.g. "brgconv:avx512_core".
template <typename PD>
std::string impl_of(const PD& pd) {
  return pd.impl_info_str();
}

}  // namespace crunet::cpu
