#include "lab/traffic.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <thread>
#include <unordered_map>

namespace weir::lab {

namespace {

using Clock = std::chrono::steady_clock;

Result<sockaddr_in> make_addr(const std::string& ip, uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  if (::inet_pton(AF_INET, ip.c_str(), &sa.sin_addr) != 1)
    return Error{EINVAL, fmt::format("invalid IPv4 address '{}'", ip)};
  return sa;
}

std::string addr_str(const sockaddr_in& sa) {
  char buf[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &sa.sin_addr, buf, sizeof buf);
  return fmt::format("{}:{}", buf, ntohs(sa.sin_port));
}

int left_ms(Clock::time_point deadline) {
  auto l = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return l < 0 ? 0 : static_cast<int>(l);
}

// Waits for `events` on fd until the deadline: 1 ready, 0 timeout, -1 error (errno set).
int wait_fd(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, left_ms(deadline));
    if (n < 0 && errno == EINTR) continue;
    return n;
  }
}

Result<Fd> bound_socket(int type, uint16_t port) {
  Fd fd(::socket(AF_INET, type | SOCK_CLOEXEC, 0));
  if (!fd) return errno_error("socket");
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_ANY);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
    return errno_error(
        fmt::format("binding {} port {}", type == SOCK_STREAM ? "TCP" : "UDP", port));
  if (type == SOCK_STREAM && ::listen(fd.get(), 256) != 0)
    return errno_error(fmt::format("listen on TCP port {}", port));
  return fd;
}

}  // namespace

// ---------------------------------------------------------------- server

namespace {
// The answer to a UDP datagram: NAME\n, padded with '.' to N bytes when the datagram starts
// with "size N\n" (large, fragmented answers; N at most kMaxUdpAnswer).
std::string udp_answer(const std::string& answer, std::string_view request) {
  if (!request.starts_with("size ")) return answer;
  size_t n = 0;
  for (size_t i = 5; i < request.size() && request[i] >= '0' && request[i] <= '9'; ++i) n = n * 10 + size_t(request[i] - '0');
  n = std::min(n, kMaxUdpAnswer);
  std::string a = answer;
  if (a.size() < n) a.append(n - a.size(), '.');
  return a;
}
}  // namespace

Status serve(const ServeOptions& opts) {
  if (opts.name.empty()) return make_error("serve: --name is required");
  if (opts.tcp_ports.empty() && opts.udp_ports.empty())
    return make_error("serve: give at least one --tcp or --udp port");
  enum class Kind { Listen, Udp, Conn };
  struct Sock {
    Kind kind;
    Fd fd;
    std::string buf;  // Conn: bytes received after the last '\n'
  };
  std::vector<Sock> socks;
  for (auto p : opts.tcp_ports) {
    auto fd = bound_socket(SOCK_STREAM, p);
    if (!fd) return fd.error();
    socks.push_back({Kind::Listen, std::move(*fd), {}});
  }
  for (auto p : opts.udp_ports) {
    auto fd = bound_socket(SOCK_DGRAM, p);
    if (!fd) return fd.error();
    socks.push_back({Kind::Udp, std::move(*fd), {}});
  }
  const std::string answer = opts.name + "\n";
  std::printf("ready %s\n", opts.name.c_str());
  std::fflush(stdout);

  std::vector<pollfd> pfds;
  std::vector<char> storage(65536);  // a whole UDP datagram, however large
  char* buf = storage.data();
  for (;;) {
    pfds.clear();
    for (auto& s : socks) pfds.push_back({s.fd.get(), POLLIN, 0});
    int n = ::poll(pfds.data(), pfds.size(), -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("serve: poll");
    }
    std::vector<Sock> accepted;
    std::vector<size_t> closed;
    for (size_t i = 0; i < pfds.size(); ++i) {
      if (pfds[i].revents == 0) continue;
      Sock& s = socks[i];
      switch (s.kind) {
        case Kind::Listen: {
          Fd c(::accept4(s.fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
          if (c) {
            int one = 1;
            ::setsockopt(c.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            accepted.push_back({Kind::Conn, std::move(c), {}});
          }
          break;
        }
        case Kind::Udp: {
          sockaddr_in from{};
          socklen_t len = sizeof from;
          ssize_t r = ::recvfrom(s.fd.get(), buf, storage.size(), MSG_DONTWAIT,
                                 reinterpret_cast<sockaddr*>(&from), &len);
          if (r >= 0) {
            const std::string a = udp_answer(answer, std::string_view(buf, size_t(r)));
            ::sendto(s.fd.get(), a.data(), a.size(), MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from), len);
          }
          break;
        }
        case Kind::Conn: {
          ssize_t r = ::recv(s.fd.get(), buf, storage.size(), MSG_DONTWAIT);
          if (r <= 0) {
            if (r == 0 || (errno != EAGAIN && errno != EINTR)) closed.push_back(i);
            break;
          }
          s.buf.append(buf, static_cast<size_t>(r));
          size_t lines = 0;
          for (size_t pos; (pos = s.buf.find('\n')) != std::string::npos;) {
            s.buf.erase(0, pos + 1);
            ++lines;
          }
          if (s.buf.size() > 65536) s.buf.clear();  // no newline in sight: drop the junk
          for (size_t l = 0; l < lines; ++l) {
            if (::send(s.fd.get(), answer.data(), answer.size(), MSG_NOSIGNAL) < 0) {
              closed.push_back(i);
              break;
            }
          }
          break;
        }
      }
    }
    for (auto it = closed.rbegin(); it != closed.rend(); ++it)
      socks.erase(socks.begin() + static_cast<std::ptrdiff_t>(*it));
    for (auto& a : accepted) socks.push_back(std::move(a));
  }
}

// ---------------------------------------------------------------- clients

std::string IpPort::str() const { return fmt::format("{}:{}", ip, port); }

Result<IpPort> parse_ip_port(const std::string& s) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos) return Error{EINVAL, fmt::format("'{}': expected IP:PORT", s)};
  IpPort r;
  r.ip = s.substr(0, colon);
  in_addr a{};
  if (::inet_pton(AF_INET, r.ip.c_str(), &a) != 1)
    return Error{EINVAL, fmt::format("'{}': invalid IPv4 address '{}'", s, r.ip)};
  std::string ps = s.substr(colon + 1);
  char* end = nullptr;
  long p = std::strtol(ps.c_str(), &end, 10);
  if (ps.empty() || *end != '\0' || p < 1 || p > 65535)
    return Error{EINVAL, fmt::format("'{}': invalid port '{}'", s, ps)};
  r.port = static_cast<uint16_t>(p);
  return r;
}

Result<Fd> tcp_connect(const std::string& ip, uint16_t port, std::chrono::milliseconds timeout) {
  auto sa = make_addr(ip, port);
  if (!sa) return sa.error();
  std::string what = fmt::format("TCP connect to {}:{}", ip, port);
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return errno_error("socket");
  int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  auto deadline = Clock::now() + timeout;
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&*sa), sizeof *sa) != 0) {
    if (errno != EINPROGRESS) return errno_error(what);
    int n = wait_fd(fd.get(), POLLOUT, deadline);
    if (n < 0) return errno_error(what);
    if (n == 0) return Error{ETIMEDOUT, what};
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return Error{err, what};
  }
  int fl = ::fcntl(fd.get(), F_GETFL);
  ::fcntl(fd.get(), F_SETFL, fl & ~O_NONBLOCK);
  return fd;
}

Result<std::string> tcp_request(int fd, std::chrono::milliseconds timeout) {
  static const char ping[] = "ping\n";
  if (::send(fd, ping, sizeof ping - 1, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof ping - 1))
    return errno_error("TCP send");
  auto deadline = Clock::now() + timeout;
  std::string line;
  char c;
  for (;;) {
    int n = wait_fd(fd, POLLIN, deadline);
    if (n < 0) return errno_error("TCP recv");
    if (n == 0) return Error{ETIMEDOUT, "TCP recv: no answer"};
    ssize_t r = ::recv(fd, &c, 1, MSG_DONTWAIT);
    if (r == 0) return Error{ECONNRESET, "TCP recv: connection closed by peer"};
    if (r < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return errno_error("TCP recv");
    }
    if (c == '\n') return line;
    line += c;
    if (line.size() > 256) return Error{EPROTO, "TCP recv: answer too long"};
  }
}

Result<std::string> peer_address(int fd) {
  sockaddr_in sa{};
  socklen_t len = sizeof sa;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0)
    return errno_error("getpeername");
  return addr_str(sa);
}

Result<std::string> local_address(int fd) {
  sockaddr_in sa{};
  socklen_t len = sizeof sa;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0) return errno_error("getsockname");
  return addr_str(sa);
}

Result<UdpAnswer> udp_request(const std::string& ip, uint16_t port,
                              std::chrono::milliseconds timeout) {
  auto sa = make_addr(ip, port);
  if (!sa) return sa.error();
  Fd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) return errno_error("socket");
  static const char ping[] = "ping\n";
  if (::sendto(fd.get(), ping, sizeof ping - 1, 0, reinterpret_cast<const sockaddr*>(&*sa),
               sizeof *sa) < 0)
    return errno_error(fmt::format("UDP send to {}:{}", ip, port));
  auto deadline = Clock::now() + timeout;
  char buf[512];
  for (;;) {
    int n = wait_fd(fd.get(), POLLIN, deadline);
    if (n < 0) return errno_error("UDP recv");
    if (n == 0) return Error{ETIMEDOUT, fmt::format("UDP {}:{}: no answer", ip, port)};
    sockaddr_in from{};
    socklen_t len = sizeof from;
    ssize_t r = ::recvfrom(fd.get(), buf, sizeof buf, MSG_DONTWAIT,
                           reinterpret_cast<sockaddr*>(&from), &len);
    if (r < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return errno_error(fmt::format("UDP recv from {}:{}", ip, port));
    }
    std::string s(buf, static_cast<size_t>(r));
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    return UdpAnswer{s, addr_str(from)};
  }
}

Result<SizedUdpAnswer> udp_sized_request(const std::string& ip, uint16_t port, size_t request_bytes,
                                         size_t answer_bytes, std::chrono::milliseconds timeout) {
  auto sa = make_addr(ip, port);
  if (!sa) return sa.error();
  if (answer_bytes > kMaxUdpAnswer || request_bytes > kMaxUdpAnswer)
    return Error{EINVAL, fmt::format("UDP sizes {} / {}: at most {} bytes", request_bytes, answer_bytes, kMaxUdpAnswer)};
  Fd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) return errno_error("socket");
  std::string req = fmt::format("size {}\n", answer_bytes);
  if (req.size() < request_bytes) req.append(request_bytes - req.size(), '-');
  if (::sendto(fd.get(), req.data(), req.size(), 0, reinterpret_cast<const sockaddr*>(&*sa), sizeof *sa) < 0)
    return errno_error(fmt::format("UDP send of {} bytes to {}:{}", req.size(), ip, port));
  auto deadline = Clock::now() + timeout;
  std::vector<char> buf(kMaxUdpAnswer + 1);
  for (;;) {
    int n = wait_fd(fd.get(), POLLIN, deadline);
    if (n < 0) return errno_error("UDP recv");
    if (n == 0) return Error{ETIMEDOUT, fmt::format("UDP {}:{}: no answer to a {}-byte datagram", ip, port, req.size())};
    sockaddr_in from{};
    socklen_t len = sizeof from;
    ssize_t r = ::recvfrom(fd.get(), buf.data(), buf.size(), MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from), &len);
    if (r < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return errno_error(fmt::format("UDP recv from {}:{}", ip, port));
    }
    std::string_view got(buf.data(), size_t(r));
    SizedUdpAnswer a;
    a.bytes = size_t(r);
    a.from = addr_str(from);
    a.name = std::string(got.substr(0, got.find('\n')));
    return a;
  }
}

Result<std::string> udp_connected_request(const std::string& ip, uint16_t port,
                                          std::chrono::milliseconds timeout) {
  auto sa = make_addr(ip, port);
  if (!sa) return sa.error();
  std::string what = fmt::format("UDP {}:{}", ip, port);
  Fd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) return errno_error("socket");
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&*sa), sizeof *sa) != 0)
    return errno_error(what + ": connect");
  static const char ping[] = "ping\n";
  if (::send(fd.get(), ping, sizeof ping - 1, 0) < 0) return errno_error(what + ": send");
  auto deadline = Clock::now() + timeout;
  char buf[512];
  for (;;) {
    int n = wait_fd(fd.get(), POLLIN, deadline);
    if (n < 0) return errno_error(what + ": recv");
    if (n == 0) return Error{ETIMEDOUT, what + ": no answer"};
    ssize_t r = ::recv(fd.get(), buf, sizeof buf, MSG_DONTWAIT);
    if (r < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return errno_error(what + ": recv");
    }
    std::string s(buf, static_cast<size_t>(r));
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    return s;
  }
}

std::string_view to_string(Proto p) { return p == Proto::Tcp ? "tcp" : "udp"; }

std::string ClientReport::str() const {
  std::string s = fmt::format("{} {}: {} requests, {} answers, {} errors\n", to_string(proto),
                              target, requests, answers, requests - answers);
  s += "  answers by backend:\n";
  for (const auto& [name, n] : backends) s += fmt::format("    {:<12} {}\n", name, n);
  if (backends.empty()) s += "    (none)\n";
  s += "  replies came from:\n";
  for (const auto& [addr, n] : sources) s += fmt::format("    {:<21} {}\n", addr, n);
  if (sources.empty()) s += "    (none)\n";
  if (!errors.empty()) {
    s += "  errors:\n";
    for (const auto& [e, n] : errors) s += fmt::format("    {:<40} {}\n", e, n);
  }
  return s;
}

namespace {
void count_error(ClientReport& r, const Error& e) {
  r.errors[e.err != 0 ? std::string(std::strerror(e.err)) : e.msg]++;
}
}  // namespace

ClientReport run_client(const ClientOptions& o) {
  ClientReport rep;
  rep.target = o.target.str();
  rep.proto = o.proto;
  if (o.proto == Proto::Udp) {
    for (int i = 0; i < o.count; ++i) {
      ++rep.requests;
      auto a = udp_request(o.target.ip, o.target.port, o.timeout);
      if (!a) {
        count_error(rep, a.error());
        continue;
      }
      ++rep.answers;
      rep.backends[a->name]++;
      rep.sources[a->from]++;
    }
    return rep;
  }
  std::vector<Fd> held;
  for (int i = 0; i < o.count; ++i) {
    ++rep.requests;
    auto fd = tcp_connect(o.target.ip, o.target.port, o.timeout);
    if (!fd) {
      count_error(rep, fd.error());
      continue;
    }
    auto a = tcp_request(fd->get(), o.timeout);
    if (!a) {
      count_error(rep, a.error());
      continue;
    }
    ++rep.answers;
    rep.backends[*a]++;
    if (auto p = peer_address(fd->get())) rep.sources[*p]++;
    if (o.hold) held.push_back(std::move(*fd));
  }
  if (!o.hold) return rep;
  if (o.on_round) o.on_round(0, rep);
  for (int round = 1; o.keep_holding && o.keep_holding(); ++round) {
    std::this_thread::sleep_for(o.hold_interval);
    if (!o.keep_holding()) break;
    ClientReport r;
    r.target = rep.target;
    r.proto = rep.proto;
    for (auto& fd : held) {
      if (!fd) continue;
      ++r.requests;
      auto a = tcp_request(fd.get(), o.timeout);
      if (!a) {
        count_error(r, a.error());
        fd.reset();
        continue;
      }
      ++r.answers;
      r.backends[*a]++;
      if (auto p = peer_address(fd.get())) r.sources[*p]++;
    }
    if (o.on_round) o.on_round(round, r);
  }
  return rep;
}

}  // namespace weir::lab
