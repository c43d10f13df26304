// A process group on Gloo (docs/ARCHITECTURE.md, "Several processes"): the rendezvous (tcp_store.h), then
// Gloo's TCP full mesh, then its collectives. Every call blocks until all ranks have made it, fails
// after the group's timeout, and names the rank that left when one did; after a failure the group is
// broken and every later call fails at once. Not thread-safe: call it from its CommThread only.
#pragma once
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "comm_thread.h"

namespace gloo {
class Context;
}

namespace crunet::dist {

class StoreServer;
class TcpStore;

enum class DType { f32, f64, u8 };
enum class ReduceOp { sum, max, min };

struct GroupOptions {
  int rank = 0, world_size = 1;
  std::string master_addr;
  int master_port = 0;
  std::chrono::milliseconds timeout{300000};
};

class ProcessGroup {
 public:
  // The rendezvous and the connections; blocks up to the timeout.
  explicit ProcessGroup(const GroupOptions& opts);
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const { return opts_.rank; }
  int world_size() const { return opts_.world_size; }

  void allreduce(void* data, size_t count, DType dtype, ReduceOp op);
  void broadcast(void* data, size_t bytes, int root);
  // Every rank's bytes, by rank; the lengths may differ.
  std::vector<std::vector<char>> allgather(const void* data, size_t bytes);
  void barrier();
  // This rank failed part way through a step (GradientSync::abandon): leaves `why` in the store and
  // closes the connections, so that the others' collectives fail at once naming this rank; the group is
  // broken from then on. Throws nothing.
  void abort(const std::string& why);

 private:
  void join();  // the world-size check over the store, naming missing ranks on timeout
  template <typename F>
  void guarded(const char* what, F&& f);
  std::string who_left();

  GroupOptions opts_;
  std::unique_ptr<StoreServer> server_;  // rank 0 only
  std::unique_ptr<TcpStore> store_;
  std::shared_ptr<gloo::Context> ctx_;
  uint32_t tag_ = 0;
  std::string broken_;  // why, once a collective failed
};

// What JavaScript and a distributed session share: the thread the collectives run on and the group,
// which that thread creates (the rendezvous blocks). The thread is declared last so that it is joined
// (finishing what was posted) before the group is destroyed.
struct Group {
  int rank = 0, world_size = 1;
  std::chrono::milliseconds timeout{300000};
  std::unique_ptr<ProcessGroup> pg;
  CommThread comm;
};

}  // namespace crunet::dist
