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

}  // namespace crunet::cpu
