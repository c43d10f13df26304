// Maps a device string ("cpu", "cuda", "cuda:N") to a backend. The CPU backend is one process-wide
// instance; a device that cannot be used is an Error naming why, never a silent fall back to the CPU.
#pragma once
#include <napi.h>

#include <string>

#include "../core/backend.h"

namespace crunet::addon {

Backend& backend_for(Napi::Env env, const std::string& device);
Backend& cpu_backend();

}  // namespace crunet::addon
