// cuDNN convolution algorithm choice with PyTorch's meanings (aten/src/ATen/native/cudnn/Conv_v7.cpp,
// Conv_v8.cpp for benchmark_limit):
//   candidates:    cudnnGet*Algorithm_v7 heuristics, in their order, less those cuDNN reports unsupported
//                  and, with deterministic, those not CUDNN_DETERMINISTIC;
//   benchmark off: the first candidate whose workspace can be allocated and whose trial run on scratch
//                  tensors of the real sizes succeeds (PyTorch's try_all; Note [trial run] in conv_algo.cc);
//   benchmark on:  the first benchmarkLimit candidates (0: all) are each run and timed on scratch buffers
//                  (one warm-up, then kTimedRuns runs between CUDA events), and the fastest wins, as
//                  PyTorch's v8 path times the first benchmark_limit engine configurations;
//   allowTF32 off: fp32 convolutions use CUDNN_FMA_MATH (no TF32 tensor cores).
// A candidate whose workspace cannot be allocated, or whose run fails (NOT_SUPPORTED, EXECUTION_FAILED,
// ...), is skipped with the reason kept (the fall back); when no timed candidate could run, the first
// usable one past the limit is taken untimed. Only usable choices are cached (a benchmark that could not get its scratch
// tensors is not cached under a benchmark key). Every candidate's outcome is kept in the choice, for
// `crunet bench` and Session.profile()[i].algorithms. See Note [conv algorithm key].
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "cuda_util.h"

namespace crunet::cuda {

enum class ConvDir : int32_t { forward = 0, backward_data = 1, backward_filter = 2 };
const char* dir_name(ConvDir d);

// Note [conv algorithm key]
// A zeroed POD of every field that changes the result or the cost of a convolution, compared bytewise
// (as PyTorch's ConvolutionParams): device, direction, data type, layout, every size, padding, stride,
// dilation, groups, and the cuDNN settings (deterministic and allowTF32 change the result; benchmark and
// benchmarkLimit change how the choice was made). One cache per direction, shared by all sessions.
struct ConvKey {
  int32_t device, dtype, layout;
  int32_t n, c, h, w, o, kh, kw, ph, pw, sh, sw, dh, dw, groups;
  int32_t deterministic, allow_tf32, benchmark, benchmark_limit;
};

// One candidate as the search saw it.
struct AlgoCandidate {
  int algo = -1;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  size_t workspace = 0;
  float ms = -1;          // timed (benchmark mode), -1 when not run
  bool deterministic = false;
  std::string skipped;    // why it was not usable ("out of memory: ...", "run failed: ..."); empty if usable
};

struct AlgoChoice {
  int algo = -1;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  size_t workspace = 0;
  float ms = -1;       // measured time in benchmark mode, -1 for heuristics
  bool cached = false;  // this kernel found it in the cache (in memory or loaded from a cache file)
  bool from_file = false;  // the cache entry came from an algorithm cache file
  bool benchmarked = false;
  std::vector<AlgoCandidate> candidates;  // the search that made the choice (empty when loaded from a file)
  std::string describe(ConvDir d) const;
  // {"direction":..,"algo":..,"math":..,"workspace":..,"ms":..,"mode":"heuristic"|"benchmark","cached":..,
  //  "fromFile":..,"candidates":[{"algo":..,"math":..,"workspace":..,"ms":..,"deterministic":..,"skipped":..}]}
  std::string json(ConvDir d) const;
};

// The descriptors of one convolution; conv's math type is left at the chosen algorithm's.
struct ConvDescs {
  cudnnTensorDescriptor_t x, y;
  cudnnFilterDescriptor_t w;
  cudnnConvolutionDescriptor_t conv;
};

AlgoChoice choose_algo(Device& dev, ConvDir dir, const ConvKey& key, const ConvDescs& d, const std::string& op);

// The algorithm cache as a file, keyed by GPU name, driver and cuDNN version (a file written on another
// GPU, driver or cuDNN is ignored, with the reason in `note`). load returns the entries added to the
// in-memory cache for device `index`; save writes that device's entries atomically (temp file, rename)
// and returns their count. Both throw crunet::Error on I/O failures, naming the file.
int load_algo_cache(int index, const std::string& path, std::string& note);
int save_algo_cache(int index, const std::string& path, std::string& note);

}  // namespace crunet::cuda
