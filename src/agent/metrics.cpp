#include "agent/metrics.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>

#include "maps/decode.h"
#include "util/prom.h"

namespace weir::agent {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// f(interface, hook name, counter metadata, value) for every counter of a hook with a program:
// the outcome rows (exactly one per packet) when `outcomes`, else the others.
template <typename F>
void each_counter(const MapFigures& maps, bool outcomes, F f) {
  for (const auto& itf : maps.counters)
    for (uint32_t h = 0; h < WEIR_HOOK__MAX; h++) {
      if (!itf.hooks[h]) continue;
      for (weir_counter id : maps::counter_display_order()) {
        auto meta = maps::counter_meta(id);
        if (meta && meta->outcome == outcomes) f(itf.name, maps::hook_name(h), *meta, static_cast<double>(itf.hooks[h]->c[id]));
      }
    }
}

// The datapath counters: outcomes by verdict and reason, then the other counters (redirects,
// events, the total) by name.
void write_counters(prom::Writer& w, const MapFigures& maps) {
  w.family("weir_packets_total", "counter",
           "Packets through weir's programs by interface, hook, verdict (accepted, dropped) and "
           "reason: each packet counted once (the seed's counters table, outcome rows).");
  each_counter(maps, true, [&](const std::string& iface, const std::string& hook, const maps::CounterMeta& m, double v) {
    w.sample("weir_packets_total",
             {{"iface", iface}, {"hook", hook}, {"verdict", lower(m.category)}, {"reason", std::string(m.json_name)}}, v);
  });
  w.family("weir_packet_events_total", "counter",
           "Other datapath counters by interface, hook and name (redirects, NAT, conntrack "
           "events, the total of packets seen).");
  each_counter(maps, false, [&](const std::string& iface, const std::string& hook, const maps::CounterMeta& m, double v) {
    w.sample("weir_packet_events_total", {{"iface", iface}, {"hook", hook}, {"name", std::string(m.json_name)}}, v);
  });
}

void write_maps(prom::Writer& w, const MapFigures& maps) {
  w.family("weir_conntrack_entries", "gauge", "Conntrack entries (weir_ct) the last conntrack scan kept.");
  w.sample("weir_conntrack_entries", {}, static_cast<double>(maps.ct_entries));
  w.family("weir_conntrack_capacity_entries", "gauge", "Size of the conntrack map (max_entries).");
  w.sample("weir_conntrack_capacity_entries", {}, static_cast<double>(maps.ct_capacity));
  w.family("weir_nat_frontends", "gauge", "NAT frontends (service VIP:port:protocol) in weir_nat_fe.");
  w.sample("weir_nat_frontends", {}, static_cast<double>(maps.nat_frontends));
  w.family("weir_nat_backends", "gauge", "NAT backend entries in weir_nat_be.");
  w.sample("weir_nat_backends", {}, static_cast<double>(maps.nat_backends));
  w.family("weir_ipset_members", "gauge", "IP set members (CIDR and exact maps).");
  w.sample("weir_ipset_members", {}, static_cast<double>(maps.ipset_members));
  w.family("weir_flow_events_sent_total", "counter",
           "Flow events (new flows, drops) the TC programs wrote to the ring buffer weir_flows.");
  w.sample("weir_flow_events_sent_total", {}, static_cast<double>(maps.flow_events_sent));
  w.family("weir_flow_events_lost_total", "counter",
           "Flow events the TC programs did not send, by reason: ring_buffer_full (the agent did "
           "not read fast enough), rate_limited (over the per-CPU rate, --flow-rate).");
  w.sample("weir_flow_events_lost_total", {{"reason", "ring_buffer_full"}}, static_cast<double>(maps.flow_events_lost));
  w.sample("weir_flow_events_lost_total", {{"reason", "rate_limited"}},
           static_cast<double>(maps.flow_events_rate_limited));
  w.family("weir_flow_records", "gauge", "Flow records the agent keeps for `weir observe`.");
  w.sample("weir_flow_records", {}, static_cast<double>(maps.flow_records));
  w.family("weir_flow_records_capacity", "gauge", "The most flow records the agent keeps (--flow-records).");
  w.sample("weir_flow_records_capacity", {}, static_cast<double>(maps.flow_records_capacity));
}

void write_sync(prom::Writer& w, const SyncMetrics& s) {
  w.family("weir_sync_duration_seconds", "histogram",
           "Time of each phase of a sync of the datastore's state into the maps.");
  for (const auto& [phase, h] : s.phase_seconds) w.histogram("weir_sync_duration_seconds", {{"phase", phase}}, h);
  w.family("weir_syncs_total", "counter",
           "Syncs by result: full, incremental (services only), unchanged, rejected (invalid "
           "input; the last good state stays).");
  for (SyncLoop::Path p : kAllPaths) {
    const std::string r(to_string(p));
    auto it = s.syncs.find(r);
    w.sample("weir_syncs_total", {{"result", r}}, it == s.syncs.end() ? 0 : static_cast<double>(it->second));
  }
  w.family("weir_datastore_invalid_resources_total", "counter",
           "Resources the datastore's validation rejected, summed over rejected syncs.");
  w.sample("weir_datastore_invalid_resources_total", {}, static_cast<double>(s.invalid_resources));
  w.family("weir_last_successful_sync_timestamp_seconds", "gauge",
           "Unix time of the last sync that applied (or confirmed) the datastore's state; 0: none yet.");
  w.sample("weir_last_successful_sync_timestamp_seconds", {}, s.last_success_unix);
  w.family("weir_policy_apply_duration_seconds", "histogram",
           "Time to compile, verify and install the policy programs that changed, per apply.");
  w.histogram("weir_policy_apply_duration_seconds", {}, s.policy_seconds);
  w.family("weir_conntrack_scan_duration_seconds", "histogram", "Time of each conntrack scanner pass.");
  w.histogram("weir_conntrack_scan_duration_seconds", {}, s.scan_seconds);
  w.family("weir_conntrack_scan_removed_entries_total", "counter",
           "Conntrack entries the scanner removed, by cause (expired, stale_backend: their backend "
           "left the service).");
  w.sample("weir_conntrack_scan_removed_entries_total", {{"cause", "expired"}}, static_cast<double>(s.scan_expired));
  w.sample("weir_conntrack_scan_removed_entries_total", {{"cause", "stale_backend"}},
           static_cast<double>(s.scan_stale_backend));
}

}  // namespace

std::string render_metrics(const SyncMetrics& sync, const MapFigures& maps, const std::string& node,
                           const std::string& version) {
  prom::Writer w;
  w.family("weir_build_info", "gauge", "weir's version and the node this agent serves (always 1).");
  w.sample("weir_build_info", {{"version", version}, {"node", node}}, 1);
  write_counters(w, maps);
  write_maps(w, maps);
  write_sync(w, sync);
  return w.str();
}

Result<std::pair<std::string, uint16_t>> parse_listen_address(const std::string& spec) {
  const auto colon = spec.rfind(':');
  if (colon == std::string::npos)
    return make_error("--metrics-listen {}: expected HOST:PORT (e.g. 127.0.0.1:9091)", spec);
  std::string host = spec.substr(0, colon), port_s = spec.substr(colon + 1);
  in_addr a{};
  if (::inet_pton(AF_INET, host.c_str(), &a) != 1)
    return make_error("--metrics-listen {}: '{}' is not an IPv4 address", spec, host);
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_s.data(), port_s.data() + port_s.size(), port);
  if (port_s.empty() || ec != std::errc() || end != port_s.data() + port_s.size() || port > 65535)
    return make_error("--metrics-listen {}: '{}' is not a port (0-65535; 0: any free port)", spec, port_s);
  return std::pair{host, static_cast<uint16_t>(port)};
}

Result<MetricsServer> MetricsServer::listen(const std::string& spec) {
  auto addr = parse_listen_address(spec);
  if (!addr) return addr.error();
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return errno_error("--metrics-listen: socket");
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(addr->second);
  ::inet_pton(AF_INET, addr->first.c_str(), &sa.sin_addr);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
    return errno_error(fmt::format("--metrics-listen {}: bind", spec));
  if (::listen(fd.get(), 16) != 0) return errno_error(fmt::format("--metrics-listen {}: listen", spec));
  socklen_t len = sizeof sa;
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&sa), &len) != 0)
    return errno_error(fmt::format("--metrics-listen {}: getsockname", spec));
  return MetricsServer(std::move(fd), ntohs(sa.sin_port));
}

namespace {

constexpr int kClientTimeoutMs = 2000;

// The request head (up to the blank line), or "" when the client sent none in time.
std::string read_head(int fd) {
  std::string req;
  char buf[2048];
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kClientTimeoutMs);
  while (req.find("\r\n\r\n") == std::string::npos && req.find("\n\n") == std::string::npos &&
         req.size() < 16384) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return "";
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return "";
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return "";
    req.append(buf, static_cast<size_t>(n));
  }
  return req;
}

void send_all(int fd, const std::string& data) {
  size_t off = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kClientTimeoutMs);
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd p{fd, POLLOUT, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) return;
  }
}

std::string response(int code, const char* reason, const std::string& type, const std::string& body) {
  return fmt::format("HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                     code, reason, type, body.size(), body);
}

}  // namespace

void MetricsServer::serve_one(const std::function<std::string()>& render) const {
  Fd c(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
  if (!c) return;  // EAGAIN: the client went away before we got to it
  const std::string head = read_head(c.get());
  if (head.empty()) return;
  const std::string line = head.substr(0, head.find_first_of("\r\n"));
  const auto sp1 = line.find(' '), sp2 = line.find(' ', sp1 == std::string::npos ? 0 : sp1 + 1);
  const std::string method = line.substr(0, sp1);
  const std::string path = sp1 == std::string::npos ? "" : line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (method != "GET") {
    send_all(c.get(), response(405, "Method Not Allowed", "text/plain", "only GET\n"));
  } else if (path != "/metrics" && path.rfind("/metrics?", 0) != 0) {
    send_all(c.get(), response(404, "Not Found", "text/plain", "weir serves /metrics only\n"));
  } else {
    send_all(c.get(), response(200, "OK", "text/plain; version=0.0.4; charset=utf-8", render()));
  }
}

}  // namespace weir::agent
