// crunet::Error: the one exception type native code throws on bad input or a failed library call.
// The addon turns it (and any std::exception) into a JavaScript Error; nothing aborts the process.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace crunet {

struct Error : std::runtime_error {
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

// fail(node_label(spec), ": expected ", a, " but got ", b) builds the message from any streamable parts.
template <typename... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  throw Error(os.str());
}

}  // namespace crunet
