// The rendezvous: a small key-value store over TCP, hosted by rank 0 (as PyTorch's TCPStore), behind
// Gloo's rendezvous::Store interface so that Gloo exchanges its connection addresses through it. The
// server also notes which ranks' connections closed, so that a failed collective can name the rank that
// left. Requests and replies are framed as: u8 code, u32 count, then count x (u32 length, bytes).
#pragma once
#include <gloo/rendezvous/store.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace crunet::dist {

using Millis = std::chrono::milliseconds;

class StoreServer {
 public:
  // Listens on every interface at `port`; a port in use is an Error that says so.
  explicit StoreServer(int port);
  ~StoreServer();
  StoreServer(const StoreServer&) = delete;
  StoreServer& operator=(const StoreServer&) = delete;

 private:
  void loop();
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  std::map<std::string, std::vector<char>> data_;
  std::set<int> departed_;
  std::thread thread_;
};

class TcpStore : public gloo::rendezvous::Store {
 public:
  // Connects to the server, retrying until `timeout` (rank 0 may not listen yet), and says which rank
  // this connection belongs to.
  TcpStore(const std::string& host, int port, int rank, Millis timeout);
  ~TcpStore() override;

  void set(const std::string& key, const std::vector<char>& data) override;
  std::vector<char> get(const std::string& key) override;
  void wait(const std::vector<std::string>& keys) override { wait(keys, timeout_); }
  void wait(const std::vector<std::string>& keys, const Millis& timeout) override;

  // The keys of `keys` that are not set yet.
  std::vector<std::string> missing(const std::vector<std::string>& keys);
  // The ranks whose connection to the server closed (their process exited, or their group was destroyed);
  // throws when the server does not answer within `answer` (rank 0 gone or hung).
  std::vector<int> departed(Millis answer);
  // The value of `key`, or none when it is not set, asking once with the answer bounded by `answer`.
  std::optional<std::string> peek(const std::string& key, Millis answer);
  // set() with the answer bounded by `answer` (the failure path: rank 0 may be gone).
  void set_within(const std::string& key, const std::string& value, Millis answer);
  // The address of this host on the interface that reaches the master: where the others can reach it.
  const std::string& local_address() const { return local_address_; }
  const std::string& where() const { return where_; }  // "host:port"

 private:
  std::vector<std::string> request(uint8_t code, const std::vector<std::string>& args, uint8_t* status = nullptr, Millis answer = Millis(0));
  std::mutex mu_;  // one request at a time (Gloo and the failure path may both ask)
  int fd_ = -1;
  int rank_;
  Millis timeout_;
  std::string dead_;  // why the connection was closed (a timed-out request, a lost connection); then every request fails
  std::string local_address_, where_;
};

}  // namespace crunet::dist
