// The precisions a session can compute in (compile's `precision` option). Which ones a device can run is
// the backend's answer (Backend::precision_unsupported); docs/ARCHITECTURE.md, "Precision", has the design.
#pragma once
#include <string>

namespace crunet {

enum class Precision { fp32, bf16, fp16 };

inline constexpr Precision kAllPrecisions[] = {Precision::fp32, Precision::bf16, Precision::fp16};

inline const char* precision_name(Precision p) {
  switch (p) {
    case Precision::fp32: return "fp32";
    case Precision::bf16: return "bf16";
    case Precision::fp16: return "fp16";
  }
  return "?";
}

// False for a name that is not a precision.
inline bool parse_precision(const std::string& s, Precision* out) {
  for (Precision p : kAllPrecisions)
    if (s == precision_name(p)) return *out = p, true;
  return false;
}

}  // namespace crunet
