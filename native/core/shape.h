// Shape and DType: logical tensor shapes (PyTorch's NCHW order) and element types.
// Rank-4 activations are stored channels-last (NHWC) inside a session; shapes stay logical.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

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

inline int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

inline std::string shape_str(const Shape& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); i++) r += (i ? "," : "") + std::to_string(s[i]);
  return r + "]";
}

}  // namespace crunet
