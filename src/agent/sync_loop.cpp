#include "agent/sync_loop.h"

#include <algorithm>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "calc/diff.h"

namespace weir::agent {

using std::chrono::duration_cast;
using std::chrono::milliseconds;
using Clock = SyncLoop::Clock;

std::string_view to_string(SyncLoop::Path p) {
  switch (p) {
    case SyncLoop::Path::Rejected: return "rejected";
    case SyncLoop::Path::Incremental: return "incremental";
    case SyncLoop::Path::Full: return "full";
    case SyncLoop::Path::Unchanged: return "unchanged";
  }
  return "unknown";
}

void apply_log_level(const model::Snapshot& snap) {
  if (snap.config && snap.config->log_level) {
    spdlog::set_level(spdlog::level::from_str(*snap.config->log_level));
  }
}

// Wall time of a sync's phases, for its log line: "12.3 ms (datastore 4.1, calc 2.0, ...)".
class PhaseTimer {
 public:
  void mark(const char* phase) {
    auto now = Clock::now();
    phases_.emplace_back(phase, ms(last_, now));
    last_ = now;
  }
  const std::vector<std::pair<const char*, double>>& phases() const { return phases_; }
  std::string str() const {
    std::string parts;
    for (const auto& [name, t] : phases_) parts += fmt::format("{}{} {:.1f}", parts.empty() ? "" : ", ", name, t);
    return fmt::format("{:.1f} ms ({})", ms(start_, Clock::now()), parts);
  }

 private:
  static double ms(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
  }
  Clock::time_point start_ = Clock::now(), last_ = start_;
  std::vector<std::pair<const char*, double>> phases_;
};

Status SyncLoop::adopt() {
  WEIR_TRY(dp_.endpoints.adopt());
  WEIR_TRY(dp_.services.adopt());
  WEIR_TRY(dp_.policies.adopt());
  return {};
}

// Invalid input leaves the last good state applied (nothing half-way: the snapshot is validated
// as a whole before anything is done).
void SyncLoop::sync(datastore::Datastore& ds) {
  PhaseTimer timer;
  sync_once(ds, timer);
  for (const auto& [phase, ms] : timer.phases()) {
    auto it = metrics_.phase_seconds.try_emplace(phase).first;
    it->second.observe(ms / 1000);
  }
  metrics_.syncs[std::string(to_string(last_path_))]++;
  if (last_path_ != Path::Rejected) {
    metrics_.last_success_unix =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  }
}

void SyncLoop::sync_once(datastore::Datastore& ds, PhaseTimer& timer) {
  auto loaded = ds.load_incremental();
  timer.mark("datastore");
  if (!loaded.ok()) {
    last_path_ = Path::Rejected;
    metrics_.invalid_resources += loaded.errors.size();
    spdlog::error("datastore {}: {} invalid resources; keeping the last good state ({})",
                  ds.describe(), loaded.errors.size(), good_ ? "applied" : "none yet: nothing applied");
    for (const auto& e : loaded.errors) spdlog::error("  {}", e.str());
    return;
  }
  const model::Snapshot& snap = *loaded.snapshot;
  for (const auto& m : datastore::accepted_load_messages(loaded, "datastore " + ds.describe()))
    spdlog::info("{}", m);
  for (const auto& w : loaded.warnings) spdlog::warn("{}", w.str());
  if (!loaded.changes.full && good_ && !force_full_ && !dp_.endpoints.has_pending()) {
    sync_services(snap, loaded.changes.services, timer);
    return;
  }
  sync_full(snap, timer);
}

void SyncLoop::take_config(const model::Snapshot& snap) {
  apply_log_level(snap);
  auto cfg = snap.effective_config();
  if (config_ && !(config_->map_sizes == cfg.map_sizes)) {
    spdlog::warn("DataplaneConfig map sizes changed: they take effect after an agent restart "
                 "(and `weir bpf cleanup` for maps that already exist)");
  }
  config_ = cfg;
}

// The programs the configuration asks for (Dataplane::programs). When they changed, every
// interface is attached again by this sync's endpoint apply, and the underlay's program by its
// tunnel sync; when they could not be put in place, the ones in place stay (logged) and the
// next sync is a full one that tries again.
bool SyncLoop::use_programs() {
  if (!dp_.programs || !config_) return false;
  auto asked = std::tuple(config_->bpf_log_level, config_->bpf_log_filters, config_->bpf_profiling);
  if (refused_log_ == asked) return false;
  auto changed = dp_.programs(*config_);
  if (!changed) {
    if (changed.error().err == 0) {
      // Not a system error: the configuration itself (a pcap filter that does not compile).
      // Retrying cannot help; a change of the configuration is tried.
      spdlog::error("DataplaneConfig refused: BPF log (bpfLogLevel {}): {}; the BPF log settings and the programs "
                    "in place stay until the configuration changes",
                    model::to_string(config_->bpf_log_level), changed.error().str());
      refused_log_ = std::move(asked);
      return false;
    }
    spdlog::error("BPF programs for bpfLogLevel {}: {}; the programs in place stay, retried by a full sync",
                  model::to_string(config_->bpf_log_level), changed.error().str());
    force_full_ = true;  // has_pending(): the event loop retries
    return false;
  }
  refused_log_.reset();
  if (!*changed) return false;
  dp_.endpoints.readopt();
  tunnel_.reattach = tunnel_.attached.has_value();
  return true;
}

// Recomputes everything and applies what differs from the last good state.
void SyncLoop::sync_full(const model::Snapshot& snap, PhaseTimer& timer) {
  // A failed service write is retried here with the full set (ServiceSyncer rewrites only
  // what the maps lack), even when the datastore did not change.
  const bool retry = std::exchange(force_full_, false);
  take_config(snap);
  const bool reattach = use_programs();
  calc::Output out = calc::compute(snap, node_);
  local_ = calc::local_workload_ips(snap, node_);
  for (const auto& w : out.warnings) spdlog::warn("{}", w.str());
  timer.mark("calc");
  resolver_.update(snap);
  timer.mark("policy calc");
  apply_kernel_routes(out);
  apply_tunnel(snap);
  bool services_changed = !good_;
  if (good_) {
    auto d = calc::diff(*good_, out);
    timer.mark("diff");
    services_changed = !d.frontends.empty();
    if (d.empty() && !dp_.endpoints.has_pending() && !retry && !reattach) {
      last_path_ = Path::Unchanged;
      spdlog::debug("datastore changed, services and endpoints already up to date");
      (void)apply_policy(out);
      timer.mark("policy");
      spdlog::debug("sync done in {}", timer.str());
      return;
    }
    spdlog::info("applying changes: {}", d.summary());
  } else {
    spdlog::info("applying {} frontends, {} interfaces, {} routes", out.frontends.size(),
                 out.interfaces.size(), out.routes.size());
  }
  last_path_ = Path::Full;
  // Policy is installed from inside the endpoint apply, after new interfaces have their
  // ifstate entry and before their programs are attached: no new workload runs unpoliced.
  auto st = dp_.endpoints.apply(out.interfaces, out.routes, [&] { return apply_policy(out); });
  if (!st) spdlog::error("endpoints: {}", st.error().str());
  timer.mark("endpoints+policy");
  auto ss = dp_.services.apply(out.frontends);
  if (!ss) {
    spdlog::error("services: {}", ss.error().str());
    force_full_ = true;
  }
  timer.mark("services");
  backends_ = calc::BackendIndex(out.frontends);
  good_ = std::move(out);
  spdlog::info("sync done in {}", timer.str());
  // Flows to backends that were just removed go now, not at the next periodic scan.
  if (services_changed) scan();
}

// The incremental path: only these services ("ns/name") and their slices changed.
void SyncLoop::sync_services(const model::Snapshot& snap, const std::vector<std::string>& services,
                             PhaseTimer& timer) {
  last_path_ = Path::Unchanged;
  if (services.empty()) {
    spdlog::debug("datastore changed, nothing to apply");
    return;
  }
  std::vector<model::Warning> warnings;
  auto d = calc::update_service_frontends(good_->frontends, snap, services, local_, &warnings);
  for (const auto& w : warnings) spdlog::warn("{}", w.str());
  timer.mark("calc");
  if (d.empty()) {
    spdlog::debug("{} services changed in the datastore, their frontends did not", services.size());
    return;
  }
  last_path_ = Path::Incremental;
  spdlog::info("applying changes: frontends +{} ~{} -{} ({} services changed)", d.added.size(),
               d.updated.size(), d.removed.size(), services.size());
  auto ss = dp_.services.apply_changes(d);
  if (!ss) {
    spdlog::error("services: {}", ss.error().str());
    force_full_ = true;  // retried by a full sync (has_pending())
  }
  timer.mark("services");
  // Flows to backends that are gone are removed now (not at the next periodic scan); a
  // change that only adds backends or services leaves every flow valid.
  bool lost = !d.removed.empty() ||
              std::any_of(d.updated.begin(), d.updated.end(),
                          [&](const calc::Frontend& fe) { return backends_.loses_backends(fe); });
  std::vector<calc::Frontend> changed = d.added;
  changed.insert(changed.end(), d.updated.begin(), d.updated.end());
  backends_.update(changed, d.removed);
  spdlog::info("sync done in {}", timer.str());
  if (lost) scan();
}

// Routed mode: the kernel routes to other nodes' pods follow calc's remote routes (with VXLAN
// there are none: weir_from_wl encapsulates, see apply_tunnel). Cheap when they did not change;
// a failure is logged and retried by a full sync (has_pending()).
void SyncLoop::apply_kernel_routes(const calc::Output& out) {
  if (!dp_.kernel_routes) return;
  std::vector<dataplane::KernelRoute> want;
  if (!config_ || !config_->vxlan_enabled) want = dataplane::wanted_kernel_routes(out.routes);
  if (kernel_routes_ok_ && want == kernel_routes_) return;
  if (auto st = dataplane::sync_kernel_routes(*dp_.kernel_routes, want); !st) {
    spdlog::error("routes to other nodes: {}", st.error().str());
    kernel_routes_ok_ = false;
    force_full_ = true;
    return;
  }
  std::string list;
  for (size_t i = 0; i < want.size() && i < 5; ++i) list += (i ? ", " : "") + want[i].str();
  if (want.size() > 5) list += fmt::format(" and {} more", want.size() - 5);
  spdlog::info("routes to other nodes: {}", want.empty() ? "none" : list);
  kernel_routes_ = std::move(want);
  kernel_routes_ok_ = true;
}

// VXLAN: the tunnel maps and weir_from_ul on the underlay interface follow the DataplaneConfig
// and the Nodes. Cheap when nothing changed; a failure is logged and retried by a full sync.
void SyncLoop::apply_tunnel(const model::Snapshot& snap) {
  if (!dp_.tunnel) return;
  calc::TunnelPlan plan;  // off, unless the plan can be made
  auto p = calc::tunnel_plan(config_ ? *config_ : model::DataplaneConfig{}, snap.nodes, node_);
  if (!p) {
    if (!std::exchange(warned_tunnel_, true))
      spdlog::error("{}: pods on other nodes are not reachable from this node", p.error().str());
  } else {
    warned_tunnel_ = false;
    plan = *p;
  }
  const bool changed = !tunnel_.ok || !(tunnel_.plan == plan);
  if (auto st = dataplane::sync_tunnel(*dp_.tunnel, plan, tunnel_); !st) {
    spdlog::error("{}", st.error().str());
    force_full_ = true;
    return;
  }
  if (changed)
    spdlog::info("tunnel: {}{}", plan.str(),
                 tunnel_.attached ? fmt::format(", decapsulating on {}", tunnel_.attached->name) : "");
}

// Policy programs and IP sets for the interfaces that carry weir's programs. Cheap when
// nothing changed (the manager compares each endpoint's policy with what it installed).
// An endpoint whose policy failed runs deny-all (fail closed) and is retried with a backoff;
// the error returned names the interfaces that could not even be denied (not to be attached).
Status SyncLoop::apply_policy(const calc::Output& out) {
  std::vector<dataplane::PolicyEndpoint> eps;
  for (const auto& itf : out.interfaces) {
    int idx = dp_.endpoints.ifindex_of(itf.name);
    if (idx > 0) eps.push_back({itf.workload, itf.name, static_cast<uint32_t>(idx)});
  }
  const auto t0 = Clock::now();
  if (auto st = dp_.policies.apply(resolver_, eps); !st) {
    spdlog::error("policy: {}", st.error().str());
  }
  metrics_.policy_seconds.observe(std::chrono::duration<double>(Clock::now() - t0).count());
  schedule_policy_retry();
  if (dp_.policies.unprotected().empty()) return {};
  std::string msg;
  for (const auto& [iface, why] : dp_.policies.unprotected()) {
    msg += fmt::format("{}{}: {}", msg.empty() ? "" : "; ", iface, why);
  }
  return Error{EIO, "policy not in force: " + msg};
}

void SyncLoop::schedule_policy_retry() {
  if (dp_.policies.failing() == 0) {
    policy_retry_delay_ = milliseconds(0);
    return;
  }
  policy_retry_delay_ = std::clamp(policy_retry_delay_ * 2, milliseconds(1000), milliseconds(60000));
  policy_retry_at_ = Clock::now() + policy_retry_delay_;
}

std::optional<Clock::time_point> SyncLoop::policy_retry_at() const {
  if (dp_.policies.failing() == 0 || !good_) return std::nullopt;
  return policy_retry_at_;
}

void SyncLoop::retry_policy() {
  spdlog::info("policy: retrying {} policies that failed to install", dp_.policies.failing());
  (void)apply_policy(*good_);
}

void SyncLoop::scan() {
  if (!config_) return;
  const auto t0 = Clock::now();
  auto st = dp_.scanner.scan(config_->conntrack_timeouts, good_ ? &backends_ : nullptr, dp_.now_ns());
  metrics_.scan_seconds.observe(std::chrono::duration<double>(Clock::now() - t0).count());
  if (!st) {
    spdlog::error("{}", st.error().str());
    return;
  }
  if (st->expired || st->stale_backend) {
    spdlog::info("conntrack: {} entries scanned, {} expired, {} to removed backends", st->scanned,
                 st->expired, st->stale_backend);
  }
  metrics_.scan_expired += st->expired;
  metrics_.scan_stale_backend += st->stale_backend;
  metrics_.ct_entries = st->kept;
  report_occupancy(st->kept);
}

// The conntrack occupancy warning: once when the table reaches the configured threshold, an
// INFO once it has fallen below the clear level (calc/ct_occupancy.h).
void SyncLoop::report_occupancy(uint64_t entries) {
  ct_alarm_.set_threshold(config_->conntrack_warn_threshold_percent);
  const uint64_t cap = dp_.ct.max_entries();
  spdlog::debug("conntrack: {} of {} entries after the scan", entries, cap);
  switch (ct_alarm_.update(entries, cap)) {
    case calc::CtOccupancyAlarm::Event::Raised:
      spdlog::warn("{}", calc::ct_occupancy_warning(dp_.ct.name(), entries, cap, ct_alarm_.threshold_percent()));
      break;
    case calc::CtOccupancyAlarm::Event::Cleared:
      spdlog::info("{}", calc::ct_occupancy_recovered(dp_.ct.name(), entries, cap, ct_alarm_.clear_percent()));
      break;
    case calc::CtOccupancyAlarm::Event::None:
      break;
  }
}

milliseconds SyncLoop::min_sync_period() const {
  return duration_cast<milliseconds>(config_ ? config_->min_sync_period : std::chrono::seconds(1));
}

milliseconds SyncLoop::scan_period() const {
  return duration_cast<milliseconds>(config_ ? config_->conntrack_scan_period : std::chrono::seconds(10));
}

bool SyncLoop::has_pending() const { return dp_.endpoints.has_pending() || force_full_; }

}  // namespace weir::agent
