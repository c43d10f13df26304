// See process_group.h.
#include "process_group.h"

#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/math.h>
#include <gloo/rendezvous/context.h>
#include <gloo/transport/tcp/device.h>

#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <thread>

#include "../core/error.h"
#include "tcp_store.h"

namespace crunet::dist {
namespace {

using Clock = std::chrono::steady_clock;

std::string join_key(int r) { return "crunet/join/" + std::to_string(r); }
const char* const kAbortKey = "crunet/abort";
const char* const kStepAbortKey = "crunet/abort-step";  // a rank's step failed part way (ProcessGroup::abort)

std::string rank_list(const std::vector<int>& ranks) {
  std::string s;
  for (size_t i = 0; i < ranks.size(); i++) s += (i ? ", " : "") + std::to_string(ranks[i]);
  return (ranks.size() == 1 ? "rank " : "ranks ") + s;
}

// Gloo's element-wise reductions (math.h overloads them: the cast picks the untyped one).
template <typename T>
gloo::AllreduceOptions::Func reduce_function(ReduceOp op) {
  using Raw = void (*)(void*, const void*, const void*, size_t);
  switch (op) {
    case ReduceOp::max: return static_cast<Raw>(&gloo::max<T>);
    case ReduceOp::min: return static_cast<Raw>(&gloo::min<T>);
    default: return static_cast<Raw>(&gloo::sum<T>);
  }
}

}  // namespace

ProcessGroup::ProcessGroup(const GroupOptions& opts) : opts_(opts) {
  if (opts.rank == 0) server_ = std::make_unique<StoreServer>(opts.master_port);
  store_ = std::make_unique<TcpStore>(opts.master_addr, opts.master_port, opts.rank, opts.timeout);
  join();
  // Gloo listens on the interface through which this host reaches the master (so the others can reach
  // it there too), unless GLOO_SOCKET_IFNAME names one, as in PyTorch.
  gloo::transport::tcp::attr attr;
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname) attr.iface = ifname;
  else attr.hostname = store_->local_address();
  try {
    auto dev = gloo::transport::tcp::CreateDevice(attr);
    auto ctx = std::make_shared<gloo::rendezvous::Context>(opts.rank, opts.world_size);
    ctx->setTimeout(opts.timeout);
    ctx->connectFullMesh(*store_, dev);
    ctx_ = ctx;
  } catch (const std::exception& e) {
    fail("rank ", opts.rank, ": connecting to the other ranks failed: ", e.what());
  }
}

ProcessGroup::~ProcessGroup() {
  ctx_.reset();    // closes the pairs
  store_.reset();  // the server sees this rank leave
  server_.reset();
}

void ProcessGroup::join() {
  const int n = opts_.world_size;
  const std::string mine = std::to_string(n);
  store_->set(join_key(opts_.rank), {mine.begin(), mine.end()});
  std::vector<std::string> keys;
  for (int r = 0; r < n; r++) keys.push_back(join_key(r));
  std::vector<char> checked(n, 0);
  checked[opts_.rank] = 1;
  const auto deadline = Clock::now() + opts_.timeout;
  for (;;) {
    if (store_->missing({kAbortKey}).empty()) {
      auto why = store_->get(kAbortKey);
      fail("rank ", opts_.rank, ": the rendezvous was abandoned: ", std::string(why.begin(), why.end()));
    }
    auto missing = store_->missing(keys);
    for (int r = 0; r < n; r++) {
      if (checked[r] || std::find(missing.begin(), missing.end(), join_key(r)) != missing.end()) continue;
      auto v = store_->get(join_key(r));
      const std::string theirs(v.begin(), v.end());
      checked[r] = 1;
      if (theirs != mine) {
        const std::string why = "the ranks disagree on the world size: rank " + std::to_string(r) + " was started with " + theirs +
                                ", rank " + std::to_string(opts_.rank) + " with " + mine;
        store_->set(kAbortKey, {why.begin(), why.end()});
        fail("rank ", opts_.rank, ": ", why);
      }
    }
    if (missing.empty()) return;
    if (Clock::now() >= deadline) {
      std::vector<int> ranks;
      for (int r = 0; r < n; r++)
        if (std::find(missing.begin(), missing.end(), join_key(r)) != missing.end()) ranks.push_back(r);
      fail("rank ", opts_.rank, ": the rendezvous at ", store_->where(), " timed out after ", opts_.timeout.count(), " ms: ",
           rank_list(ranks), " of world size ", n, " did not join (not started, failed early, or given another master address or port)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// Which ranks' rendezvous connections closed: the server notices an exit at about the time Gloo does,
// so it is asked a few times over half a second. Rank 0 gone takes the server with it; a server that
// does not answer within 2 s is rank 0 hung (or gone without closing its socket).
std::string ProcessGroup::who_left() {
  try {
    if (auto why = store_->peek(kStepAbortKey, std::chrono::milliseconds(2000))) return *why;
    for (int i = 0; i < 10; i++) {
      auto left = store_->departed(std::chrono::milliseconds(2000));
      if (!left.empty()) return rank_list(left) + " left the job (its process exited or destroyed its group)";
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  } catch (const Error& e) {
    if (std::string(e.what()).find("did not answer") != std::string::npos) return "rank 0 does not answer (hung, or its machine is unreachable)";
    return "rank 0 left the job (the rendezvous it hosted is gone)";
  }
  return "";
}

template <typename F>
void ProcessGroup::guarded(const char* what, F&& f) {
  if (!broken_.empty()) fail(what, ": the process group failed earlier and cannot be used: ", broken_);
  try {
    f();
  } catch (const std::exception& e) {
    const std::string left = opts_.world_size > 1 ? who_left() : "";
    broken_ = (left.empty() ? "" : left + ": ") + e.what();
    fail(what, " failed on rank ", opts_.rank, ": ", broken_);
  }
}

void ProcessGroup::allreduce(void* data, size_t count, DType dtype, ReduceOp op) {
  if (opts_.world_size == 1 || count == 0) return;
  guarded("allreduce", [&] {
    gloo::AllreduceOptions o(ctx_);
    o.setTag(tag_++);
    o.setTimeout(opts_.timeout);
    switch (dtype) {
      case DType::f32:
        o.setOutput(static_cast<float*>(data), count);
        o.setReduceFunction(reduce_function<float>(op));
        break;
      case DType::f64:
        o.setOutput(static_cast<double*>(data), count);
        o.setReduceFunction(reduce_function<double>(op));
        break;
      case DType::u8:
        fail("allreduce: bytes cannot be reduced");
    }
    gloo::allreduce(o);
  });
}

void ProcessGroup::broadcast(void* data, size_t bytes, int root) {
  if (opts_.world_size == 1 || bytes == 0) return;
  guarded("broadcast", [&] {
    gloo::BroadcastOptions o(ctx_);
    o.setTag(tag_++);
    o.setTimeout(opts_.timeout);
    o.setRoot(root);
    o.setOutput(static_cast<uint8_t*>(data), bytes);
    gloo::broadcast(o);
  });
}

std::vector<std::vector<char>> ProcessGroup::allgather(const void* data, size_t bytes) {
  const int n = opts_.world_size;
  std::vector<std::vector<char>> out(n);
  if (n == 1) {
    out[0].assign(static_cast<const char*>(data), static_cast<const char*>(data) + bytes);
    return out;
  }
  // Lengths first, then every rank's bytes padded to the longest.
  std::vector<uint64_t> lengths(n);
  uint64_t mine = bytes;
  guarded("allgather", [&] {
    gloo::AllgatherOptions o(ctx_);
    o.setTag(tag_++);
    o.setTimeout(opts_.timeout);
    o.setInput(&mine, 1);
    o.setOutput(lengths.data(), lengths.size());
    gloo::allgather(o);
  });
  uint64_t longest = 0;
  for (auto l : lengths) longest = std::max(longest, l);
  if (longest == 0) return out;
  std::vector<char> in(longest, 0), all(longest * n);
  std::memcpy(in.data(), data, bytes);
  guarded("allgather", [&] {
    gloo::AllgatherOptions o(ctx_);
    o.setTag(tag_++);
    o.setTimeout(opts_.timeout);
    o.setInput(in.data(), in.size());
    o.setOutput(all.data(), all.size());
    gloo::allgather(o);
  });
  for (int r = 0; r < n; r++) out[r].assign(all.begin() + r * longest, all.begin() + r * longest + lengths[r]);
  return out;
}

void ProcessGroup::abort(const std::string& why) {
  if (opts_.world_size == 1) return;
  const std::string text = "rank " + std::to_string(opts_.rank) + " abandoned the job after a step failed there part way (" + why + ")";
  if (broken_.empty()) {
    broken_ = text;
    try {
      store_->set_within(kStepAbortKey, text, std::chrono::milliseconds(2000));
    } catch (const std::exception&) {
      // rank 0 gone: the others see the connections close all the same
    }
  }
  ctx_.reset();  // closes the pairs: a peer waiting on this rank fails now, not after its timeout
}

void ProcessGroup::barrier() {
  if (opts_.world_size == 1) return;
  guarded("barrier", [&] {
    gloo::BarrierOptions o(ctx_);
    o.setTag(tag_++);
    o.setTimeout(opts_.timeout);
    gloo::barrier(o);
  });
}

}  // namespace crunet::dist
