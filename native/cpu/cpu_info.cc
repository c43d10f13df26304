#include "cpu_info.h"

#include <oneapi/dnnl/dnnl.hpp>

#include <fstream>
#include <thread>

namespace crunet::cpu {

namespace {
std::string isa_name(dnnl::cpu_isa isa) {
  using i = dnnl::cpu_isa;
  switch (isa) {
    case i::sse41: return "sse41";
    case i::avx: return "avx";
    case i::avx2: return "avx2";
    case i::avx2_vnni: return "avx2_vnni";
    case i::avx512_mic: return "avx512_mic";
    case i::avx512_mic_4ops: return "avx512_mic_4ops";
    case i::avx512_core: return "avx512_core";
    case i::avx512_core_vnni: return "avx512_core_vnni";
    case i::avx512_core_bf16: return "avx512_core_bf16";
    case i::avx512_core_amx: return "avx512_core_amx";
    default: return "all";
  }
}
}  // namespace

std::string bf16_unsupported() {
  const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
  if (isa == dnnl::cpu_isa::avx512_core_bf16 || isa == dnnl::cpu_isa::avx512_core_amx) return "";
  return "it needs a CPU with native bf16 instructions (AVX512_BF16 or AMX; oneDNN ISA avx512_core_bf16 or "
         "avx512_core_amx), and oneDNN dispatches " + isa_name(isa) + " on this one";
}

CpuInfo cpu_info() {
  CpuInfo info;
  const dnnl::version_t* v = dnnl::version();
  info.dnnl_version = std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
  info.isa = isa_name(dnnl::get_effective_cpu_isa());
  std::ifstream f("/proc/cpuinfo");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("model name", 0) == 0) {
      info.cpu_model = line.substr(line.find(':') + 2);
      break;
    }
  info.logical_cores = static_cast<int>(std::thread::hardware_concurrency());
  return info;
}

}  // namespace crunet::cpu
