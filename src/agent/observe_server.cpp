#include "agent/observe_server.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <filesystem>
#include <utility>

namespace weir::agent {

// ---------------------------------------------------------------- FlowStore

FlowStore::FlowStore(size_t capacity) : capacity_(capacity) {}

void FlowStore::add(model::Flow f) {
  added_++;
  if (capacity_ == 0) {
    evicted_++;
    return;
  }
  if (flows_.size() == capacity_) {
    flows_.pop_front();
    evicted_++;
  }
  flows_.push_back(std::move(f));
}

std::vector<model::Flow> FlowStore::last(size_t n, const calc::FlowFilter& filter) const {
  std::vector<model::Flow> out;
  // Newest first, so that the scan stops at the n-th match; then reversed to oldest first.
  for (auto it = flows_.rbegin(); it != flows_.rend() && out.size() < n; ++it)
    if (filter.matches(*it)) out.push_back(*it);
  std::reverse(out.begin(), out.end());
  return out;
}

// ---------------------------------------------------------------- ObserveServer

namespace {

using TimePoint = std::chrono::steady_clock::time_point;

constexpr const char* kTooSlow = "weir observe: this client fell more than 4 MiB behind; flows were missed";

// One JSON line. Invalid UTF-8 in a name (the datastore's strings) is replaced rather than
// thrown: nothing may throw out of the agent's event loop.
std::string json_line(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + '\n';
}

std::string error_line(const std::string& msg) { return json_line(nlohmann::json{{"error", msg}}); }

std::string flow_line(const model::Flow& f) { return json_line(model::to_json(f)); }

// The socket's address; the caller checked that the path fits sun_path.
sockaddr_un unix_address(const std::string& path) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::copy(path.begin(), path.end(), static_cast<char*>(sa.sun_path));
  return sa;
}

// Creates `dir` and its missing parents, 0755.
Status make_dirs(const std::filesystem::path& dir) {
  if (dir.empty()) return {};
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) return make_error("{} is not a directory", dir.string());
    return {};
  }
  if (errno != ENOENT) return errno_error(fmt::format("stat {}", dir.string()));
  if (dir.has_parent_path() && dir.parent_path() != dir) WEIR_TRY(make_dirs(dir.parent_path()));
  if (::mkdir(dir.c_str(), 0755) != 0) {
    if (errno == EEXIST) return {};  // made by someone else meanwhile
    return errno_error(fmt::format("mkdir {}", dir.string()));
  }
  // The umask may have taken bits off 0755.
  if (::chmod(dir.c_str(), 0755) != 0) return errno_error(fmt::format("chmod {}", dir.string()));
  return {};
}

// A socket file already at `path`: removed when no one accepts connections on it any more (its
// agent is gone), else an error.
Status replace_stale(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return {};
    return errno_error(fmt::format("observe socket {}: stat", path));
  }
  if (!S_ISSOCK(st.st_mode))
    return make_error("observe socket {}: the path exists and is not a socket (remove it or use another state dir)",
                      path);
  Fd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!probe) return errno_error(fmt::format("observe socket {}: socket", path));
  const sockaddr_un sa = unix_address(path);
  // Non-blocking: a live agent whose backlog is full answers EAGAIN instead of blocking us.
  if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0 || errno == EAGAIN ||
      errno == EINPROGRESS)
    return make_error("observe socket {}: another agent serves that socket (is weir agent already running?)", path);
  if (errno != ECONNREFUSED) return errno_error(fmt::format("observe socket {}: connect to the existing socket", path));
  spdlog::info("observe socket {}: removing the socket of an agent that is gone", path);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    return errno_error(fmt::format("observe socket {}: unlink the stale socket", path));
  return {};
}

}  // namespace

struct ObserveServer::Client {
  Fd fd;
  TimePoint accepted;
  TimePoint last_progress;  // last time some output was taken (or the client was accepted)
  std::string in;           // the request so far (until its '\n')
  bool requested = false;   // `req` holds the client's request
  calc::ObserveRequest req;
  std::string out;          // pending output: out[off..]
  size_t off = 0;
  size_t initial_left = 0;  // bytes of the answer's stored flows still in `out` (not held
                            // against kMaxPending: the store's size bounds them)
  bool line_start = true;   // out[off] starts a line (no line is half written)
  bool closing = false;     // close once `out` is written; nothing more is queued
  bool read_eof = false;    // the client shut its side down (it may still read)
  bool dead = false;        // to be removed (its fd closed)

  size_t pending() const { return out.size() - off; }
  bool following() const { return requested && req.follow && !closing; }
  // The error line, after the rest of the line being written (the client's lines stay whole);
  // then the client is closed.
  void fail(const std::string& msg) {
    size_t keep = 0;
    if (!line_start) {
      const size_t nl = out.find('\n', off);
      keep = (nl == std::string::npos ? out.size() : nl + 1) - off;
    }
    out = out.substr(off, keep) + error_line(msg);
    off = 0;
    initial_left = 0;
    closing = true;
    in.clear();
  }
};

ObserveServer::ObserveServer(Fd listen_fd, std::string path, dev_t dev, ino_t ino, Clock clock)
    : listen_(std::move(listen_fd)), path_(std::move(path)), dev_(dev), ino_(ino), clock_(std::move(clock)) {}

ObserveServer::ObserveServer(ObserveServer&& o) noexcept
    : listen_(std::move(o.listen_)),
      path_(std::move(o.path_)),
      dev_(o.dev_),
      ino_(o.ino_),
      clock_(std::move(o.clock_)),
      clients_(std::move(o.clients_)),
      accept_failing_(o.accept_failing_) {}

ObserveServer& ObserveServer::operator=(ObserveServer&& o) noexcept {
  if (this != &o) {
    remove_socket_file();
    listen_ = std::move(o.listen_);
    path_ = std::move(o.path_);
    dev_ = o.dev_;
    ino_ = o.ino_;
    clock_ = std::move(o.clock_);
    clients_ = std::move(o.clients_);
    accept_failing_ = o.accept_failing_;
  }
  return *this;
}

ObserveServer::~ObserveServer() { remove_socket_file(); }

void ObserveServer::remove_socket_file() {
  if (!listen_) return;  // moved from
  // Only the file we bound: another agent may have replaced it since (ours was then stale).
  struct stat st {};
  if (::lstat(path_.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == dev_ && st.st_ino == ino_ &&
      ::unlink(path_.c_str()) != 0)
    spdlog::warn("observe socket {}: unlink: {}", path_, std::strerror(errno));
  listen_.reset();
}

Result<ObserveServer> ObserveServer::listen(const std::string& path, Clock clock) {
  if (path.empty() || path.size() >= sizeof(sockaddr_un::sun_path))
    return make_error("observe socket '{}': a unix socket path is 1 to {} bytes", path, sizeof(sockaddr_un::sun_path) - 1);
  if (auto st = make_dirs(std::filesystem::path(path).parent_path()); !st)
    return st.error().wrap(fmt::format("observe socket {}", path));
  WEIR_TRY(replace_stale(path));
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return errno_error(fmt::format("observe socket {}: socket", path));
  const sockaddr_un sa = unix_address(path);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0)
    return errno_error(fmt::format("observe socket {}: bind", path));
  // The mode is set on the path after bind (a socket's fchmod does not reach its file), but before
  // listen(): until then every connect is refused, so no one connects under the umask's mode.
  auto fail = [&](const char* what) {
    Error e = errno_error(fmt::format("observe socket {}: {}", path, what));
    ::unlink(path.c_str());
    return e;
  };
  if (::chmod(path.c_str(), 0600) != 0) return fail("chmod 0600");
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return fail("stat");
  if (::listen(fd.get(), 16) != 0) return fail("listen");
  return ObserveServer(std::move(fd), path, st.st_dev, st.st_ino, std::move(clock));
}

size_t ObserveServer::clients() const { return clients_.size(); }

void ObserveServer::poll_fds(std::vector<pollfd>& out) const {
  out.push_back({listen_.get(), static_cast<short>(accept_failing_ ? 0 : POLLIN), 0});
  for (const auto& c : clients_) {
    short events = 0;
    // A follower is read too: to see it shut down (a full close shows as POLLHUP anyway).
    if (!c.closing && (!c.requested || (c.req.follow && !c.read_eof))) events |= POLLIN;
    if (c.pending() > 0) events |= POLLOUT;
    out.push_back({c.fd.get(), events, 0});
  }
}

void ObserveServer::on_ready(const pollfd* ready, size_t n, const FlowStore& store) {
  if (n == 0) return;
  // Clients by fd, not by position: one may have been removed (expire_idle) since poll_fds().
  // New connections are accepted last, so that no fd of this poll() names a new client.
  for (size_t i = 1; i < n; i++) {
    if (ready[i].revents == 0) continue;
    Client* c = nullptr;
    if (i - 1 < clients_.size() && clients_[i - 1].fd.get() == ready[i].fd) {
      c = &clients_[i - 1];
    } else {
      auto it = std::find_if(clients_.begin(), clients_.end(), [&](const Client& x) { return x.fd.get() == ready[i].fd; });
      if (it != clients_.end()) c = &*it;
    }
    if (c && !c->dead) on_client(*c, ready[i].revents, store);
  }
  std::erase_if(clients_, [](const Client& c) { return c.dead; });
  if (ready[0].revents & POLLIN) accept_all();
}

void ObserveServer::accept_all() {
  // Bounded per turn: a flood of connections does not hold the agent's loop.
  for (int i = 0; i < 64; i++) {
    Fd fd(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!fd) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == EINTR || errno == ECONNABORTED) continue;
      // EMFILE, ENOBUFS...: the connection waits in the backlog; said once until accept works.
      if (!accept_failing_) spdlog::warn("observe socket {}: accept: {}", path_, std::strerror(errno));
      accept_failing_ = true;
      break;
    }
    accept_failing_ = false;
    if (clients_.size() >= kMaxClients) {
      const std::string line =
          error_line(fmt::format("weir observe: the agent serves {} clients already; try again later", kMaxClients));
      // Best effort: a new socket's buffer takes one line.
      (void)::send(fd.get(), line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      continue;
    }
    Client c;
    c.fd = std::move(fd);
    c.accepted = c.last_progress = clock_();
    clients_.push_back(std::move(c));
  }
}

void ObserveServer::on_client(Client& c, short revents, const FlowStore& store) {
  // POLLHUP: the client closed its socket (a shutdown of its writing side only is POLLIN and
  // EOF); it can take no more output.
  if (revents & (POLLERR | POLLHUP | POLLNVAL)) {
    c.dead = true;
    return;
  }
  if (revents & POLLIN) read_client(c, store);
  if (!c.dead && (revents & POLLOUT)) flush(c);
}

void ObserveServer::read_client(Client& c, const FlowStore& store) {
  char buf[8192];
  // Bounded per turn (a request is at most 64 KiB); what is left is read on the next turn.
  for (int i = 0; i < 16 && !c.dead && !c.closing; i++) {
    const ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) c.dead = true;  // ECONNRESET...
      return;
    }
    if (n == 0) {
      // The client shut its writing side down: what it sent is its request, '\n' or not.
      if (c.requested) {
        c.read_eof = true;
      } else if (c.in.empty()) {
        c.dead = true;
      } else {
        answer(c, store);
      }
      return;
    }
    if (c.requested) continue;  // what a client sends after its request is ignored
    c.in.append(buf, static_cast<size_t>(n));
    const size_t nl = c.in.find('\n');
    if (nl != std::string::npos) {
      c.in.resize(nl);
      answer(c, store);
    } else if (c.in.size() > kMaxRequest) {
      c.fail(fmt::format("weir observe: the request is longer than {} KiB", kMaxRequest >> 10));
      flush(c);
    }
  }
}

void ObserveServer::answer(Client& c, const FlowStore& store) {
  if (c.in.size() > kMaxRequest) {
    c.fail(fmt::format("weir observe: the request is longer than {} KiB", kMaxRequest >> 10));
    flush(c);
    return;
  }
  // Nothing may throw out of the agent's loop: a parse error (its message says where) and any
  // JSON type error the request's parser lets through become the client's error line.
  auto req = [&]() -> Result<calc::ObserveRequest> {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(c.in);
    } catch (const nlohmann::json::exception& e) {
      return make_error("the request is not JSON: {}", e.what());
    }
    try {
      return calc::observe_request_from_json(j);
    } catch (const std::exception& e) {
      return make_error("{}", e.what());
    }
  }();
  if (!req) {
    c.fail(fmt::format("weir observe: the agent rejected the request: {}", req.error().str()));
    flush(c);
    return;
  }
  c.requested = true;
  c.req = std::move(*req);
  std::string().swap(c.in);  // up to 64 KiB per client: given back
  for (const model::Flow& f : store.last(c.req.last, c.req.filter)) c.out += flow_line(f);
  c.initial_left = c.pending();
  if (!c.req.follow) c.closing = true;
  flush(c);
}

void ObserveServer::flush(Client& c) {
  while (c.pending() > 0) {
    const ssize_t n = ::send(c.fd.get(), c.out.data() + c.off, c.pending(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      // EPIPE, ECONNRESET: the client went away. Anything else: it cannot be written to either.
      if (errno != EPIPE && errno != ECONNRESET)
        spdlog::debug("observe socket {}: send: {}", path_, std::strerror(errno));
      c.dead = true;
      return;
    }
    const auto sent = static_cast<size_t>(n);
    c.off += sent;
    c.initial_left -= std::min(c.initial_left, sent);
    c.line_start = c.out[c.off - 1] == '\n';
    c.last_progress = clock_();
  }
  if (c.pending() == 0) {
    c.out.clear();
    c.off = 0;
    if (c.closing) c.dead = true;
  } else if (c.off >= (64 << 10) && c.off * 2 >= c.out.size()) {
    // What was sent is dropped now and then: moves at most as many bytes as were sent.
    c.out.erase(0, c.off);
    c.off = 0;
  }
}

void ObserveServer::publish(const model::Flow& f) {
  std::string line;  // made once, for the first follower that wants it
  for (auto& c : clients_) {
    if (c.dead || !c.following() || !c.req.filter.matches(f)) continue;
    if (line.empty()) line = flow_line(f);
    c.out += line;
    if (c.pending() - c.initial_left > kMaxPending) {
      spdlog::warn("observe socket {}: a follower fell more than {} MiB behind: closing it", path_, kMaxPending >> 20);
      c.fail(kTooSlow);
    }
  }
}

void ObserveServer::expire_idle() {
  if (accept_failing_) accept_all();
  const TimePoint now = clock_();
  for (auto& c : clients_) {
    if (c.dead) continue;
    if (!c.requested && !c.closing && now - c.accepted >= kIdleTimeout) {
      c.fail(fmt::format("weir observe: no request within {} s", kIdleTimeout.count()));
      flush(c);
      c.dead = true;  // whether or not it took the line: it has had its time
    } else if (c.closing && now - c.last_progress >= kIdleTimeout) {
      c.dead = true;  // it does not take the end of its answer: its fd is not held forever
    }
  }
  std::erase_if(clients_, [](const Client& c) { return c.dead; });
}

std::optional<TimePoint> ObserveServer::next_expiry() const {
  std::optional<TimePoint> next;
  if (accept_failing_) next = clock_() + std::chrono::seconds(1);
  for (const auto& c : clients_) {
    std::optional<TimePoint> at;
    if (!c.requested && !c.closing) at = c.accepted + kIdleTimeout;
    if (c.closing) at = c.last_progress + kIdleTimeout;
    if (at && (!next || *at < *next)) next = at;
  }
  return next;
}

}  // namespace weir::agent
