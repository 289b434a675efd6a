#include "lab/etcd_server.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <system_error>
#include <thread>

#include "datastore/etcd_client.h"
#include "lab/netns.h"
#include "util/fd.h"

namespace weir::lab {

namespace fs = std::filesystem;

namespace {

// A TCP port nothing listens on now (the kernel's pick for an ephemeral bind).
Result<uint16_t> free_port(const std::string& ip) {
  Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!s) return errno_error("socket");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  if (::inet_pton(AF_INET, ip.c_str(), &a.sin_addr) != 1)
    return make_error("etcd listen address \"{}\" is not an IPv4 address", ip);
  if (::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0)
    return errno_error("bind " + ip + ":0");
  socklen_t len = sizeof(a);
  if (::getsockname(s.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0)
    return errno_error("getsockname");
  return ntohs(a.sin_port);
}

}  // namespace

std::vector<std::string> etcd_member_argv(const EtcdMemberSpec& m) {
  // Flag, value: one pair per line.
  // clang-format off
  return {
      "etcd",
      "--name", m.name,
      "--data-dir", m.data_dir,
      "--listen-client-urls", m.client_url,
      "--advertise-client-urls", m.client_url,
      "--listen-peer-urls", m.peer_url,
      "--initial-advertise-peer-urls", m.peer_url,
      "--initial-cluster", m.initial_cluster,
      "--initial-cluster-token", m.token,
      "--initial-cluster-state", m.existing ? "existing" : "new",
      // A lab on one machine: fast elections, so that a killed member is replaced in about a
      // second.
      "--heartbeat-interval", "50",
      "--election-timeout", "500",
      "--logger", "zap",
      "--log-level", "warn",
  };
  // clang-format on
}

Status wait_etcd_ready(const std::string& endpoints, std::chrono::milliseconds timeout) {
  datastore::etcd::Options o;
  o.dial_timeout = std::chrono::milliseconds(500);
  o.request_timeout = std::chrono::milliseconds(2000);
  auto c = datastore::etcd::Client::create(endpoints, o);
  if (!c) return c.error();
  auto until = std::chrono::steady_clock::now() + timeout;
  Error last{0, "no attempt"};
  while (std::chrono::steady_clock::now() < until) {
    auto r = c->revision();
    if (r) return {};
    last = r.error();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return Error{ETIMEDOUT, fmt::format("etcd {} not ready after {} ms: {}", endpoints,
                                      timeout.count(), last.str())};
}

Result<std::unique_ptr<EtcdCluster>> EtcdCluster::start(const EtcdClusterOptions& o) {
  if (o.members < 1) return make_error("etcd cluster: {} members", o.members);
  std::unique_ptr<EtcdCluster> c(new EtcdCluster());
  c->opts_ = o;
  std::string tmpl = (o.parent / fmt::format("weir-etcd-{}-XXXXXX", o.tag)).string();
  if (!::mkdtemp(tmpl.data())) return errno_error("mkdtemp " + tmpl);
  c->dir_ = tmpl;
  c->token_ = "weir-" + c->dir_.filename().string();
  for (int i = 0; i < o.members; ++i) {
    Member m;
    m.name = fmt::format("m{}", i);
    auto cp = free_port(o.listen_ip);
    if (!cp) return cp.error();
    auto pp = free_port(o.listen_ip);
    if (!pp) return pp.error();
    m.client_port = *cp;
    m.peer_port = *pp;
    c->members_.push_back(std::move(m));
  }
  for (int i = 0; i < o.members; ++i) WEIR_TRY(c->spawn_member(i, false));
  if (o.netns.empty()) {
    WEIR_TRY(wait_etcd_ready(c->endpoints(), o.ready_timeout));
  } else {
    std::string eps = c->endpoints();
    WEIR_TRY(in_netns(o.netns, [&] { return wait_etcd_ready(eps, o.ready_timeout); }));
  }
  return c;
}

std::string EtcdCluster::initial_cluster() const {
  std::string out;
  for (const auto& m : members_)
    out += fmt::format("{}{}=http://{}:{}", out.empty() ? "" : ",", m.name, opts_.listen_ip,
                       m.peer_port);
  return out;
}

std::string EtcdCluster::endpoint(int i) const {
  return fmt::format("http://{}:{}", opts_.listen_ip, members_.at(size_t(i)).client_port);
}

std::string EtcdCluster::endpoints() const {
  std::string out;
  for (int i = 0; i < size(); ++i) out += (i ? "," : "") + endpoint(i);
  return out;
}

Status EtcdCluster::spawn_member(int i, bool existing) {
  Member& m = members_.at(size_t(i));
  std::string client = endpoint(i);
  std::string peer = fmt::format("http://{}:{}", opts_.listen_ip, m.peer_port);
  std::vector<std::string> argv = etcd_member_argv(
      {m.name, (dir_ / m.name).string(), client, peer, initial_cluster(), token_, existing});
  SpawnOptions so;
  so.netns = opts_.netns;
  so.output_path = (dir_ / (m.name + ".log")).string();
  so.new_session = true;
  auto p = spawn(argv, so);
  if (!p) return p.error().wrap("starting etcd member " + m.name);
  m.proc = *p;
  m.proc.what = "etcd " + m.name;
  return {};
}

Status EtcdCluster::kill_member(int i) {
  Member& m = members_.at(size_t(i));
  if (!m.proc.valid()) return {};
  WEIR_TRY(signal_process(m.proc, SIGKILL));
  auto st = wait_process(m.proc, std::chrono::seconds(10));
  if (!st) return st.error();
  m.proc = ProcessRecord{};
  return {};
}

Status EtcdCluster::restart_member(int i) {
  if (member_running(i)) return make_error("etcd member {} is running", i);
  return spawn_member(i, true);
}

bool EtcdCluster::member_running(int i) const {
  const Member& m = members_.at(size_t(i));
  return m.proc.valid() && process_alive(m.proc);
}

std::vector<ProcessRecord> EtcdCluster::records() const {
  std::vector<ProcessRecord> out;
  for (const auto& m : members_)
    if (m.proc.valid()) out.push_back(m.proc);
  return out;
}

EtcdCluster::~EtcdCluster() {
  for (auto& m : members_)
    if (m.proc.valid()) (void)terminate_process(m.proc, SIGTERM, std::chrono::seconds(5));
  if (!dir_.empty()) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
}

}  // namespace weir::lab
