// SyncLoop: the agent's sync state machine, apart from its event loop and from the kernel.
//
// sync() reads the datastore and brings the dataplane managers in step with it:
//   - a rejected load changes nothing: the last good state (the calc output last applied, and
//     the backend index the conntrack scanner judges flows by) stays;
//   - a change confined to Services and EndpointSlices takes the incremental path
//     (calc::update_service_frontends + ServiceSyncer::apply_changes), when there is a last good
//     state, no forced full sync and no interface pending;
//   - anything else takes the full path: calc::compute, diff with the last good state, apply
//     endpoints (policy from inside, before attach) and services;
//   - a failed service write forces the next sync to be full (has_pending(): the caller retries
//     it a second later even when the datastore did not change).
// The managers are injected, so the whole machine runs over fake maps in unit tests
// (tests/unit/sync_loop_test.cpp); the agent (agent.cpp) gives it the kernel's.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <tuple>
#include <utility>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "calc/calc.h"
#include "calc/conntrack.h"
#include "calc/ct_occupancy.h"
#include "calc/policy.h"
#include "dataplane/ct_scanner.h"
#include "dataplane/endpoint_manager.h"
#include "dataplane/kernel_routes.h"
#include "dataplane/policy_manager.h"
#include "dataplane/service_syncer.h"
#include "dataplane/tunnel_sync.h"
#include "datastore/datastore.h"
#include "maps/table.h"
#include "util/prom.h"
#include "util/result.h"

namespace weir::agent {

// What a sync applies to: the managers (borrowed, they outlive the SyncLoop), the conntrack map
// for the occupancy warning, and the clock conntrack timestamps are read against.
struct Dataplane {
  dataplane::EndpointManager& endpoints;
  dataplane::ServiceSyncer& services;
  dataplane::PolicyManager& policies;
  dataplane::ConntrackScanner& scanner;
  const maps::ConntrackTable& ct;
  std::function<uint64_t()> now_ns = dataplane::monotonic_ns;
  // Routes to other nodes' pods in the kernel (routed mode, dataplane/kernel_routes.h); none
  // (nullptr) leaves the kernel's tables alone.
  dataplane::KernelRouteTable* kernel_routes = nullptr;
  // VXLAN between nodes (dataplane/tunnel_sync.h); nullptr leaves the tunnel maps and the underlay
  // interface alone.
  dataplane::TunnelOps* tunnel = nullptr;
  // Puts in place the build of the TC programs the configuration asks for (bpfLogLevel:
  // docs/bpf-log.md) and writes its log settings; true when the programs changed, so that
  // every interface (and the underlay) gets them attached in this sync. Unset: nothing to do.
  std::function<Result<bool>(const model::DataplaneConfig&)> programs;
};

class PhaseTimer;  // sync_loop.cpp

// What the sync loop measured, for `weir agent --metrics-listen` (agent/metrics.h). Written by
// the loop only; the agent's event loop renders it between syncs (one thread).
struct SyncMetrics {
  std::map<std::string, prom::Histogram> phase_seconds;  // by phase ("datastore", "calc", ...)
  std::map<std::string, uint64_t> syncs;                 // by result: to_string(Path)
  uint64_t invalid_resources = 0;  // resources rejected by validation, summed over rejected loads
  double last_success_unix = 0;    // wall-clock time of the last sync that was not rejected
  prom::Histogram policy_seconds;  // compile + verify + install of the policy programs, per sync
  prom::Histogram scan_seconds;    // conntrack scanner passes
  uint64_t scan_expired = 0, scan_stale_backend = 0;  // entries the scanner removed, by cause
  uint64_t ct_entries = 0;         // conntrack entries the last scan kept
};

class SyncLoop {
 public:
  using Clock = std::chrono::steady_clock;

  SyncLoop(std::string node, Dataplane dp) : node_(std::move(node)), dp_(std::move(dp)) {}

  // Reads what a previous agent left in the maps (endpoints, services, policy slots).
  Status adopt();

  // One sync (see above). Errors are logged, never returned: what could not be applied is
  // retried (has_pending(), policy_retry_at()).
  void sync(datastore::Datastore& ds);

  // Endpoints failed closed (their policy did not install): when to try again (1 s, doubling
  // up to 60 s), nullopt when none.
  std::optional<Clock::time_point> policy_retry_at() const;
  void retry_policy();

  // One conntrack scanner pass with the last good state's backends, then the occupancy warning.
  void scan();

  std::chrono::milliseconds min_sync_period() const;
  std::chrono::milliseconds scan_period() const;
  // Something to retry without a datastore change: missing interfaces, failed service writes.
  bool has_pending() const;
  void set_config(model::DataplaneConfig c) { config_ = std::move(c); }

  // What the last sync() did, and the state it left: for tests and logs.
  enum class Path { Rejected, Incremental, Full, Unchanged };
  Path last_path() const { return last_path_; }
  const std::optional<calc::Output>& last_good() const { return good_; }
  const SyncMetrics& metrics() const { return metrics_; }
  const std::optional<model::DataplaneConfig>& config() const { return config_; }
  // Where weir_from_ul is attached ("" when VXLAN is off or not attached).
  std::string underlay() const { return tunnel_.attached ? tunnel_.attached->name : std::string(); }

 private:
  void sync_once(datastore::Datastore& ds, PhaseTimer& timer);
  void sync_full(const model::Snapshot& snap, PhaseTimer& timer);
  void sync_services(const model::Snapshot& snap, const std::vector<std::string>& services,
                     PhaseTimer& timer);
  void take_config(const model::Snapshot& snap);
  bool use_programs();
  Status apply_policy(const calc::Output& out);
  void apply_kernel_routes(const calc::Output& out);
  void apply_tunnel(const model::Snapshot& snap);
  void schedule_policy_retry();
  void report_occupancy(uint64_t entries);

  std::string node_;
  Dataplane dp_;
  calc::CtOccupancyAlarm ct_alarm_;
  calc::PolicyResolver resolver_;
  std::optional<calc::Output> good_;  // last successfully applied calc output
  std::set<model::Ipv4> local_;        // the node's workload IPs in good_'s snapshot
  bool force_full_ = false;            // a service write failed: the next sync is a full one
  // The settings of Dataplane::programs (bpfLogLevel, bpfLogFilters, bpfProfiling) it refused as
  // input (a pcap filter that does not compile): not asked again until one of them changes.
  std::optional<std::tuple<model::BpfLogLevel, std::map<std::string, std::string>, bool>> refused_log_;
  calc::BackendIndex backends_;
  std::optional<model::DataplaneConfig> config_;
  Clock::time_point policy_retry_at_{};
  std::chrono::milliseconds policy_retry_delay_{0};
  Path last_path_ = Path::Unchanged;
  std::vector<dataplane::KernelRoute> kernel_routes_;  // what the kernel has, when kernel_routes_ok_
  bool kernel_routes_ok_ = false;
  dataplane::TunnelState tunnel_;
  bool warned_tunnel_ = false;
  SyncMetrics metrics_;
};

// "rejected", "incremental", "full", "unchanged": in metrics (weir_syncs_total's result) and in
// the status file.
std::string_view to_string(SyncLoop::Path p);
inline constexpr SyncLoop::Path kAllPaths[] = {SyncLoop::Path::Full, SyncLoop::Path::Incremental,
                                               SyncLoop::Path::Unchanged, SyncLoop::Path::Rejected};

// Sets spdlog's level from the snapshot's DataplaneConfig, when it names one.
void apply_log_level(const model::Snapshot& snap);

}  // namespace weir::agent
