// `weir observe` (docs/observe.md): the client of the agent's flow socket
// (agent/observe_server.h). Sends one request line, prints the flows the agent answers, one
// JSON line each, as a table, JSON Lines or one JSON array. With --follow it keeps reading until
// SIGINT/SIGTERM (taken through a signalfd, so that the loop ends cleanly and exits 0) or until
// the agent closes the connection.
#include <fmt/format.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstring>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "calc/flow_filter.h"
#include "cli/commands.h"
#include "dataplane/policy_info.h"
#include "cli/format.h"
#include "model/flow.h"
#include "model/validation.h"
#include "util/fd.h"
#include "util/result.h"

namespace weir::cli {
namespace {

// Exit codes: 1 when observing failed, 2 when the command line is wrong.
constexpr int kFailed = 1, kBadUsage = 2;
// Without --follow the agent answers at once from memory: silence this long means it is stuck.
constexpr int kAnswerTimeoutMs = 10000;
// No flow's JSON comes near this; a longer line is not the agent speaking the protocol.
constexpr size_t kMaxLine = 1 << 20;

struct ObserveOptions {
  bool follow = false;
  std::string last;  // "" when not given
  calc::FlowFilterArgs filter;
  std::string output = "table";
  std::string socket;  // "" -> <state dir>/observe.sock
};

int fail(int code, const Error& e) {
  std::cerr << "weir observe: " << e.str() << "\n";
  return code;
}

// SIGINT and SIGTERM as readable events while following, so that the loop ends and the command
// exits 0. The signal mask is restored when this goes out of scope.
class StopSignals {
 public:
  static Result<StopSignals> open() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigset_t old;
    if (int err = ::pthread_sigmask(SIG_BLOCK, &set, &old); err != 0)
      return Error{err, "blocking SIGINT and SIGTERM"};
    Fd fd(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!fd) {
      Error e = errno_error("signalfd for SIGINT and SIGTERM");
      ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
      return e;
    }
    return StopSignals(std::move(fd), old);
  }
  StopSignals(StopSignals&& o) noexcept : fd_(std::move(o.fd_)), old_(o.old_), armed_(o.armed_) {
    o.armed_ = false;
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  StopSignals& operator=(StopSignals&&) = delete;
  ~StopSignals() {
    if (armed_) ::pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  int fd() const { return fd_.get(); }
  // Takes the pending signal, which would otherwise be delivered (and kill) once the mask is
  // restored.
  void consume() const {
    signalfd_siginfo info{};
    while (::read(fd_.get(), &info, sizeof(info)) == static_cast<ssize_t>(sizeof(info))) {
    }
  }

 private:
  StopSignals(Fd fd, const sigset_t& old) : fd_(std::move(fd)), old_(old) {}
  Fd fd_;
  sigset_t old_{};
  bool armed_ = true;
};

Result<Fd> connect_agent(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path))
    return Error{ENAMETOOLONG,
                 fmt::format("socket path {} is longer than a unix socket path may be ({} bytes)",
                             path, sizeof(addr.sun_path) - 1)};
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return errno_error("creating a unix socket");
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    if (errno == ENOENT || errno == ECONNREFUSED)
      return errno_error(fmt::format(
          "cannot connect to {}: the agent may not be running (or runs with another --state-dir "
          "or --pin-root)",
          path));
    return errno_error("connecting to " + path);
  }
  return fd;
}

Status send_all(int fd, const std::string& data, const std::string& path) {
  size_t off = 0;
  while (off < data.size()) {
    // MSG_NOSIGNAL: an agent that closed turns into an error here, not a SIGPIPE.
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("sending the request to " + path);
    }
    off += static_cast<size_t>(n);
  }
  return {};
}

// Receives and prints what the agent answers; returns the exit code.
class Printer {
 public:
  Printer(const ObserveOptions& o, std::string path) : o_(o), path_(std::move(path)) {}

  void start() {
    if (o_.output == "table") {
      std::cout << format_flow_header();
      if (o_.follow) std::cout.flush();
    }
  }

  // One line from the agent: a flow, or {"error": ...}. Returns the exit code to end with, or
  // -1 to go on.
  int line(const std::string& text) {
    if (text.empty()) return -1;
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded())
      return fail(kFailed,
                  make_error("{} sent a line that is not JSON: {}", path_, model::clip(text)));
    if (j.is_object() && j.contains("error")) {
      const auto& e = j.at("error");
      std::cerr << "weir observe: the agent answered: "
                << (e.is_string() ? e.get<std::string>() : e.dump()) << "\n";
      return kFailed;
    }
    auto f = model::flow_from_json(j);
    if (!f) return fail(kFailed, f.error().wrap("reading a flow from " + path_));
    if (o_.output == "json") {
      all_.push_back(model::to_json(*f));
    } else if (o_.output == "jsonl") {
      std::cout << text << "\n";  // as the agent wrote it: fields of a newer agent kept
    } else {
      std::cout << format_flow_line(*f);
    }
    if (o_.follow) std::cout.flush();
    return -1;
  }

  void finish() {
    if (o_.output == "json") std::cout << all_.dump(2) << "\n";
    std::cout.flush();
  }

 private:
  const ObserveOptions& o_;
  std::string path_;
  nlohmann::json all_ = nlohmann::json::array();
};

// Reads JSON lines from the agent until it closes (or, following, until a stop signal).
int receive(int sock, const StopSignals* stop, Printer& out, const std::string& path, bool follow) {
  std::string pending;
  char buf[65536];
  for (;;) {
    pollfd fds[2] = {{sock, POLLIN, 0}, {stop != nullptr ? stop->fd() : -1, POLLIN, 0}};
    const int n = ::poll(fds, 2, follow ? -1 : kAnswerTimeoutMs);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(kFailed, errno_error("waiting for " + path));
    }
    if (n == 0)
      return fail(kFailed, make_error("no answer from the agent on {} within {} s", path,
                                      kAnswerTimeoutMs / 1000));
    if ((fds[1].revents & POLLIN) != 0) {  // SIGINT/SIGTERM while following
      stop->consume();
      return 0;
    }
    const ssize_t got = ::read(sock, buf, sizeof(buf));
    if (got < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return fail(kFailed, errno_error("reading from " + path));
    }
    if (got == 0) {
      // The agent closes after the stored flows; while following it only closes when it stops.
      if (int rc = out.line(pending); rc >= 0) return rc;
      if (follow)
        return fail(kFailed, make_error("the agent closed {} (it stopped or restarted)", path));
      return 0;
    }
    pending.append(buf, static_cast<size_t>(got));
    size_t start = 0;
    for (size_t nl = pending.find('\n'); nl != std::string::npos; nl = pending.find('\n', start)) {
      if (int rc = out.line(pending.substr(start, nl - start)); rc >= 0) return rc;
      start = nl + 1;
    }
    pending.erase(0, start);
    if (pending.size() > kMaxLine)
      return fail(kFailed, make_error("{} sent a line longer than {} bytes", path, kMaxLine));
  }
}

// The request from the options, or an Error naming the option that is wrong.
Result<calc::ObserveRequest> request_of(const ObserveOptions& o) {
  if (o.output != "table" && o.output != "json" && o.output != "jsonl")
    return make_error("-o {}: expected table, json or jsonl", model::clip(o.output));
  if (o.output == "json" && o.follow)
    return make_error(
        "-o json prints one array once every flow is in, which --follow never "
        "reaches: use -o jsonl (one JSON object per line) with --follow");
  calc::ObserveRequest r;
  r.follow = o.follow;
  r.last = o.follow ? 0 : 20;
  if (!o.last.empty()) {
    uint64_t v = 0;
    auto [end, ec] = std::from_chars(o.last.data(), o.last.data() + o.last.size(), v);
    if (ec != std::errc() || end != o.last.data() + o.last.size())
      return make_error("--last {}: expected a number of flows (0 or more)", model::clip(o.last));
    r.last = v;
  }
  auto f = calc::parse_flow_filter(o.filter);
  if (!f) return f.error();
  r.filter = *f;
  return r;
}

int run_observe(const GlobalOptions& g, const ObserveOptions& o) {
  auto req = request_of(o);
  if (!req) return fail(kBadUsage, req.error());
  const std::string path = o.socket.empty() ? dataplane::observe_socket_path(g.effective_state_dir()) : o.socket;
  // Signals first: a SIGINT between connect and the loop must still end it cleanly.
  std::optional<StopSignals> stop;
  if (o.follow) {
    auto s = StopSignals::open();
    if (!s) return fail(kFailed, s.error());
    stop.emplace(std::move(*s));
  }
  auto sock = connect_agent(path);
  if (!sock) return fail(kFailed, sock.error());
  if (auto st = send_all(sock->get(), to_json(*req).dump() + "\n", path); !st)
    return fail(kFailed, st.error());
  Printer out(o, path);
  out.start();
  const int rc = receive(sock->get(), stop ? &*stop : nullptr, out, path, o.follow);
  if (rc == 0) out.finish();
  return rc;
}

}  // namespace

void add_observe_command(CLI::App& app, GlobalOptions& g, int& rc) {
  auto o = std::make_shared<ObserveOptions>();
  auto* cmd = app.add_subcommand(
      "observe",
      "show the flows the agent recorded (new flows, drops, flow ends), like hubble observe");
  cmd->add_flag("-f,--follow", o->follow, "keep printing new flows as they come (until Ctrl-C)");
  cmd->add_option("--last", o->last,
                  "the last N stored flows that match (default 20; 0 with --follow)")
      ->type_name("N");
  cmd->add_option("--pod", o->filter.pod, "flows from or to this pod (NAMESPACE/NAME)")
      ->type_name("NS/NAME");
  cmd->add_option("--from-ip", o->filter.from_ip, "flows whose source is in this address or CIDR")
      ->type_name("CIDR");
  cmd->add_option("--to-ip", o->filter.to_ip,
                  "flows whose destination (or the backend NAT chose) is in this address or CIDR")
      ->type_name("CIDR");
  cmd->add_option("--port", o->filter.port, "flows with this source, destination or backend port")
      ->type_name("PORT");
  cmd->add_option("--proto", o->filter.proto, "tcp, udp or icmp")->type_name("PROTO");
  cmd->add_option("--verdict", o->filter.verdict, "forwarded or dropped")->type_name("VERDICT");
  cmd->add_option("--service", o->filter.service, "flows to this service (NAMESPACE/NAME)")
      ->type_name("NS/NAME");
  cmd->add_option("-o,--output", o->output, "table, json (one array) or jsonl (one flow per line)")
      ->type_name("FORMAT")
      ->capture_default_str();
  cmd->add_option("--socket", o->socket, "the agent's socket (default <state dir>/observe.sock)")
      ->type_name("PATH");
  cmd->callback([&g, &rc, o] { rc = run_observe(g, *o); });
}

}  // namespace weir::cli
