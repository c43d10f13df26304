// Maps a device string ("cpu", "cuda", "cuda:N") to a backend. The CPU backend is one process-wide
// instance. The CUDA backend lives in its own library, libcrunet_cuda.so next to the addon (or where
// CRUNET_CUDA_LIBRARY points), loaded by explicit path on the first CUDA request, under a lock, through
// the C entry point of native/core/backend_abi.h. A device that cannot be used is an Error naming why
// (library not built, not loadable, no driver, no device, index out of range), never a silent fall back
// to the CPU. CUDA backends are kept per (device, cuDNN options) for the life of the process.
#pragma once
#include <napi.h>

#include <string>
#include <vector>

#include "../core/backend.h"
#include "../core/backend_abi.h"

namespace crunet::addon {

Backend& backend_for(Napi::Env env, const std::string& device);
Backend& backend_for(Napi::Env env, const std::string& device, const CrunetCudnnOptionsV1& cudnn);
Backend& cpu_backend();

// compile()'s `cudnn` option ({benchmark, deterministic, benchmarkLimit, allowTF32}); fields left out
// come from CRUNET_CUDNN_BENCHMARK, CRUNET_CUDNN_DETERMINISTIC, CRUNET_CUDNN_BENCHMARK_LIMIT,
// CRUNET_CUDNN_ALLOW_TF32, else PyTorch's defaults (false, false, 10, true).
CrunetCudnnOptionsV1 cudnn_options_from_js(const Napi::Value& v);

// compile()'s `cudnn.cacheFile`, else CRUNET_CUDNN_CACHE_FILE, else "" (no algorithm cache file).
std::string cudnn_cache_file_from_js(const Napi::Value& v);

// The loaded CUDA library's entry table (loading it if needed; nullptr when it cannot be). Takes the
// registry's lock: call it on the JS thread, never from an engine-thread job (cuda_backend holds that
// lock while it waits for the engine thread).
const CrunetCudaApiV1* cuda_api();

// Loads (save = false) or saves the cuDNN algorithm cache file of a CUDA device (native/cuda/conv_algo.h):
// the number of entries, or -1; `note` says what happened. Lock-free: safe on the engine thread.
int cuda_algorithm_cache(const CrunetCudaApiV1* api, bool save, const std::string& device, const std::string& path,
                         std::string& note);

// What devices() and buildInfo() report about CUDA.
struct CudaStatus {
  std::string library;  // the path looked at
  bool present = false;  // the file exists
  bool loaded = false;   // loaded and its ABI matches
  std::string build;     // the library's own description, when loaded
  std::vector<CrunetCudaDeviceV1> devices;
  CrunetCudaVersionsV1 versions{};
  std::string reason;  // why no CUDA device can be used; empty when some can
};
CudaStatus cuda_status();

}  // namespace crunet::addon
