#include "conv_algo.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

#include "allocator.h"

namespace crunet::cuda {
namespace {

const char* algo_name(ConvDir d, int a) {
  static const char* fwd[] = {"IMPLICIT_GEMM", "IMPLICIT_PRECOMP_GEMM", "GEMM", "DIRECT",
                              "FFT", "FFT_TILING", "WINOGRAD", "WINOGRAD_NONFUSED"};
  static const char* data[] = {"ALGO_0", "ALGO_1", "FFT", "FFT_TILING", "WINOGRAD", "WINOGRAD_NONFUSED"};
  static const char* filt[] = {"ALGO_0", "ALGO_1", "FFT", "ALGO_3", "WINOGRAD", "WINOGRAD_NONFUSED", "FFT_TILING"};
  switch (d) {
    case ConvDir::forward: return a >= 0 && a < 8 ? fwd[a] : "?";
    case ConvDir::backward_data: return a >= 0 && a < 6 ? data[a] : "?";
    case ConvDir::backward_filter: return a >= 0 && a < 7 ? filt[a] : "?";
  }
  return "?";
}

const char* math_name(cudnnMathType_t m) {
  switch (m) {
    case CUDNN_DEFAULT_MATH: return "default";
    case CUDNN_TENSOR_OP_MATH: return "tensor-op";
    case CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION: return "tensor-op+conversion";
    case CUDNN_FMA_MATH: return "fma";
  }
  return "?";
}

// One perf record, whatever the direction.
struct Perf {
  int algo;
  cudnnStatus_t status;
  float time;
  size_t memory;
  cudnnDeterminism_t determinism;
  cudnnMathType_t math;
};
template <typename P>
Perf to_perf(const P& p) {
  return {static_cast<int>(p.algo), p.status, p.time, p.memory, p.determinism, p.mathType};
}

// The three directions' cuDNN calls behind one interface. Buffers are only used by find().
struct Buffers {
  void *x = nullptr, *w = nullptr, *y = nullptr, *ws = nullptr;
  size_t ws_bytes = 0;
};

int max_count(cudnnHandle_t h, ConvDir d, const std::string& op) {
  int n = 0;
  switch (d) {
    case ConvDir::forward: CK(cudnnGetConvolutionForwardAlgorithmMaxCount, op, h, &n); break;
    case ConvDir::backward_data: CK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount, op, h, &n); break;
    case ConvDir::backward_filter: CK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount, op, h, &n); break;
  }
  return n;
}

std::vector<Perf> heuristics(cudnnHandle_t h, ConvDir d, const ConvDescs& c, int count, const std::string& op) {
  int got = 0;
  std::vector<Perf> out;
  switch (d) {
    case ConvDir::forward: {
      std::vector<cudnnConvolutionFwdAlgoPerf_t> p(count);
      CK(cudnnGetConvolutionForwardAlgorithm_v7, op, h, c.x, c.w, c.conv, c.y, count, &got, p.data());
      for (int i = 0; i < got; i++) out.push_back(to_perf(p[i]));
      break;
    }
    case ConvDir::backward_data: {
      std::vector<cudnnConvolutionBwdDataAlgoPerf_t> p(count);
      CK(cudnnGetConvolutionBackwardDataAlgorithm_v7, op, h, c.w, c.y, c.conv, c.x, count, &got, p.data());
      for (int i = 0; i < got; i++) out.push_back(to_perf(p[i]));
      break;
    }
    case ConvDir::backward_filter: {
      std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> p(count);
      CK(cudnnGetConvolutionBackwardFilterAlgorithm_v7, op, h, c.x, c.y, c.conv, c.w, count, &got, p.data());
      for (int i = 0; i < got; i++) out.push_back(to_perf(p[i]));
      break;
    }
  }
  return out;
}

std::vector<Perf> find(cudnnHandle_t h, ConvDir d, const ConvDescs& c, int count, const Buffers& b,
                       const std::string& op) {
  int got = 0;
  std::vector<Perf> out;
  switch (d) {
    case ConvDir::forward: {
      std::vector<cudnnConvolutionFwdAlgoPerf_t> p(count);
      CK(cudnnFindConvolutionForwardAlgorithmEx, op, h, c.x, b.x, c.w, b.w, c.conv, c.y, b.y, count, &got, p.data(),
         b.ws, b.ws_bytes);
      for (int i = 0; i < got; i++) out.push_back(to_perf(p[i]));
      break;
    }
    case ConvDir::backward_data: {
      std::vector<cudnnConvolutionBwdDataAlgoPerf_t> p(count);
      CK(cudnnFindConvolutionBackwardDataAlgorithmEx, op, h, c.w, b.w, c.y, b.y, c.conv, c.x, b.x, count, &got,
         p.data(), b.ws, b.ws_bytes);
      for (int i = 0; i < got; i++) out.push_back(to_perf(p[i]));
      break;
    }
    case ConvDir::backward_filter: {
      std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> p(count);
      CK(cudnnFindConvolutionBackwardFilterAlgorithmEx, op, h, c.x, b.x, c.y, b.y, c.conv, c.w, b.w, count, &got,
         p.data(), b.ws, b.ws_bytes);
      for (int i = 0; i < got; i++) out.push_back(to_perf(p[i]));
      break;
    }
  }
  return out;
}

// Workspace of one algorithm under the descriptor's current math type; false when cuDNN refuses it.
bool workspace_size(cudnnHandle_t h, ConvDir d, const ConvDescs& c, int algo, size_t* bytes) {
  cudnnStatus_t s = CUDNN_STATUS_SUCCESS;
  switch (d) {
    case ConvDir::forward:
      s = cudnnGetConvolutionForwardWorkspaceSize(h, c.x, c.w, c.conv, c.y, cudnnConvolutionFwdAlgo_t(algo), bytes);
      break;
    case ConvDir::backward_data:
      s = cudnnGetConvolutionBackwardDataWorkspaceSize(h, c.w, c.y, c.conv, c.x, cudnnConvolutionBwdDataAlgo_t(algo),
                                                        bytes);
      break;
    case ConvDir::backward_filter:
      s = cudnnGetConvolutionBackwardFilterWorkspaceSize(h, c.x, c.y, c.conv, c.w,
                                                          cudnnConvolutionBwdFilterAlgo_t(algo), bytes);
      break;
  }
  return s == CUDNN_STATUS_SUCCESS;
}

// A temporary device buffer from the backend's allocator, returned to its cache on scope exit.
struct Scratch {
  Allocator& a;
  void* p = nullptr;
  Scratch(Allocator& al, size_t bytes, const std::string& what) : a(al), p(al.alloc(bytes, what)) {}
  Scratch(Allocator& al) : a(al) {}
  ~Scratch() { a.release(p); }
};

struct Cache {
  std::mutex mu;
  std::map<std::string, AlgoChoice> by_key[3];  // one per direction
};
Cache& cache() {
  static Cache* c = new Cache;  // never destroyed: may be used until the process exits
  return *c;
}
std::string key_bytes(const ConvKey& k) { return std::string(reinterpret_cast<const char*>(&k), sizeof k); }

}  // namespace

const char* dir_name(ConvDir d) {
  switch (d) {
    case ConvDir::forward: return "forward";
    case ConvDir::backward_data: return "backward-data";
    case ConvDir::backward_filter: return "backward-filter";
  }
  return "?";
}

std::string AlgoChoice::describe(ConvDir d) const {
  std::string s = std::string(algo_name(d, algo)) + " (" + math_name(math) + ", workspace " +
                  std::to_string(workspace) + " B";
  if (ms >= 0) s += ", " + std::to_string(ms) + " ms";
  s += ms >= 0 ? ", benchmarked" : ", heuristic";
  if (cached) s += ", cached";
  return s + ")";
}

AlgoChoice choose_algo(Device& dev, ConvDir dir, const ConvKey& key, const ConvDescs& d, const std::string& op) {
  const std::string k = key_bytes(key);
  {
    std::lock_guard<std::mutex> lock(cache().mu);
    auto& m = cache().by_key[static_cast<int>(dir)];
    auto it = m.find(k);
    if (it != m.end()) {
      AlgoChoice c = it->second;
      c.cached = true;
      CK(cudnnSetConvolutionMathType, op, d.conv, c.math);
      return c;
    }
  }

  const cudnnHandle_t h = dev.cudnn;
  const bool tf32 = key.allow_tf32 != 0;
  // Note [math type]: as PyTorch, search under DEFAULT math (which permits TF32 on fp32 data from
  // Ampere on) or FMA when TF32 is not allowed, then run each candidate with the math type it reports.
  const cudnnMathType_t base_math = tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
  CK(cudnnSetConvolutionMathType, op, d.conv, base_math);
  const int count = std::max(1, max_count(h, dir, op));

  std::vector<Perf> perfs;
  if (key.benchmark) {
    const int asked = key.benchmark_limit > 0 ? std::min(count, int(key.benchmark_limit)) : count;
    const size_t x_bytes = size_t(key.n) * key.c * key.h * key.w * 4;
    const size_t w_bytes = size_t(key.o) * (key.c / key.groups) * key.kh * key.kw * 4;
    const int oh = (key.h + 2 * key.ph - key.dh * (key.kh - 1) - 1) / key.sh + 1;
    const int ow = (key.w + 2 * key.pw - key.dw * (key.kw - 1) - 1) / key.sw + 1;
    const size_t y_bytes = size_t(key.n) * key.o * oh * ow * 4;
    Scratch x(*dev.alloc, x_bytes, op + ": cuDNN benchmark input"), w(*dev.alloc, w_bytes, op + ": cuDNN benchmark weights"),
        y(*dev.alloc, y_bytes, op + ": cuDNN benchmark output");
    // The largest workspace any algorithm wants, capped by what the device can give; halved on failure.
    size_t want = 0;
    for (int a = 0; a < count; a++) {
      size_t b = 0;
      if (workspace_size(h, dir, d, a, &b)) want = std::max(want, b);
    }
    want = std::min(want, dev.alloc->available_bytes() / 10 * 9);
    Scratch ws(*dev.alloc);
    for (; want > 0 && !ws.p; want /= 2) {
      try {
        ws.p = dev.alloc->alloc(want, op + ": cuDNN benchmark workspace");
      } catch (const Error&) {
      }
    }
    if (!ws.p) want = 0;
    Buffers b{x.p, w.p, y.p, ws.p, ws.p ? want : 0};
    perfs = find(h, dir, d, asked, b, op);
    CK(cudaStreamSynchronize, op, dev.stream);
  } else {
    perfs = heuristics(h, dir, d, count, op);
  }

  // Candidates in cuDNN's order; the first whose workspace can be allocated wins.
  std::string tried;
  for (const Perf& p : perfs) {
    if (p.status != CUDNN_STATUS_SUCCESS) continue;
    if (key.deterministic && p.determinism != CUDNN_DETERMINISTIC) continue;
    const cudnnMathType_t math = tf32 ? p.math : CUDNN_FMA_MATH;
    if (cudnnSetConvolutionMathType(d.conv, math) != CUDNN_STATUS_SUCCESS) continue;
    size_t ws = 0;
    if (!workspace_size(h, dir, d, p.algo, &ws)) continue;
    try {
      Scratch probe(*dev.alloc, ws, op);
    } catch (const Error& e) {  // Note [fall back on out-of-memory]: try the next candidate
      tried += std::string(tried.empty() ? "" : "; ") + algo_name(dir, p.algo) + ": " + e.what();
      continue;
    }
    AlgoChoice c;
    c.algo = p.algo;
    c.math = math;
    c.workspace = ws;
    c.ms = key.benchmark ? p.time : -1;
    std::lock_guard<std::mutex> lock(cache().mu);
    cache().by_key[static_cast<int>(dir)].emplace(k, c);
    return c;
  }
  CK(cudnnSetConvolutionMathType, op, d.conv, base_math);
  fail(op, ": no cuDNN ", dir_name(dir), " algorithm is usable for x [", key.n, ",", key.c, ",", key.h, ",", key.w,
       "], w [", key.o, ",", key.c / key.groups, ",", key.kh, ",", key.kw, "], groups ", key.groups, ", stride ", key.sh,
       "x", key.sw, ", padding ", key.ph, "x", key.pw, " (deterministic ", key.deterministic, ", allowTF32 ",
       key.allow_tf32, ", benchmark ", key.benchmark, ", ", perfs.size(), " candidates",
       tried.empty() ? std::string(")") : "; out of memory: " + tried + ")");
}

}  // namespace crunet::cuda
