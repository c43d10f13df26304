// cuDNN convolution algorithm choice with PyTorch's meanings (aten/src/ATen/native/cudnn/Conv_v7.cpp):
//   benchmark off: cudnnGet*Algorithm_v7 heuristics, in their order;
//   benchmark on:  cudnnFind*AlgorithmEx times up to benchmarkLimit candidates on scratch buffers;
//   deterministic: only candidates reported CUDNN_DETERMINISTIC;
//   allowTF32 off: fp32 convolutions use CUDNN_FMA_MATH (no TF32 tensor cores).
// Candidates are tried in order: one whose workspace cannot be allocated is skipped (the fall back on
// out-of-memory), and only a candidate that could be set up is cached. See Note [conv algorithm key].
#pragma once
#include <cstdint>
#include <string>

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

struct AlgoChoice {
  int algo = -1;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  size_t workspace = 0;
  float ms = -1;       // measured time in benchmark mode, -1 for heuristics
  bool cached = false;  // this kernel found it in the cache
  std::string describe(ConvDir d) const;
};

// The descriptors of one convolution; conv's math type is left at the chosen algorithm's.
struct ConvDescs {
  cudnnTensorDescriptor_t x, y;
  cudnnFilterDescriptor_t w;
  cudnnConvolutionDescriptor_t conv;
};

AlgoChoice choose_algo(Device& dev, ConvDir dir, const ConvKey& key, const ConvDescs& d, const std::string& op);

}  // namespace crunet::cuda
