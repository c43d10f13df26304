// The library's one exported symbol, crunet_cuda_entry_v1 (native/core/backend_abi.h), and the device
// probing behind it. Every failure is a message naming the reason: no driver (libcuda.so.1 missing),
// a driver older than the runtime, no device, an index out of range, a cuDNN or cuBLAS that fails.
#include <dlfcn.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <string>

#include "conv_algo.h"
#include "cuda_backend.h"

#ifndef CRUNET_CUDA_ARCHS
#define CRUNET_CUDA_ARCHS "unknown"
#endif

namespace crunet::cuda {
namespace {

void put(char* err, size_t errlen, const std::string& msg) {
  if (!err || !errlen) return;
  std::snprintf(err, errlen, "%s", msg.c_str());
}

std::string version_str(int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); }

// Where a library's symbol was loaded from, for messages ("/.../libcudnn.so.9").
std::string origin(const void* symbol) {
  Dl_info info{};
  if (symbol && dladdr(symbol, &info) && info.dli_fname) return info.dli_fname;
  return "?";
}

std::string visible_devices_note() {
  const char* v = std::getenv("CUDA_VISIBLE_DEVICES");
  return v ? std::string("; CUDA_VISIBLE_DEVICES=") + v : std::string();
}

// The device count, or -1 with `why` set.
int probe(std::string& why) {
  // cudart loads the driver itself, but its error for a missing driver ("CUDA driver version is
  // insufficient") hides the cause: look for the driver library first.
  dlerror();
  void* libcuda = dlopen("libcuda.so.1", RTLD_NOW | RTLD_GLOBAL);
  if (!libcuda) {
    const char* e = dlerror();
    why = std::string("no CUDA driver (libcuda.so.1 not found: ") + (e ? e : "dlopen failed") +
          "; the NVIDIA driver is not installed or not visible to this process)";
    return -1;
  }
  int driver = 0;
  cudaDriverGetVersion(&driver);
  if (driver / 1000 < CUDART_VERSION / 1000) {
    why = "the NVIDIA driver supports CUDA " + version_str(driver) + ", but this build uses the CUDA " +
          version_str(CUDART_VERSION) + " runtime, which needs a driver for CUDA " +
          std::to_string(CUDART_VERSION / 1000) + ".x or newer";
    return -1;
  }
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();
    why = std::string("no CUDA device (cudaGetDeviceCount: ") + cudaGetErrorName(e) + ": " + cudaGetErrorString(e) +
          visible_devices_note() + ")";
    return -1;
  }
  if (n == 0) {
    why = "no CUDA device (cudaGetDeviceCount found none" + visible_devices_note() + ")";
    return -1;
  }
  return n;
}

// cuDNN's runtime-compiled engines dlopen NVRTC by name from libraries whose RUNPATH does not reach the
// wheel folders: load it here, through this library's RPATH, so that those dlopens find it loaded.
// Optional: without NVRTC cuDNN skips those engines.
void preload_nvrtc() {
  static const bool once = [] {
    const std::string v = std::to_string(CUDART_VERSION / 1000);
    dlopen(("libnvrtc.so." + v).c_str(), RTLD_NOW | RTLD_GLOBAL);
    dlopen(("libnvrtc-builtins.so." + v + "." + std::to_string(CUDART_VERSION % 1000 / 10)).c_str(), RTLD_NOW | RTLD_GLOBAL);
    dlerror();
    return true;
  }();
  (void)once;
}

void fill_versions(CrunetCudaVersionsV1* v) {
  if (!v) return;
  std::memset(v, 0, sizeof *v);
  cudaDriverGetVersion(&v->driver);
  cudaRuntimeGetVersion(&v->runtime);
  v->cudnn = static_cast<int32_t>(cudnnGetVersion());
  int ma = 0, mi = 0, pa = 0;
  if (cublasGetProperty(MAJOR_VERSION, &ma) == CUBLAS_STATUS_SUCCESS && cublasGetProperty(MINOR_VERSION, &mi) == CUBLAS_STATUS_SUCCESS &&
      cublasGetProperty(PATCH_LEVEL, &pa) == CUBLAS_STATUS_SUCCESS)
    v->cublas = ma * 10000 + mi * 100 + pa;
  v->compiled_runtime = CUDART_VERSION;
  v->compiled_cudnn = CUDNN_VERSION;
  v->compiled_cublas = CUBLAS_VERSION;
}

// Devices with a backend in this process: they have a CUDA context, so asking their free memory costs
// nothing more (on any other device cudaMemGetInfo would create one, taking its memory for the process's life).
std::mutex used_mu;
std::set<int> used_devices;

int list_devices(CrunetCudaDeviceV1* out, int max, CrunetCudaVersionsV1* versions, char* err, size_t errlen) {
  try {
    fill_versions(versions);
    std::string why;
    int n = probe(why);
    if (n < 0) {
      put(err, errlen, why);
      return -1;
    }
    for (int i = 0; i < n && i < max && out; i++) {
      cudaDeviceProp p{};
      cudaError_t e = cudaGetDeviceProperties(&p, i);
      if (e != cudaSuccess) {
        cudaGetLastError();
        put(err, errlen, "cudaGetDeviceProperties(" + std::to_string(i) + "): " + cudaGetErrorString(e));
        return -1;
      }
      CrunetCudaDeviceV1& d = out[i];
      std::memset(&d, 0, sizeof d);
      d.index = i;
      std::snprintf(d.name, sizeof d.name, "%s", p.name);
      d.cc_major = p.major;
      d.cc_minor = p.minor;
      d.total_bytes = p.totalGlobalMem;
      d.free_bytes = 0;  // 0: not asked (no backend on this device yet)
      bool used;
      {
        std::lock_guard<std::mutex> lock(used_mu);
        used = used_devices.count(i) > 0;
      }
      int prev = 0;
      if (used && cudaGetDevice(&prev) == cudaSuccess && cudaSetDevice(i) == cudaSuccess) {
        size_t free_b = 0, total_b = 0;
        if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) d.free_bytes = free_b;
        // Switching back to a device this process has no context on would create one (CUDA 12+ makes
        // cudaSetDevice initialise the primary context): only go back to one already in use.
        bool prev_used;
        {
          std::lock_guard<std::mutex> lock(used_mu);
          prev_used = used_devices.count(prev) > 0;
        }
        if (prev != i && prev_used) cudaSetDevice(prev);
      }
      cudaGetLastError();
      d.multiprocessors = p.multiProcessorCount;
      cudaDeviceGetPCIBusId(d.pci_bus_id, sizeof d.pci_bus_id, i);
    }
    return n;
  } catch (const std::exception& e) {
    put(err, errlen, e.what());
    return -1;
  }
}

Backend* create_backend(int index, const CrunetCudnnOptionsV1* options, char* err, size_t errlen) {
  try {
    std::string why;
    int n = probe(why);
    if (n < 0) {
      put(err, errlen, why);
      return nullptr;
    }
    if (index < 0 || index >= n) {
      put(err, errlen, "device index " + std::to_string(index) + " out of range (" + std::to_string(n) +
                           (n == 1 ? " device" : " devices") + visible_devices_note() + ")");
      return nullptr;
    }
    const int cudnn_major = static_cast<int>(cudnnGetVersion() / 10000);
    if (cudnn_major != CUDNN_MAJOR) {
      put(err, errlen, "cuDNN " + std::to_string(cudnnGetVersion()) + " was loaded from " +
                           origin(reinterpret_cast<const void*>(&cudnnGetVersion)) + ", but this library was built for cuDNN " +
                           std::to_string(CUDNN_MAJOR) + ".x");
      return nullptr;
    }
    preload_nvrtc();
    CrunetCudnnOptionsV1 o{sizeof(CrunetCudnnOptionsV1), 0, 0, 10, 1};
    if (options) std::memcpy(&o, options, std::min<size_t>(sizeof o, options->struct_size));
    o.struct_size = sizeof o;
    Backend* b = new CudaBackend(index, o);
    std::lock_guard<std::mutex> lock(used_mu);
    used_devices.insert(index);
    return b;
  } catch (const std::exception& e) {
    put(err, errlen, std::string(e.what()) + " (cuDNN from " + origin(reinterpret_cast<const void*>(&cudnnCreate)) +
                         ", cuBLAS from " + origin(reinterpret_cast<const void*>(&cublasCreate_v2)) + ")");
    return nullptr;
  }
}

void destroy_backend(Backend* b) { delete b; }

const std::string& build_string() {
  static const std::string s = "CUDA " + version_str(CUDART_VERSION) + ", cuDNN " + std::to_string(CUDNN_MAJOR) + "." +
                               std::to_string(CUDNN_MINOR) + "." + std::to_string(CUDNN_PATCHLEVEL) + ", cuBLAS " +
                               std::to_string(CUBLAS_VER_MAJOR) + "." + std::to_string(CUBLAS_VER_MINOR) + "." +
                               std::to_string(CUBLAS_VER_PATCH) + ", code for CUDA architectures " CRUNET_CUDA_ARCHS " (CMake notation: NN = sm_NN + PTX)";
  return s;
}

int algorithm_cache_call(bool save, int index, const char* path, char* note, size_t notelen) {
  try {
    std::string msg;
    int n = save ? save_algo_cache(index, path, msg) : load_algo_cache(index, path, msg);
    put(note, notelen, msg);
    return n;
  } catch (const std::exception& e) {
    put(note, notelen, e.what());
    return -1;
  }
}
int load_algorithm_cache(int index, const char* path, char* note, size_t notelen) {
  return algorithm_cache_call(false, index, path, note, notelen);
}
int save_algorithm_cache(int index, const char* path, char* note, size_t notelen) {
  return algorithm_cache_call(true, index, path, note, notelen);
}

}  // namespace
}  // namespace crunet::cuda

extern "C" __attribute__((visibility("default"))) const CrunetCudaApiV1* crunet_cuda_entry_v1(void) {
  static const CrunetCudaApiV1 api = {CRUNET_BACKEND_ABI_VERSION,
                                      sizeof(CrunetCudaApiV1),
                                      CRUNET_BACKEND_ABI_FINGERPRINT,
                                      crunet::cuda::build_string().c_str(),
                                      crunet::cuda::list_devices,
                                      crunet::cuda::create_backend,
                                      crunet::cuda::destroy_backend,
                                      crunet::cuda::load_algorithm_cache,
                                      crunet::cuda::save_algorithm_cache};
  return &api;
}
