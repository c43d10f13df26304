// See tcp_store.h.
#include "tcp_store.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "../core/error.h"

namespace crunet::dist {
namespace {

enum : uint8_t { kHello = 'H', kSet = 'S', kGet = 'G', kMissing = 'M', kDeparted = 'D' };
enum : uint8_t { kOk = 0, kNotFound = 1 };

using Clock = std::chrono::steady_clock;

void put_u32(std::string& out, uint32_t v) {
  uint32_t n = htonl(v);
  out.append(reinterpret_cast<const char*>(&n), 4);
}

std::string frame(uint8_t code, const std::vector<std::string>& parts) {
  std::string out(1, static_cast<char>(code));
  put_u32(out, static_cast<uint32_t>(parts.size()));
  for (const auto& p : parts) {
    put_u32(out, static_cast<uint32_t>(p.size()));
    out += p;
  }
  return out;
}

// Nothing the store holds comes near this (Gloo's addresses are bytes); a longer frame is not one of
// ours, and believing its length would allocate whatever anyone reaching the port asked for.
constexpr uint32_t kMaxPart = 16u << 20, kMaxParts = 1u << 16;

enum class Parsed { incomplete, ok, bad };

// Parses one frame from the front of `buf`.
Parsed parse(std::string& buf, uint8_t& code, std::vector<std::string>& parts) {
  auto u32 = [&](size_t at) {
    uint32_t n;
    std::memcpy(&n, buf.data() + at, 4);
    return ntohl(n);
  };
  if (buf.size() < 5) return Parsed::incomplete;
  size_t at = 5;
  const uint32_t count = u32(1);
  if (count > kMaxParts) return Parsed::bad;
  std::vector<std::string> out;
  for (uint32_t i = 0; i < count; i++) {
    if (buf.size() < at + 4) return Parsed::incomplete;
    const uint32_t len = u32(at);
    if (len > kMaxPart) return Parsed::bad;
    at += 4;
    if (buf.size() < at + len) return Parsed::incomplete;
    out.emplace_back(buf.data() + at, len);
    at += len;
  }
  code = static_cast<uint8_t>(buf[0]);
  parts = std::move(out);
  buf.erase(0, at);
  return Parsed::ok;
}

// Sends all of `s` by `deadline`: a peer that stops reading cannot block the sender for longer.
bool send_all(int fd, const std::string& s, Clock::time_point deadline) {
  size_t done = 0;
  while (done < s.size()) {
    ssize_t n = ::send(fd, s.data() + done, s.size() - done, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now()).count();
      if (left <= 0) {
        errno = ETIMEDOUT;
        return false;
      }
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 1 << 30)));
      continue;
    }
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

std::string errno_text(int e) { return std::string(std::strerror(e)); }

}  // namespace

// ---- server ----

StoreServer::StoreServer(int port) {
  listen_fd_ = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bool v6 = listen_fd_ >= 0;
  if (!v6) listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) fail("rendezvous: cannot create a socket: ", errno_text(errno));
  int one = 1, zero = 0;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  int rc;
  if (v6) {
    ::setsockopt(listen_fd_, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);  // IPv4 clients too
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_any;
    a.sin6_port = htons(static_cast<uint16_t>(port));
    rc = ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
  } else {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    a.sin_port = htons(static_cast<uint16_t>(port));
    rc = ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
  }
  if (rc != 0 || ::listen(listen_fd_, 1024) != 0) {
    const int e = errno;
    ::close(listen_fd_);
    if (e == EADDRINUSE)
      fail("rank 0 cannot host the rendezvous on port ", port, ": the port is in use by another process (another job?); choose another master port");
    fail("rank 0 cannot host the rendezvous on port ", port, ": ", errno_text(e));
  }
  if (::pipe2(wake_, O_CLOEXEC) != 0) {
    ::close(listen_fd_);
    fail("rendezvous: cannot create a pipe: ", errno_text(errno));
  }
  thread_ = std::thread([this] { loop(); });
}

StoreServer::~StoreServer() {
  char c = 0;
  (void)!::write(wake_[1], &c, 1);
  thread_.join();
  ::close(listen_fd_);
  ::close(wake_[0]);
  ::close(wake_[1]);
}

void StoreServer::loop() {
  struct Client {
    int fd;
    int rank = -1;
    std::string in;
  };
  std::vector<Client> clients;
  for (;;) {
    std::vector<pollfd> fds{{wake_[0], POLLIN, 0}, {listen_fd_, POLLIN, 0}};
    for (auto& c : clients) fds.push_back({c.fd, POLLIN, 0});
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[0].revents) break;
    // Only the clients polled above: one accepted below joins the next round.
    const size_t polled = fds.size() - 2;
    std::vector<size_t> closed;
    for (size_t i = 0; i < polled; i++) {
      if (!fds[i + 2].revents) continue;
      Client& c = clients[i];
      // Anyone can reach the port (a port scan, a stray client): whatever one sends, or fails to, costs
      // the server that connection only, never the rendezvous.
      bool ok = true;
      try {
        char buf[65536];
        ssize_t n = ::recv(c.fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
        if (n <= 0) {
          closed.push_back(i);
          continue;
        }
        c.in.append(buf, static_cast<size_t>(n));
        uint8_t code;
        std::vector<std::string> args;
        Parsed p;
        while (ok && (p = parse(c.in, code, args)) == Parsed::ok) {
          std::string reply;
          switch (code) {
            case kHello:
              c.rank = args.empty() ? -1 : std::atoi(args[0].c_str());
              reply = frame(kOk, {});
              break;
            case kSet:
              if (args.size() == 2) data_[args[0]].assign(args[1].begin(), args[1].end());
              reply = frame(kOk, {});
              break;
            case kGet: {
              auto it = args.empty() ? data_.end() : data_.find(args[0]);
              reply = it == data_.end() ? frame(kNotFound, {}) : frame(kOk, {std::string(it->second.begin(), it->second.end())});
              break;
            }
            case kMissing: {
              std::vector<std::string> missing;
              for (auto& k : args)
                if (!data_.count(k)) missing.push_back(k);
              reply = frame(kOk, missing);
              break;
            }
            case kDeparted: {
              std::vector<std::string> ranks;
              for (int r : departed_) ranks.push_back(std::to_string(r));
              reply = frame(kOk, ranks);
              break;
            }
            default:
              ok = false;  // not one of ours: drop the connection
          }
          if (ok) ok = send_all(c.fd, reply, Clock::now() + Millis(5000));
        }
        if (ok && p == Parsed::bad) ok = false;
      } catch (const std::exception&) {
        ok = false;  // out of memory for one client's request: that client goes, the rendezvous stays
      }
      if (!ok) closed.push_back(i);
    }
    for (auto it = closed.rbegin(); it != closed.rend(); ++it) {
      Client& c = clients[*it];
      if (c.rank >= 0) departed_.insert(c.rank);
      ::close(c.fd);
      clients.erase(clients.begin() + static_cast<std::ptrdiff_t>(*it));
    }
    if (fds[1].revents & POLLIN) {
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd >= 0) {
        int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        clients.push_back(Client{fd, -1, {}});
      }
    }
  }
  for (auto& c : clients) ::close(c.fd);
}

// ---- client ----

TcpStore::TcpStore(const std::string& host, int port, int rank, Millis timeout) : rank_(rank), timeout_(timeout) {
  where_ = host + ":" + std::to_string(port);
  addrinfo hints{}, *res = nullptr;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  const auto deadline = Clock::now() + timeout;
  std::string last = "no attempt";
  for (int attempt = 0;; attempt++) {
    int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
    if (rc != 0) {
      // A name that does not resolve will not start to: fail at once, except for a temporary failure.
      if (rc != EAI_AGAIN || Clock::now() >= deadline)
        fail("rank ", rank, ": cannot resolve the master address '", host, "': ", gai_strerror(rc));
    } else {
      for (addrinfo* a = res; a && fd_ < 0; a = a->ai_next) {
        int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) continue;
        // A connect to an unreachable host can block for minutes: bounded by the time left.
        ::fcntl(fd, F_SETFL, O_NONBLOCK);
        int c = ::connect(fd, a->ai_addr, a->ai_addrlen);
        if (c != 0 && errno == EINPROGRESS) {
          pollfd p{fd, POLLOUT, 0};
          auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now()).count();
          int pr = ::poll(&p, 1, static_cast<int>(std::max<long long>(1, std::min<long long>(left, 5000))));
          int err = ETIMEDOUT;
          socklen_t len = sizeof err;
          if (pr > 0) ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
          c = err == 0 ? 0 : -1;
          errno = err;
        }
        if (c == 0) {
          ::fcntl(fd, F_SETFL, 0);
          fd_ = fd;
        } else {
          last = errno_text(errno);
          ::close(fd);
        }
      }
      ::freeaddrinfo(res);
      res = nullptr;
    }
    if (fd_ >= 0) break;
    if (Clock::now() >= deadline)
      fail("rank ", rank, ": cannot reach the rendezvous at ", where_, " within ", timeout.count(), " ms (", last,
           "): is rank 0 running, with the same master address and port?");
    std::this_thread::sleep_for(Millis(std::min(100, 10 * (attempt + 1))));
  }
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_storage local{};
  socklen_t len = sizeof local;
  char text[INET6_ADDRSTRLEN] = "";
  if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&local), &len) == 0) {
    if (local.ss_family == AF_INET) ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&local)->sin_addr, text, sizeof text);
    else {
      const auto& a6 = reinterpret_cast<sockaddr_in6*>(&local)->sin6_addr;
      if (IN6_IS_ADDR_V4MAPPED(&a6)) ::inet_ntop(AF_INET, reinterpret_cast<const char*>(&a6) + 12, text, sizeof text);
      else ::inet_ntop(AF_INET6, &a6, text, sizeof text);
    }
  }
  local_address_ = text;
  request(kHello, {std::to_string(rank)});
}

TcpStore::~TcpStore() {
  if (fd_ >= 0) ::close(fd_);
}

std::vector<std::string> TcpStore::request(uint8_t code, const std::vector<std::string>& args, uint8_t* status, Millis answer) {
  if (answer.count() <= 0) answer = timeout_;
  std::lock_guard<std::mutex> lock(mu_);
  if (!dead_.empty()) fail("rank ", rank_, ": ", dead_);
  // After a timeout or a lost connection the socket may still deliver a late reply, which the next
  // request would take for its own: the connection is closed, and every later request fails.
  auto give_up = [&](const std::string& why) {
    ::close(fd_);
    fd_ = -1;
    dead_ = why;
    fail("rank ", rank_, ": ", why);
  };
  auto lost = [&](const std::string& why) {
    give_up("lost the connection to the rendezvous at " + where_ + " (" + why + "): rank 0 has exited or closed its group");
  };
  const auto deadline = Clock::now() + answer;
  if (!send_all(fd_, frame(code, args), deadline)) lost(errno_text(errno));
  std::string buf;
  uint8_t got;
  std::vector<std::string> parts;
  for (;;) {
    const Parsed p = parse(buf, got, parts);
    if (p == Parsed::ok) break;
    if (p == Parsed::bad) lost("a reply that is not the store's");
    auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now()).count();
    if (left <= 0) give_up("the rendezvous at " + where_ + " did not answer within " + std::to_string(answer.count()) + " ms");
    pollfd p2{fd_, POLLIN, 0};
    int pr = ::poll(&p2, 1, static_cast<int>(std::min<long long>(left, 1 << 30)));
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) continue;
    char chunk[65536];
    ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) lost(n == 0 ? "closed" : errno_text(errno));
    buf.append(chunk, static_cast<size_t>(n));
  }
  if (status) *status = got;
  return parts;
}

std::optional<std::string> TcpStore::peek(const std::string& key, Millis answer) {
  uint8_t status;
  auto parts = request(kGet, {key}, &status, answer);
  if (status != kOk || parts.size() != 1) return std::nullopt;
  return parts[0];
}

void TcpStore::set_within(const std::string& key, const std::string& value, Millis answer) { request(kSet, {key, value}, nullptr, answer); }

void TcpStore::set(const std::string& key, const std::vector<char>& data) { request(kSet, {key, std::string(data.begin(), data.end())}); }

std::vector<char> TcpStore::get(const std::string& key) {
  wait({key}, timeout_);
  uint8_t status;
  auto parts = request(kGet, {key}, &status);
  if (status != kOk || parts.size() != 1) fail("rank ", rank_, ": rendezvous: key '", key, "' vanished from the store at ", where_);
  return {parts[0].begin(), parts[0].end()};
}

std::vector<std::string> TcpStore::missing(const std::vector<std::string>& keys) { return request(kMissing, keys); }

void TcpStore::wait(const std::vector<std::string>& keys, const Millis& timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    auto left = missing(keys);
    if (left.empty()) return;
    if (Clock::now() >= deadline) {
      std::string names;
      for (auto& k : left) names += (names.empty() ? "" : ", ") + k;
      fail("rank ", rank_, ": rendezvous: timed out after ", timeout.count(), " ms waiting for ", names, " in the store at ", where_);
    }
    std::this_thread::sleep_for(Millis(10));
  }
}

std::vector<int> TcpStore::departed(Millis answer) {
  std::vector<int> out;
  for (auto& s : request(kDeparted, {}, nullptr, answer)) out.push_back(std::atoi(s.c_str()));
  return out;
}

}  // namespace crunet::dist
