// Shape and DType: logical tensor shapes (PyTorch's NCHW order) and element types.
// Rank-4 activations are stored channels-last (NHWC) inside a session; shapes stay logical.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "error.h"

namespace crunet {

using Shape = std::vector<int64_t>;

enum class DType { f32, bf16, i32 };

inline size_t dtype_size(DType t) { return t == DType::bf16 ? 2 : 4; }
inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::bf16: return "bf16";
    case DType::i32: return "i32";
  }
  return "?";
}

// The most elements one tensor may have: 2^48 (a petabyte of floats) is far beyond any memory, keeps
// element counts exact as JavaScript numbers and leaves room to multiply by an element size in bytes.
constexpr int64_t kMaxElements = int64_t{1} << 48;

// The largest integer attribute (channels, features, kernel, stride, padding, groups) and the largest
// dimension of an input or a parameter: 2^24. Generous for any network (ImageNet convolutions use
// kernels of 11 and thousands of channels), and small enough that oneDNN's and cuDNN's index
// arithmetic on (input + 2 * padding) / stride cannot overflow a 32-bit int.
constexpr int64_t kMaxDim = int64_t{1} << 24;

// The element count, or -1 when a dimension is negative or the product exceeds kMaxElements (checked at
// every step, so it never overflows). Shape inference refuses such shapes, naming the node or input.
inline int64_t checked_numel(const Shape& s) {
  int64_t n = 1;
  for (auto d : s) {
    if (d < 0 || __builtin_mul_overflow(n, d, &n) || n > kMaxElements) return -1;
  }
  return n;
}

inline std::string shape_str(const Shape& s);

// The element count. Shape inference already refused shapes that are too large, naming the node or
// input; this throw is the backstop that keeps an overflow from ever becoming a wrong size.
inline int64_t numel(const Shape& s) {
  const int64_t n = checked_numel(s);
  if (n < 0) throw Error("tensor shape " + shape_str(s) + " has more than 2^48 elements (or a negative dimension)");
  return n;
}

inline std::string shape_str(const Shape& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); i++) r += (i ? "," : "") + std::to_string(s[i]);
  return r + "]";
}

}  // namespace crunet
