// crunet.dist's process group on the native side (lib/dist/process-group.ts wraps it): initProcessGroup
// and the collectives, each a promise that settles when the group's communication thread has run it.
// Built only with Gloo (CMakeLists.txt: CRUNET_HAVE_GLOO).
#pragma once
#include <napi.h>

#include <memory>

#include "../dist/process_group.h"

namespace crunet::addon {

// Adds initProcessGroup to the addon's exports.
void define_process_group(Napi::Env env, Napi::Object exports);
// The group of a JS process-group object (what lib/dist hands to compile's `distributed`); TypeError otherwise.
std::shared_ptr<dist::Group> group_from_js(const Napi::Value& v);

}  // namespace crunet::addon
