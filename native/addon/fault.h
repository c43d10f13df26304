// A test-only fault hook: CRUNET_TEST_FAULT=<entry point>[,<entry point>...] (e.g. getParameter) makes
// those N-API entry points throw a std::runtime_error, so tests can prove that every C++ exception reaches JavaScript as
// an Error instead of terminating the process. The variable is read once, when the addon loads.
#pragma once
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace crunet::addon {

inline void fault_point(const char* entry) {
  static const std::string wanted = [] {
    const char* v = std::getenv("CRUNET_TEST_FAULT");
    return v ? "," + std::string(v) + "," : std::string();
  }();
  if (!wanted.empty() && wanted.find("," + std::string(entry) + ",") != std::string::npos)
    throw std::runtime_error(std::string("CRUNET_TEST_FAULT: injected failure in ") + entry);
}

}  // namespace crunet::addon
