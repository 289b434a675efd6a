// Prometheus metrics of the agent: `weir agent --metrics-listen 127.0.0.1:9091` serves the text
// exposition format at GET /metrics (docs/metrics.md lists every family).
//
// The agent is one thread: the listening socket is one more fd of its event loop, and a scrape
// is answered between syncs from what the sync loop measured (SyncMetrics) and what the maps
// hold at that moment (MapFigures, read by the agent). A client gets 2 s to send its request and
// to take the answer; a slow or silent one delays the next sync by at most that, and is closed.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "agent/sync_loop.h"
#include "util/fd.h"
#include "util/result.h"
#include "weir/counters.h"

namespace weir::agent {

// What the maps hold at scrape time (conntrack: as the last scan counted it).
struct MapFigures {
  struct Iface {
    std::string name;  // from ifstate, else "ifindex<N>"
    std::array<std::optional<weir_counters_val>, WEIR_HOOK__MAX> hooks{};  // summed over CPUs
  };
  std::vector<Iface> counters;
  uint64_t ct_entries = 0, ct_capacity = 0;
  uint64_t nat_frontends = 0, nat_backends = 0;
  uint64_t ipset_members = 0;  // both IP set maps (CIDR and exact)
  // Flow events (weir_flowst1, summed over CPUs) and the agent's flow store (docs/observe.md).
  uint64_t flow_events_sent = 0, flow_events_rate_limited = 0, flow_events_lost = 0;
  uint64_t flow_records = 0, flow_records_capacity = 0;
};

// The whole /metrics page. Pure (tested in tests/unit/metrics_test.cpp).
// `version` and `node` label weir_build_info.
std::string render_metrics(const SyncMetrics& sync, const MapFigures& maps, const std::string& node,
                           const std::string& version);

// "HOST:PORT" with an IPv4 address (e.g. 127.0.0.1:9091; port 0: any free port), or an error
// naming what is wrong.
Result<std::pair<std::string, uint16_t>> parse_listen_address(const std::string& spec);

// The listening socket. serve_one() answers one connection (call it when fd() is readable):
// GET /metrics -> 200 with render(); another path -> 404; another method -> 405.
class MetricsServer {
 public:
  static Result<MetricsServer> listen(const std::string& spec);
  int fd() const { return fd_.get(); }
  uint16_t port() const { return port_; }  // the bound port (the kernel's pick for port 0)
  void serve_one(const std::function<std::string()>& render) const;

 private:
  MetricsServer(Fd fd, uint16_t port) : fd_(std::move(fd)), port_(port) {}
  Fd fd_;
  uint16_t port_ = 0;
};

}  // namespace weir::agent
