#include "agent/agent.h"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <chrono>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "bpf/bpffs.h"
#include "bpf/skeleton.h"
#include "calc/calc.h"
#include "calc/conntrack.h"
#include "calc/ct_occupancy.h"
#include "calc/diff.h"
#include "calc/policy.h"
#include "dataplane/ct_scanner.h"
#include "dataplane/endpoint_manager.h"
#include "dataplane/policy_manager.h"
#include "dataplane/policy_slots.h"
#include "dataplane/programs.h"
#include "dataplane/service_syncer.h"
#include "datastore/datastore.h"
#include "maps/pin_layout.h"
#include "util/fd.h"

namespace weir::agent {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::duration_cast;
using std::chrono::milliseconds;

// SIGTERM/SIGINT delivered through a signalfd, so the main loop polls one more fd instead of
// touching state from a signal handler.
Result<Fd> termination_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  if (sigprocmask(SIG_BLOCK, &set, nullptr) != 0) return errno_error("blocking SIGTERM/SIGINT");
  int fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (fd < 0) return errno_error("signalfd");
  return Fd(fd);
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

// Everything the agent keeps between syncs.
class Agent {
 public:
  Agent(const AgentOptions& o, dataplane::TcPrograms progs, bpf::TcMode mode)
      : opts_(o),
        layout_{o.pin_root},
        progs_(std::move(progs)),
        tables_(progs_.maps(), &progs_.policy_maps()),
        ifs_(layout_, mode, progs_.from_wl_fd(), progs_.to_wl_fd()),
        endpoints_(tables_.core(), ifs_),
        services_(tables_.core()),
        scanner_(tables_.core()),
        policies_(
            tables_.policy(), progs_.policy_map_fds(), o.state_dir,
            [this](uint32_t ifindex, calc::pol::Direction d, uint32_t slot) {
              return dataplane::set_policy_slot(tables_.core().ifstate, ifindex, d, slot);
            },
            [this](uint32_t ifindex, calc::pol::Direction d) {
              return dataplane::get_policy_slot(tables_.core().ifstate, ifindex, d);
            }) {}

  Status adopt() {
    WEIR_TRY(endpoints_.adopt());
    WEIR_TRY(services_.adopt());
    WEIR_TRY(policies_.adopt());
    return {};
  }

  // Re-reads the datastore and applies what changed. Invalid input leaves the last good state
  // applied (nothing half-way: the snapshot is validated as a whole before anything is done).
  // A change confined to Services and EndpointSlices recomputes and applies those services
  // only; anything else recomputes everything and applies the difference.
  void sync(datastore::Datastore& ds) {
    PhaseTimer timer;
    auto loaded = ds.load_incremental();
    timer.mark("datastore");
    if (!loaded.ok()) {
      spdlog::error("datastore {}: {} invalid resources; keeping the last good state ({})",
                    ds.describe(), loaded.errors.size(),
                    good_ ? "applied" : "none yet: nothing applied");
      for (const auto& e : loaded.errors) spdlog::error("  {}", e.str());
      return;
    }
    const model::Snapshot& snap = *loaded.snapshot;
    for (const auto& m : datastore::accepted_load_messages(loaded, "datastore " + ds.describe()))
      spdlog::info("{}", m);
    for (const auto& w : loaded.warnings) spdlog::warn("{}", w.str());
    if (!loaded.changes.full && good_ && !force_full_ && !endpoints_.has_pending()) {
      sync_services(snap, loaded.changes.services, timer);
      return;
    }
    // A failed service write is retried here with the full set (ServiceSyncer rewrites only
    // what the maps lack), even when the datastore did not change.
    const bool retry = std::exchange(force_full_, false);
    apply_log_level(snap);
    auto cfg = snap.effective_config();
    if (config_ && !(config_->map_sizes == cfg.map_sizes)) {
      spdlog::warn("DataplaneConfig map sizes changed: they take effect after an agent restart "
                   "(and `weir bpf cleanup` for maps that already exist)");
    }
    config_ = cfg;

    calc::Output out = calc::compute(snap, opts_.node);
    local_ = calc::local_workload_ips(snap, opts_.node);
    for (const auto& w : out.warnings) spdlog::warn("{}", w.str());
    timer.mark("calc");
    resolver_.update(snap);
    timer.mark("policy calc");
    bool services_changed = !good_;
    if (good_) {
      auto d = calc::diff(*good_, out);
      timer.mark("diff");
      services_changed = !d.frontends.empty();
      if (d.empty() && !endpoints_.has_pending() && !retry) {
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
    // Policy is installed from inside the endpoint apply, after new interfaces have their
    // ifstate entry and before their programs are attached: no new workload runs unpoliced.
    auto st = endpoints_.apply(out.interfaces, out.routes, [&] { return apply_policy(out); });
    if (!st) spdlog::error("endpoints: {}", st.error().str());
    timer.mark("endpoints+policy");
    auto ss = services_.apply(out.frontends);
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
  void sync_services(const model::Snapshot& snap, const std::vector<std::string>& services,
                     PhaseTimer& timer) {
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
    spdlog::info("applying changes: frontends +{} ~{} -{} ({} services changed)", d.added.size(),
                 d.updated.size(), d.removed.size(), services.size());
    auto ss = services_.apply_changes(d);
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

  // Policy programs and IP sets for the interfaces that carry weir's programs. Cheap when
  // nothing changed (the manager compares each endpoint's policy with what it installed).
  // An endpoint whose policy failed runs deny-all (fail closed) and is retried with a backoff;
  // the error returned names the interfaces that could not even be denied (not to be attached).
  Status apply_policy(const calc::Output& out) {
    std::vector<dataplane::PolicyEndpoint> eps;
    for (const auto& itf : out.interfaces) {
      int idx = endpoints_.ifindex_of(itf.name);
      if (idx > 0) eps.push_back({itf.workload, itf.name, static_cast<uint32_t>(idx)});
    }
    if (auto st = policies_.apply(resolver_, eps); !st) {
      spdlog::error("policy: {}", st.error().str());
    }
    schedule_policy_retry();
    if (policies_.unprotected().empty()) return {};
    std::string msg;
    for (const auto& [iface, why] : policies_.unprotected()) {
      msg += (msg.empty() ? "" : "; ") + iface + ": " + why;
    }
    return Error{EIO, "policy not in force: " + msg};
  }

  void schedule_policy_retry() {
    if (policies_.failing() == 0) {
      policy_retry_delay_ = milliseconds(0);
      return;
    }
    policy_retry_delay_ = std::clamp(policy_retry_delay_ * 2, milliseconds(1000), milliseconds(60000));
    policy_retry_at_ = Clock::now() + policy_retry_delay_;
  }

 public:
  // Endpoints failed closed (their policy did not install): when to try again (1 s, doubling
  // up to 60 s), nullopt when none.
  std::optional<Clock::time_point> policy_retry_at() const {
    if (policies_.failing() == 0 || !good_) return std::nullopt;
    return policy_retry_at_;
  }
  void retry_policy() {
    spdlog::info("policy: retrying {} policies that failed to install", policies_.failing());
    (void)apply_policy(*good_);
  }

  void scan() {
    if (!config_) return;
    auto st = scanner_.scan(config_->conntrack_timeouts, good_ ? &backends_ : nullptr,
                            dataplane::monotonic_ns());
    if (!st) {
      spdlog::error("{}", st.error().str());
      return;
    }
    if (st->expired || st->stale_backend) {
      spdlog::info("conntrack: {} entries scanned, {} expired, {} to removed backends",
                   st->scanned, st->expired, st->stale_backend);
    }
    report_occupancy(st->kept);
  }

  // The conntrack occupancy warning: once when the table reaches the configured threshold, an
  // INFO once it has fallen below the clear level (calc/ct_occupancy.h).
  void report_occupancy(uint64_t entries) {
    ct_alarm_.set_threshold(config_->conntrack_warn_threshold_percent);
    const auto& ct = tables_.core().ct;
    const uint64_t cap = ct.max_entries();
    spdlog::debug("conntrack: {} of {} entries after the scan", entries, cap);
    switch (ct_alarm_.update(entries, cap)) {
      case calc::CtOccupancyAlarm::Event::Raised:
        spdlog::warn("{}", calc::ct_occupancy_warning(ct.name(), entries, cap, ct_alarm_.threshold_percent()));
        break;
      case calc::CtOccupancyAlarm::Event::Cleared:
        spdlog::info("{}", calc::ct_occupancy_recovered(ct.name(), entries, cap, ct_alarm_.clear_percent()));
        break;
      case calc::CtOccupancyAlarm::Event::None:
        break;
    }
  }

  milliseconds min_sync_period() const {
    return duration_cast<milliseconds>(config_ ? config_->min_sync_period : std::chrono::seconds(1));
  }
  milliseconds scan_period() const {
    return duration_cast<milliseconds>(config_ ? config_->conntrack_scan_period
                                               : std::chrono::seconds(10));
  }
  // Something to retry without a datastore change: missing interfaces, failed service writes.
  bool has_pending() const { return endpoints_.has_pending() || force_full_; }
  void set_config(model::DataplaneConfig c) { config_ = std::move(c); }

 private:
  AgentOptions opts_;
  maps::PinLayout layout_;
  dataplane::TcPrograms progs_;
  maps::KernelTables tables_;
  dataplane::TcInterfaces ifs_;
  dataplane::EndpointManager endpoints_;
  dataplane::ServiceSyncer services_;
  dataplane::ConntrackScanner scanner_;
  calc::CtOccupancyAlarm ct_alarm_;
  calc::PolicyResolver resolver_;
  dataplane::PolicyManager policies_;
  std::optional<calc::Output> good_;  // last successfully applied calc output
  std::set<model::Ipv4> local_;        // the node's workload IPs in good_'s snapshot
  bool force_full_ = false;            // a service write failed: the next sync is a full one
  calc::BackendIndex backends_;
  std::optional<model::DataplaneConfig> config_;
  Clock::time_point policy_retry_at_{};
  milliseconds policy_retry_delay_{0};
};

}  // namespace

int run_agent(const AgentOptions& opts, bpf::FeatureProbe& probe) {
  bpf::route_libbpf_logs_to_spdlog();
  auto features = probe.probe();
  if (!features) {
    spdlog::error("BPF data plane mode enabled but not supported by the kernel: {}",
                  features.error().str());
    return 1;
  }
  if (auto missing = features->missing(); !missing.empty()) {
    std::string list;
    for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
    spdlog::error("BPF data plane mode enabled but not supported by the kernel: missing {}", list);
    return 1;
  }
  bpf::TcMode mode = features->tc_mode();
  if (opts.tc_mode == "clsact") {
    mode = bpf::TcMode::Clsact;
  } else if (opts.tc_mode == "tcx" && mode != bpf::TcMode::Tcx) {
    spdlog::error("BPF data plane mode enabled but not supported by the kernel: --tc-mode tcx, "
                  "but the kernel has no tcx (BPF_TCX_INGRESS/EGRESS links, Linux 6.6+); use "
                  "--tc-mode auto or clsact");
    return 1;
  }


  auto ds = datastore::open_datastore(opts.datastore);
  if (!ds) {
    spdlog::error("--datastore: {}", ds.error().str());
    return 2;
  }
  auto sig = termination_signals();
  if (!sig) {
    spdlog::error("{}", sig.error().str());
    return 1;
  }
  // Watch before the first load, so no change in between is missed.
  auto watcher = (*ds)->watch();
  if (!watcher) {
    spdlog::error("watching {}: {}", (*ds)->describe(), watcher.error().str());
    return 1;
  }

  if (auto st = bpf::ensure_bpffs(opts.bpffs); !st) {
    spdlog::error("bpffs at {}: {}", opts.bpffs, st.error().str());
    return 1;
  }
  maps::PinLayout layout{opts.pin_root};
  for (const auto& dir : {layout.maps_dir(), layout.links_dir()}) {
    if (auto st = bpf::mkdirs(dir); !st) {
      spdlog::error("pin directory: {}", st.error().str());
      return 1;
    }
  }

  // Map sizes come from the DataplaneConfig when the input is valid now; otherwise defaults
  // (pinned maps keep their own size anyway).
  model::DataplaneConfig initial_cfg;
  if (auto snap = (*ds)->load(); snap) {
    initial_cfg = snap->effective_config();
    apply_log_level(*snap);
  }
  auto progs = dataplane::TcPrograms::load(layout, initial_cfg.map_sizes);
  if (!progs) {
    spdlog::error("loading BPF programs: {}", progs.error().str());
    return 1;
  }
  spdlog::info("BPF enabled, starting BPF endpoint manager and map manager");
  spdlog::info("node {}, datastore {}, pin root {}, TC attach mode {}{}", opts.node,
               (*ds)->describe(), opts.pin_root, bpf::to_string(mode),
               opts.tc_mode == "auto" ? "" : " (--tc-mode " + opts.tc_mode + ")");

  Agent agent(opts, std::move(*progs), mode);
  agent.set_config(initial_cfg);
  if (auto st = agent.adopt(); !st) {
    spdlog::error("adopting pinned state: {}", st.error().str());
    return 1;
  }
  (void)(*watcher)->drain();
  agent.sync(**ds);

  auto last_sync = Clock::now();
  auto last_scan = Clock::now();
  bool dirty = false;
  const milliseconds pending_retry(1000);
  for (;;) {
    auto now = Clock::now();
    // Next deadline: a pending sync (not before min sync period after the last), a retry of
    // missing interfaces, a conntrack scan, or a poll of a watcher without fd.
    auto deadline = last_scan + agent.scan_period();
    if (dirty) deadline = std::min(deadline, last_sync + agent.min_sync_period());
    if (agent.has_pending()) deadline = std::min(deadline, last_sync + pending_retry);
    if (auto at = agent.policy_retry_at()) deadline = std::min(deadline, *at);
    if ((*watcher)->fd() < 0) deadline = std::min(deadline, now + (*watcher)->poll_interval());
    int timeout = static_cast<int>(
        std::max<int64_t>(0, duration_cast<milliseconds>(deadline - now).count()));

    pollfd fds[2] = {{sig->get(), POLLIN, 0}, {(*watcher)->fd(), POLLIN, 0}};
    int n = poll(fds, (*watcher)->fd() >= 0 ? 2 : 1, timeout);
    if (n < 0 && errno != EINTR) {
      spdlog::error("poll: {}", std::strerror(errno));
      return 1;
    }
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo si{};
      if (read(sig->get(), &si, sizeof(si)) == sizeof(si)) {
        spdlog::info("received signal {}: exiting; programs and maps stay in place",
                     si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
        return 0;
      }
    }
    if ((*watcher)->fd() < 0 || (fds[1].revents & POLLIN)) {
      auto changed = (*watcher)->drain();
      if (!changed) {
        spdlog::error("datastore watch: {}", changed.error().str());
        return 1;
      }
      dirty = dirty || *changed;
    }
    now = Clock::now();
    bool retry = agent.has_pending() && now >= last_sync + pending_retry;
    if ((dirty && now >= last_sync + agent.min_sync_period()) || retry) {
      dirty = false;
      agent.sync(**ds);
      last_sync = Clock::now();
    }
    if (auto at = agent.policy_retry_at(); at && Clock::now() >= *at) agent.retry_policy();
    if (now >= last_scan + agent.scan_period()) {
      agent.scan();
      last_scan = Clock::now();
    }
  }
}

}  // namespace weir::agent
