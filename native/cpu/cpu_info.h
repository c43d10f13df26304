// What the CPU backend runs on: oneDNN's version and the instruction set it dispatches to, the CPU.
#pragma once
#include <string>

namespace crunet::cpu {

struct CpuInfo {
  std::string dnnl_version;  // e.g. "2.6.3"
  std::string isa;           // e.g. "avx512_core_bf16"
  std::string cpu_model;     // from /proc/cpuinfo
  int logical_cores;
};

CpuInfo cpu_info();

// "" when oneDNN dispatches native bf16 kernels on this CPU (ISA avx512_core_bf16: AVX512_BF16, or
// avx512_core_amx: AMX); otherwise why not, naming the ISA it dispatches instead. Below those ISAs
// oneDNN 2.6 has no bf16 convolutions at all. DNNL_MAX_CPU_ISA lowers the answer as it lowers dispatch.
std::string bf16_unsupported();

}  // namespace crunet::cpu
