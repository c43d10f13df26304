#include "conv_algo.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
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

// Runs one convolution of direction d with algorithm `algo` on the scratch buffers (outputs overwritten).
cudnnStatus_t run_once(cudnnHandle_t h, ConvDir d, const ConvDescs& c, int algo, const Buffers& b) {
  const float one = 1, zero = 0;
  switch (d) {
    case ConvDir::forward:
      return cudnnConvolutionForward(h, &one, c.x, b.x, c.w, b.w, c.conv, cudnnConvolutionFwdAlgo_t(algo), b.ws,
                                     b.ws_bytes, &zero, c.y, b.y);
    case ConvDir::backward_data:
      return cudnnConvolutionBackwardData(h, &one, c.w, b.w, c.y, b.y, c.conv, cudnnConvolutionBwdDataAlgo_t(algo),
                                          b.ws, b.ws_bytes, &zero, c.x, b.x);
    case ConvDir::backward_filter:
      return cudnnConvolutionBackwardFilter(h, &one, c.x, b.x, c.y, b.y, c.conv,
                                            cudnnConvolutionBwdFilterAlgo_t(algo), b.ws, b.ws_bytes, &zero, c.w, b.w);
  }
  return CUDNN_STATUS_BAD_PARAM;
}

constexpr int kTimedRuns = 3;

// Events for timing on the device's stream.
struct Events {
  cudaEvent_t start = nullptr, stop = nullptr;
  explicit Events(const std::string& op) {
    CK(cudaEventCreate, op, &start);
    CK(cudaEventCreate, op, &stop);
  }
  ~Events() {
    if (start) cudaEventDestroy(start);
    if (stop) cudaEventDestroy(stop);
  }
};

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
  std::set<int> dirty;  // devices with choices searched since their cache file was last written or read
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
  s += benchmarked ? ", benchmarked" : ", heuristic";
  if (cached) s += from_file ? ", cached from file" : ", cached";
  return s + ")";
}

std::string json_str(const std::string& v) {
  std::string o = "\"";
  for (char ch : v) {
    if (ch == '"' || ch == '\\') o += '\\', o += ch;
    else if (static_cast<unsigned char>(ch) < 0x20) o += ' ';
    else o += ch;
  }
  return o + "\"";
}

std::string AlgoChoice::json(ConvDir d) const {
  std::ostringstream o;
  o << "{\"direction\":" << json_str(dir_name(d)) << ",\"algo\":" << json_str(algo_name(d, algo))
    << ",\"math\":" << json_str(math_name(math)) << ",\"workspace\":" << workspace << ",\"ms\":" << ms
    << ",\"mode\":" << json_str(benchmarked ? "benchmark" : "heuristic") << ",\"cached\":" << (cached ? "true" : "false")
    << ",\"fromFile\":" << (from_file ? "true" : "false") << ",\"candidates\":[";
  for (size_t i = 0; i < candidates.size(); i++) {
    const AlgoCandidate& c = candidates[i];
    o << (i ? "," : "") << "{\"algo\":" << json_str(algo_name(d, c.algo)) << ",\"math\":" << json_str(math_name(c.math))
      << ",\"workspace\":" << c.workspace << ",\"ms\":" << c.ms << ",\"deterministic\":" << (c.deterministic ? "true" : "false")
      << ",\"skipped\":" << (c.skipped.empty() ? std::string("null") : json_str(c.skipped)) << "}";
  }
  o << "]}";
  return o.str();
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
  // Note [math type]: as PyTorch, ask for candidates under DEFAULT math (which permits TF32 on fp32 data
  // from Ampere on) or FMA when TF32 is not allowed, then run each with the math type it reports.
  const cudnnMathType_t base_math = tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
  CK(cudnnSetConvolutionMathType, op, d.conv, base_math);
  const int count = std::max(1, max_count(h, dir, op));

  // The candidates: cuDNN's heuristic order, less the unsupported, (deterministic) the nondeterministic,
  // and repeats (the heuristics can list an algorithm under two math types, which are one with TF32 off).
  std::vector<AlgoCandidate> cands;
  for (const Perf& p : heuristics(h, dir, d, count, op)) {
    if (p.status != CUDNN_STATUS_SUCCESS) continue;
    if (key.deterministic && p.determinism != CUDNN_DETERMINISTIC) continue;
    AlgoCandidate c;
    c.algo = p.algo;
    c.math = tf32 ? p.math : CUDNN_FMA_MATH;
    c.deterministic = p.determinism == CUDNN_DETERMINISTIC;
    if (std::none_of(cands.begin(), cands.end(), [&](const AlgoCandidate& o) { return o.algo == c.algo && o.math == c.math; }))
      cands.push_back(c);
  }

  // Note [trial run]: every candidate is run once on scratch tensors of the convolution's sizes (zeroed,
  // so that no NaN or denormal garbage skews the times) before it is trusted, as PyTorch's try_all: cuDNN
  // can list an algorithm that then fails with NOT_SUPPORTED or EXECUTION_FAILED on these sizes, and
  // such a failure is the next candidate's turn, not a fatal error at the first step. Benchmark mode
  // also times them. If the scratch tensors cannot be allocated, the first candidate whose workspace
  // fits is taken untried and not cached, so that a later search with more memory free can still try.
  bool can_run = true;
  std::string run_note;
  std::unique_ptr<Scratch> x, w, y;
  std::unique_ptr<Events> ev;
  {
    const size_t x_bytes = size_t(key.n) * key.c * key.h * key.w * 4;
    const size_t w_bytes = size_t(key.o) * (key.c / key.groups) * key.kh * key.kw * 4;
    const int oh = (key.h + 2 * key.ph - key.dh * (key.kh - 1) - 1) / key.sh + 1;
    const int ow = (key.w + 2 * key.pw - key.dw * (key.kw - 1) - 1) / key.sw + 1;
    const size_t y_bytes = size_t(key.n) * key.o * oh * ow * 4;
    try {
      x = std::make_unique<Scratch>(*dev.alloc, x_bytes, op + ": cuDNN benchmark input");
      w = std::make_unique<Scratch>(*dev.alloc, w_bytes, op + ": cuDNN benchmark weights");
      y = std::make_unique<Scratch>(*dev.alloc, y_bytes, op + ": cuDNN benchmark output");
    } catch (const Error& e) {
      can_run = false;
      run_note = std::string("candidates taken untried (") + e.what() + ")";
    }
    if (can_run) {
      CK(cudaMemsetAsync, op, x->p, 0, x_bytes, dev.stream);
      CK(cudaMemsetAsync, op, w->p, 0, w_bytes, dev.stream);
      CK(cudaMemsetAsync, op, y->p, 0, y_bytes, dev.stream);
    }
  }
  const bool bench = key.benchmark != 0 && can_run;
  if (bench) ev = std::make_unique<Events>(op);
  const size_t limit = bench && key.benchmark_limit > 0 ? size_t(key.benchmark_limit) : cands.size();

  // Timed: the first `limit` candidates (benchmark mode). Otherwise, and past the limit when none of the
  // timed ones could run (the fall back on out-of-memory), the first candidate whose trial run succeeds
  // wins untimed.
  int best = -1;
  size_t looked = 0;
  for (size_t i = 0; i < cands.size(); i++) {
    const bool time_it = bench && i < limit;
    if (!time_it && best >= 0) break;
    looked = i + 1;
    AlgoCandidate& c = cands[i];
    if (cudnnSetConvolutionMathType(d.conv, c.math) != CUDNN_STATUS_SUCCESS) {
      c.skipped = std::string("math type ") + math_name(c.math) + " refused";
      continue;
    }
    if (!workspace_size(h, dir, d, c.algo, &c.workspace)) {
      c.skipped = "workspace size query refused";
      continue;
    }
    std::unique_ptr<Scratch> ws;
    try {
      ws = std::make_unique<Scratch>(*dev.alloc, c.workspace, op + ": cuDNN workspace of " + algo_name(dir, c.algo));
    } catch (const Error& e) {  // Note [fall back on out-of-memory]: try the next candidate
      c.skipped = std::string("out of memory: ") + e.what();
      continue;
    }
    if (!can_run) {
      best = static_cast<int>(i);
      break;
    }
    Buffers b{x->p, w->p, y->p, ws->p, c.workspace};
    cudnnStatus_t st = run_once(h, dir, d, c.algo, b);  // the trial run (and the benchmark's warm-up)
    if (st == CUDNN_STATUS_SUCCESS && time_it) {
      CK(cudaEventRecord, op, ev->start, dev.stream);
      for (int r = 0; r < kTimedRuns && st == CUDNN_STATUS_SUCCESS; r++) st = run_once(h, dir, d, c.algo, b);
      CK(cudaEventRecord, op, ev->stop, dev.stream);
    }
    // A launch or execution error surfaces at the synchronization.
    const cudaError_t synced = time_it ? cudaEventSynchronize(ev->stop) : cudaStreamSynchronize(dev.stream);
    if (st != CUDNN_STATUS_SUCCESS || synced != cudaSuccess) {
      c.skipped = std::string("run failed: ") +
                  (st != CUDNN_STATUS_SUCCESS ? cudnnGetErrorString(st) : cudaGetErrorString(synced));
      cudaGetLastError();  // clears a non-sticky error; a sticky one (a fault) will surface at the next call
      continue;
    }
    if (!time_it) {
      best = static_cast<int>(i);
      break;
    }
    float total = 0;
    CK(cudaEventElapsedTime, op, &total, ev->start, ev->stop);
    c.ms = total / kTimedRuns;
    if (best < 0 || c.ms < cands[best].ms) best = static_cast<int>(i);
  }
  cands.resize(looked);  // report what was looked at

  if (best < 0) {
    CK(cudnnSetConvolutionMathType, op, d.conv, base_math);
    std::string tried;
    for (const AlgoCandidate& c : cands) tried += std::string(tried.empty() ? "" : "; ") + algo_name(dir, c.algo) + ": " + c.skipped;
    fail(op, ": no cuDNN ", dir_name(dir), " algorithm is usable for x [", key.n, ",", key.c, ",", key.h, ",", key.w,
         "], w [", key.o, ",", key.c / key.groups, ",", key.kh, ",", key.kw, "], groups ", key.groups, ", stride ", key.sh,
         "x", key.sw, ", padding ", key.ph, "x", key.pw, " (deterministic ", key.deterministic, ", allowTF32 ",
         key.allow_tf32, ", benchmark ", key.benchmark, ", ", cands.size(), " candidates",
         tried.empty() ? std::string(")") : ": " + tried + ")", run_note.empty() ? "" : "; " + run_note);
  }
  AlgoChoice choice;
  choice.algo = cands[best].algo;
  choice.math = cands[best].math;
  choice.workspace = cands[best].workspace;
  choice.ms = cands[best].ms;
  choice.benchmarked = cands[best].ms >= 0;
  choice.candidates = std::move(cands);
  CK(cudnnSetConvolutionMathType, op, d.conv, choice.math);
  if (can_run && (key.benchmark == 0 || choice.benchmarked)) {  // a choice that was not tried (or, in benchmark mode, not timed) is not cached
    std::lock_guard<std::mutex> lock(cache().mu);
    if (cache().by_key[static_cast<int>(dir)].emplace(k, choice).second) cache().dirty.insert(key.device);
  }
  return choice;
}

// Note [algorithm cache file]
// Text, one line per entry, after a header naming what the timings are only valid for:
//   crunet-cudnn-algorithms 2 <ConvKey field count>
//   <GPU name>\t<driver version>\t<cuDNN version>
//   <direction 0-2>\t<ConvKey fields, comma-separated, device written as 0>\t<algo>\t<math>\t<workspace>\t<ms>\t<benchmarked>
// Keys are read back for the loading device's index. A file that is not ours, or was written for another
// GPU, driver or cuDNN (or another ConvKey layout), is refused with the reason and left untouched: the
// session does not overwrite it.
namespace {

constexpr int kKeyFields = sizeof(ConvKey) / sizeof(int32_t);
static_assert(sizeof(ConvKey) % sizeof(int32_t) == 0, "ConvKey must be int32 fields only");
const std::string kMagic = "crunet-cudnn-algorithms 2 " + std::to_string(kKeyFields);

std::string device_identity(int index, const std::string& op) {
  cudaDeviceProp prop{};
  CK(cudaGetDeviceProperties, op, &prop, index);
  int driver = 0;
  cudaDriverGetVersion(&driver);
  return std::string(prop.name) + "\t" + std::to_string(driver) + "\t" + std::to_string(cudnnGetVersion());
}

}  // namespace

int load_algo_cache(int index, const std::string& path, std::string& note) {
  const std::string op = "cuDNN algorithm cache " + path;
  std::ifstream in(path);
  if (!in) {
    if (errno == ENOENT) {
      note = "no algorithm cache file at " + path + " yet";
      return 0;
    }
    note = "cannot read " + path + ": " + std::strerror(errno) + "; it is left as it is";
    return -1;
  }
  std::string magic, ident;
  std::getline(in, magic);
  std::getline(in, ident);
  if (magic != kMagic) {
    note = path + " is not a crunet cuDNN algorithm cache of this version (first line '" + magic.substr(0, 60) +
           "', expected '" + kMagic + "'); it is left as it is: delete it or choose another cacheFile";
    return -1;
  }
  const std::string mine = device_identity(index, op);
  if (ident != mine) {
    auto show = [](std::string s) { std::replace(s.begin(), s.end(), '\t', '/'); return s; };
    note = path + " was written for " + show(ident) + ", this device is " + show(mine) +
           " (GPU/driver/cuDNN); it is left as it is: delete it or choose another cacheFile";
    return -1;
  }
  // Parsed whole before anything enters the cache, so that a damaged file adds nothing.
  std::vector<std::pair<int, std::pair<std::string, AlgoChoice>>> entries;
  int line_no = 2;
  std::string line;
  auto bad = [&](const std::string& why) {
    note = path + ": line " + std::to_string(line_no) + " " + why + " ('" + line.substr(0, 80) + "'); it is left as it is";
    return -1;
  };
  while (std::getline(in, line)) {
    line_no++;
    if (line.empty()) continue;
    std::istringstream ls(line);
    int dir = -1, algo = -1, math = -1, benchmarked = 0;
    std::string fields, rest;
    size_t ws = 0;
    float ms = -1;
    if (!(ls >> dir >> fields >> algo >> math >> ws >> ms >> benchmarked) || (ls >> rest)) return bad("is not an algorithm cache entry");
    if (dir < 0 || dir > 2 || algo < 0 || algo > 15 || math < 0 || math > 3) return bad("has a direction, algorithm or math type out of range");
    ConvKey key{};
    int32_t* f = reinterpret_cast<int32_t*>(&key);
    std::istringstream fs(fields);
    std::string v;
    int n = 0;
    while (std::getline(fs, v, ',')) {
      char* end = nullptr;
      long x = std::strtol(v.c_str(), &end, 10);
      if (n == kKeyFields || v.empty() || *end || x < INT32_MIN || x > INT32_MAX) return bad("has a malformed key");
      f[n++] = static_cast<int32_t>(x);
    }
    if (n != kKeyFields) return bad("has " + std::to_string(n) + " key fields, expected " + std::to_string(kKeyFields));
    key.device = index;
    AlgoChoice c;
    c.algo = algo;
    c.math = static_cast<cudnnMathType_t>(math);
    c.workspace = ws;
    c.ms = ms;
    c.benchmarked = benchmarked != 0;
    c.from_file = true;
    entries.push_back({dir, {key_bytes(key), c}});
  }
  int added = 0;
  std::lock_guard<std::mutex> lock(cache().mu);
  for (auto& [dir, kc] : entries)
    if (cache().by_key[dir].emplace(kc.first, kc.second).second) added++;
  note = "loaded " + std::to_string(added) + " cuDNN algorithm choices from " + path;
  return added;
}

int save_algo_cache(int index, const std::string& path, std::string& note) {
  const std::string op = "cuDNN algorithm cache " + path;
  std::ostringstream out;
  out << kMagic << "\n" << device_identity(index, op) << "\n";
  int n = 0;
  {
    std::lock_guard<std::mutex> lock(cache().mu);
    if (!cache().dirty.count(index)) {
      note = "no new cuDNN algorithm choices: " + path + " left as it is";
      return 0;
    }
    for (int dir = 0; dir < 3; dir++)
      for (const auto& [k, c] : cache().by_key[dir]) {
        ConvKey key;
        std::memcpy(&key, k.data(), sizeof key);
        if (key.device != index) continue;
        key.device = 0;
        const int32_t* f = reinterpret_cast<const int32_t*>(&key);
        out << dir << "\t";
        for (int i = 0; i < kKeyFields; i++) out << (i ? "," : "") << f[i];
        out << "\t" << c.algo << "\t" << static_cast<int>(c.math) << "\t" << c.workspace << "\t" << c.ms << "\t"
            << (c.benchmarked ? 1 : 0) << "\n";
        n++;
      }
  }
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    const std::string text = out.str();
    FILE* f = std::fopen(tmp.c_str(), "w");
    if (!f) fail("cannot write the cuDNN algorithm cache ", tmp, ": ", std::strerror(errno));
    const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size() && std::fflush(f) == 0 && ::fsync(fileno(f)) == 0;
    const int err = errno;
    std::fclose(f);
    if (!ok) {
      std::remove(tmp.c_str());
      fail("cannot write the cuDNN algorithm cache ", tmp, ": ", std::strerror(err), " (the previous file is intact)");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    fail("cannot replace the cuDNN algorithm cache ", path, ": ", std::strerror(err));
  }
  {
    std::lock_guard<std::mutex> lock(cache().mu);
    cache().dirty.erase(index);
  }
  note = "saved " + std::to_string(n) + " cuDNN algorithm choices to " + path;
  return n;
}

}  // namespace crunet::cuda
