// The boundary between the addon and a backend built as its own shared library (libcrunet_cuda.so):
// one exported C symbol returning a table of plain function pointers, and options that cross as
// versioned POD structs (after onnxruntime's cuda_provider_factory.cc, without its bridge of hundreds
// of calls). The addon dlopens the library by explicit path on the first CUDA request, under a lock,
// and checks abi_version and the layout fingerprint before calling anything else.
//
// The backend object itself crosses as a crunet::Backend* (backend.h): the library and the addon must be
// built from the same backend.h by the same compiler. CMakeLists.txt builds both in one configure, and
// the fingerprint below catches a library left over from another revision. Bump CRUNET_BACKEND_ABI_VERSION
// whenever this file or backend.h changes in a way that alters a struct or a virtual table.
//
// Errors never cross as exceptions at this boundary: every call that can fail writes a message into
// `err` (always NUL-terminated, truncated to errlen) and returns nullptr / a negative count. Once a
// Backend exists, its methods throw crunet::Error like the CPU backend's (both sides share libstdc++).
#pragma once
#include <cstddef>
#include <cstdint>

#include "backend.h"

#define CRUNET_BACKEND_ABI_VERSION 7u  // 2: Backend::zero/synchronize, Kernel::report_json, the algorithm cache calls;
                                        // 3: sgd_step returns the first non-finite slot, Backend::arena_alignment,
                                        // Backend::max_tensor_elements; 4: Backend::unscale, Backend::precision_unsupported;
                                        // 5: KernelIO::cross_process; 6: Backend::loss_scaling_unsupported;
                                        // 7: optimizer_step (update rules, groups), grad_sum_squares, ema_step
#define CRUNET_CUDA_ENTRY_SYMBOL "crunet_cuda_entry_v1"

// Sizes of the C++ types that cross, so a stale library is refused instead of misreading memory.
#define CRUNET_BACKEND_ABI_FINGERPRINT                                                              \
  (static_cast<uint64_t>(sizeof(crunet::KernelIO)) | static_cast<uint64_t>(sizeof(crunet::NodeSpec)) << 16 | \
   static_cast<uint64_t>(sizeof(crunet::UpdateSlot)) << 32 | static_cast<uint64_t>(sizeof(crunet::StepStats)) << 48)

extern "C" {

// cuDNN algorithm choice, with PyTorch's meanings and defaults (torch.backends.cudnn.*).
struct CrunetCudnnOptionsV1 {
  uint32_t struct_size;     // sizeof(CrunetCudnnOptionsV1)
  int32_t benchmark;        // 0: heuristics (cudnnGet*_v7); 1: time the first benchmark_limit candidates, cache the fastest
  int32_t deterministic;    // 1: only algorithms with CUDNN_DETERMINISTIC results
  int32_t benchmark_limit;  // candidates timed per convolution in benchmark mode (0: all)
  int32_t allow_tf32;       // 1: convolutions may use TF32 tensor-core math on fp32 data
};

struct CrunetCudaDeviceV1 {
  int32_t index;
  char name[256];
  int32_t cc_major, cc_minor;  // compute capability
  uint64_t total_bytes, free_bytes;  // free_bytes: cudaMemGetInfo on devices this process uses, else 0
  int32_t multiprocessors;
  char pci_bus_id[32];
};

// Versions as the libraries report them at run time (0 when unknown), encoded as the libraries do:
// driver and runtime 1000*major + 10*minor, cuDNN 10000*major + 100*minor + patch, cuBLAS
// 10000*major + 100*minor + patch (cublasGetProperty).
struct CrunetCudaVersionsV1 {
  int32_t driver, runtime, cudnn, cublas;
  int32_t compiled_runtime, compiled_cudnn, compiled_cublas;  // the headers the library was built with
};

struct CrunetCudaApiV1 {
  uint32_t abi_version;  // CRUNET_BACKEND_ABI_VERSION of the library
  uint32_t struct_size;  // sizeof(CrunetCudaApiV1)
  uint64_t fingerprint;  // CRUNET_BACKEND_ABI_FINGERPRINT of the library
  const char* build;     // e.g. "CUDA 13.0, cuDNN 9.14.0, cuBLAS 13.0.2, sm_90 + PTX"

  // Fills up to max devices and the versions; returns the device count, or -1 with err naming why CUDA
  // cannot be used ("no CUDA driver (libcuda.so.1 not found: ...)", "no CUDA device (...)").
  int (*list_devices)(CrunetCudaDeviceV1* out, int max, CrunetCudaVersionsV1* versions, char* err, size_t errlen);
  // A backend on one device (its own stream, cuDNN and cuBLAS handles and memory cache), or nullptr with
  // err set ("device index 3 out of range (2 devices)", a failed cudnnCreate, ...).
  crunet::Backend* (*create_backend)(int device_index, const CrunetCudnnOptionsV1* options, char* err, size_t errlen);
  void (*destroy_backend)(crunet::Backend* backend);
  // The cuDNN algorithm cache as a file (native/cuda/conv_algo.h): load adds the file's entries for this
  // device and returns how many (0 when the file does not exist yet); -1 with `note` saying why when the
  // file is unreadable, damaged, not ours or written for another GPU, driver or cuDNN (the caller must
  // then not save over it). save writes the device's entries atomically when choices were searched since
  // the last load or save and returns their count (0: nothing new, file untouched); -1 on I/O errors.
  int (*load_algorithm_cache)(int device_index, const char* path, char* note, size_t notelen);
  int (*save_algorithm_cache)(int device_index, const char* path, char* note, size_t notelen);
};

typedef const CrunetCudaApiV1* (*CrunetCudaEntryFn)(void);

}  // extern "C"
