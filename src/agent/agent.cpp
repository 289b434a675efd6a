#include "agent/agent.h"

#include <bpf/bpf.h>
#include <fmt/ranges.h>
#include <net/if.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "agent/flow_recorder.h"
#include "agent/metrics.h"
#include "agent/observe_server.h"
#include "agent/status.h"
#include "agent/sync_loop.h"
#include "bpf/bpffs.h"
#include "bpf/caps.h"
#include "bpf/skeleton.h"
#include "bpf/tracefs.h"
#include "calc/doctor.h"
#include "dataplane/ct_scanner.h"
#include "dataplane/endpoint_manager.h"
#include "dataplane/flow_events.h"
#include "dataplane/log_filters.h"
#include "dataplane/policy_manager.h"
#include "dataplane/policy_slots.h"
#include "dataplane/programs.h"
#include "dataplane/tunnel_kernel.h"
#include "dataplane/service_syncer.h"
#include "datastore/datastore.h"
#include "maps/decode.h"
#include "maps/pin_layout.h"
#include "maps/table.h"
#include "util/fd.h"
#include "weir/log.h"
#include "weir/maps.h"

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

// The kernel side of the agent: the loaded programs and their maps, the managers over them, and
// the sync loop that drives the managers.
class Agent {
 public:
  Agent(const AgentOptions& o, dataplane::TcPrograms progs, bpf::TcMode mode)
      : progs_(std::move(progs)),
        tables_(progs_.maps(), &progs_.policy_maps()),
        ifs_(maps::PinLayout{o.pin_root}, mode, progs_.from_wl_fd(), progs_.to_wl_fd()),
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
            }),
        tunnel_(progs_.from_ul_fd(), mode, maps::PinLayout{o.pin_root},
                [this](const calc::TunnelPlan& p, int ifindex) { return write_tunnel(p, ifindex); }),
        loop_(o.node, Dataplane{endpoints_, services_, policies_, scanner_, tables_.core().ct,
                                dataplane::monotonic_ns, &kernel_routes_, &tunnel_,
                                [this](const model::DataplaneConfig& c) { return use_programs(c); }}),
        mode_(mode),
        layout_{o.pin_root},
        log_filters_(progs_, [](const std::string& name) { return ::if_nametoindex(name.c_str()); }),
        recorder_(
            o.flow_records, o.node,
            [this](const std::string& iface, calc::pol::Direction d) { return policies_.installed_policy(iface, d); },
            [](uint32_t ifindex) {
              char buf[IF_NAMESIZE] = {};
              return ::if_indextoname(ifindex, buf) ? std::string(buf) : std::string();
            }) {}
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  SyncLoop& loop() { return loop_; }

  // Flow records (docs/observe.md): the programs' events at `rate` per CPU and second, and the
  // scanner's flow ends, into the recorder; with `records` 0, the programs send no event.
  Status start_flows(size_t records, uint32_t rate) {
    auto reader = dataplane::FlowEventReader::open(progs_.map_fds());
    if (!reader) return reader.error();
    WEIR_TRY(reader->configure(dataplane::FlowEventSettings{records ? rate : 0, records ? rate : 0}));
    if (records == 0) return {};
    flow_reader_.emplace(std::move(*reader));
    scanner_.set_flow_end_sink([this](const dataplane::CtRemoved& r) { recorder_.on_flow_end(r); });
    return {};
  }
  // No more events from the programs (the agent stops: nobody would read them).
  void stop_flows() {
    if (!flow_reader_) return;
    if (auto st = flow_reader_->configure({}); !st) spdlog::warn("flow events: {}", st.error().str());
    drain_flows();
  }
  int flow_fd() const { return flow_reader_ ? flow_reader_->fd() : -1; }
  void drain_flows() {
    if (!flow_reader_) return;
    auto n = flow_reader_->drain([this](const weir_flow_event& ev) { recorder_.on_event(ev); },
                                 [this](const dataplane::CtRemoved& r) { recorder_.on_flow_end(r); });
    if (!n) spdlog::warn("flow events: {}", n.error().str());
  }
  FlowRecorder& recorder() { return recorder_; }
  // After a sync (`synced`) or a conntrack scan: the names flows get, rebuilt only when a sync
  // applied a new state (a scan, or a sync that changed nothing, leaves them as they are), and
  // the wall clock flow times are read against.
  void after_work(bool synced) {
    recorder_.sync_clock();
    const auto path = loop_.last_path();
    const bool applied = path == SyncLoop::Path::Full || path == SyncLoop::Path::Incremental;
    if (synced && (applied || !names_built_)) {
      if (const auto& out = loop_.last_good()) {
        recorder_.update_names(*out);
        names_built_ = true;
      }
    }
  }

  // What `weir doctor` reads (agent/status.h).
  StatusFile status() const {
    StatusFile st;
    st.pid = static_cast<int>(::getpid());
    st.written_unix = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    st.heartbeat_period_s = std::chrono::duration<double>(loop_.scan_period()).count();
    st.last_sync_result = std::string(to_string(loop_.last_path()));
    st.last_success_unix = loop_.metrics().last_success_unix;
    st.tc_mode = std::string(bpf::to_string(mode_));
    if (const auto& c = loop_.config()) {
      st.vxlan_enabled = c->vxlan_enabled;
      st.conntrack_warn_percent = c->conntrack_warn_threshold_percent;
      st.map_sizes = c->map_sizes;
    }
    st.underlay = loop_.underlay();
    const dataplane::TcPrograms& cur = current();
    for (auto [name, fd] : {std::pair{"weir_from_wl", cur.from_wl_fd()}, std::pair{"weir_to_wl", cur.to_wl_fd()},
                            std::pair{"weir_from_ul", cur.from_ul_fd()}}) {
      if (uint32_t id = bpf::prog_id(fd)) st.prog_ids[name] = id;
    }
    return st;
  }

  // The maps' figures for a metrics scrape (agent/metrics.h); a map that cannot be read leaves
  // its figure at 0 and says so at DEBUG.
  MapFigures map_figures() {
    MapFigures f;
    auto& m = progs_.maps();
    auto debug = [](const char* what, const Error& e) { spdlog::debug("metrics: {}: {}", what, e.str()); };
    std::map<uint32_t, std::string> names;
    if (auto ifs = m.ifstate.dump()) {
      for (const auto& [idx, v] : *ifs) names[idx] = maps::ifstate_name(v);
    } else {
      debug("ifstate", ifs.error());
    }
    if (auto cs = m.counters.dump()) {
      std::map<uint32_t, MapFigures::Iface> by_if;
      for (const auto& [k, per_cpu] : *cs) {
        if (k.hook >= WEIR_HOOK__MAX) continue;
        auto& itf = by_if[k.ifindex];
        auto it = names.find(k.ifindex);
        itf.name = it != names.end() ? it->second : fmt::format("ifindex{}", k.ifindex);
        itf.hooks[k.hook] = bpf::sum_percpu_u64(per_cpu);
      }
      for (auto& [idx, itf] : by_if) f.counters.push_back(std::move(itf));
    } else {
      debug("counters", cs.error());
    }
    auto count = [&](const char* what, auto& map, uint64_t& out) {
      if (auto n = map.count()) {
        out += *n;
      } else {
        debug(what, n.error());
      }
    };
    // The scanner's count (it walks the table every scan period anyway): a scrape does not walk
    // up to millions of entries in the agent's one thread.
    f.ct_entries = loop_.metrics().ct_entries;
    f.ct_capacity = m.ct.info().max_entries;
    count("NAT frontends", m.nat_fe, f.nat_frontends);
    count("NAT backends", m.nat_be, f.nat_backends);
    count("IP sets", progs_.policy_maps().ipsets, f.ipset_members);
    count("IP sets (exact)", progs_.policy_maps().ipset_exact, f.ipset_members);
    if (flow_reader_) {
      if (auto st = flow_reader_->stats()) {
        f.flow_events_sent = st->sent;
        f.flow_events_rate_limited = st->rate_limited;
        f.flow_events_lost = st->lost;
      } else {
        debug("flow events", st.error());
      }
    }
    f.flow_records = recorder_.store().size();
    f.flow_records_capacity = recorder_.store().capacity();
    return f;
  }

 private:
  // The build of the programs attached: the first load (whose maps back every manager, kept
  // for the agent's life) or the other build, loaded when bpfLogLevel asked for it.
  const dataplane::TcPrograms& current() const { return other_ ? *other_ : progs_; }

  // Dataplane::programs: the build bpfLogLevel and bpfProfiling ask for (docs/bpf-log.md,
  // docs/profiling.md), its log settings (weir_logif1 and the pcap filters of bpfLogFilters, written
  // first: a filter that does not compile changes nothing), and when the build changed, its
  // programs in the continuation slots and for every attach that follows.
  Result<bool> use_programs(const model::DataplaneConfig& c) {
    using Variant = dataplane::TcPrograms::Variant;
    const Variant want = dataplane::variant_of(c.bpf_log_level != model::BpfLogLevel::Off, c.bpf_profiling);
    const dataplane::LogSettings settings{c.bpf_log_level == model::BpfLogLevel::Debug  ? uint32_t(WEIR_LOG_DEBUG)
                                          : c.bpf_log_level == model::BpfLogLevel::Info ? uint32_t(WEIR_LOG_INFO)
                                                                                        : uint32_t(WEIR_LOG_OFF),
                                          c.bpf_log_filters};
    WEIR_TRY(log_filters_.apply(settings));
    if (c.bpf_log_level != logged_level_) {
      logged_level_ = c.bpf_log_level;
      // The kernel's default trace buffer (until a tracer uses it: 7 KiB per CPU) would keep
      // only the last few dozen lines for `weir bpf tracelog`.
      if (c.bpf_log_level != model::BpfLogLevel::Off) {
        constexpr unsigned kTraceBufferKb = 1408;  // the kernel's own size once expanded
        auto before = bpf::ensure_trace_buffer(kTraceBufferKb);
        if (!before)
          spdlog::warn("BPF log: {}: the trace buffer keeps only its last lines", before.error().str());
        else if (*before < kTraceBufferKb)
          spdlog::info("BPF log: the kernel trace buffer grew from {} to {} KiB per CPU", *before, kTraceBufferKb);
      }
    }
    if (want == current().variant()) {
      // The log variant's programs stay in weir_logjmp1's entry slots (where its filters return)
      // until a whole sync has put a build without the log on every hook: emptied at the second
      // call with such a build in place (a previous agent's, at start, included).
      if (!dataplane::logs(want) && calls_without_log_ < 2 && ++calls_without_log_ == 2) {
        if (auto st = progs_.clear_log_entries(); !st) spdlog::warn("BPF log: {}", st.error().str());
      }
      return false;
    }
    calls_without_log_ = 0;
    std::optional<dataplane::TcPrograms> loaded;
    if (want != progs_.variant()) {
      auto l = dataplane::TcPrograms::load(layout_, c.map_sizes, want);
      if (!l) return l.error().wrap(fmt::format("loading the {} build", dataplane::to_string(want)));
      loaded.emplace(std::move(*l));
    }
    dataplane::TcPrograms& next = loaded ? *loaded : progs_;
    WEIR_TRY(next.install_continuations());
    ifs_.set_programs(next.from_wl_fd(), next.to_wl_fd());
    tunnel_.set_program(next.from_ul_fd());
    // The build attached until now goes once every hook has the new one (this sync's apply):
    // the kernel holds what is attached; our fds are only for attaching and the status.
    other_ = std::move(loaded);
    spdlog::info("bpfLogLevel {}, bpfProfiling {}: the {} build of the TC programs goes on every interface",
                 model::to_string(c.bpf_log_level), c.bpf_profiling ? "Enabled" : "Disabled",
                 dataplane::to_string(want));
    return true;
  }

  // The tunnel maps (dataplane/tunnel.h): switching on, the peers before the configuration (a
  // node that starts encapsulating finds them accepted); off, the configuration first.
  Status write_tunnel(const calc::TunnelPlan& p, int ifindex) {
    dataplane::TunnelConfig c = dataplane::tunnel_config(p, static_cast<uint32_t>(ifindex));
    if (!p.enabled) {
      WEIR_TRY(progs_.set_tunnel(c));
      return progs_.set_vteps({});
    }
    WEIR_TRY(progs_.set_vteps(p.vteps));
    return progs_.set_tunnel(c);
  }

  dataplane::TcPrograms progs_;
  maps::KernelTables tables_;
  dataplane::TcInterfaces ifs_;
  dataplane::EndpointManager endpoints_;
  dataplane::ServiceSyncer services_;
  dataplane::ConntrackScanner scanner_;
  dataplane::PolicyManager policies_;
  dataplane::NetlinkRouteTable kernel_routes_;
  dataplane::KernelTunnel tunnel_;
  SyncLoop loop_;
  bpf::TcMode mode_;
  maps::PinLayout layout_;
  std::optional<dataplane::TcPrograms> other_;  // the build bpfLogLevel asked for, when not progs_'s
  model::BpfLogLevel logged_level_ = model::BpfLogLevel::Off;  // the trace buffer was sized for it
  dataplane::LogFilters log_filters_;  // weir_logif1 and the filters in weir_logjmp1
  int calls_without_log_ = 0;           // use_programs calls in a row with a build without the log in place
  FlowRecorder recorder_;
  bool names_built_ = false;  // the recorder has names from a last good state
  std::optional<dataplane::FlowEventReader> flow_reader_;  // when flow records are on
};

// The kernel's TC attach mode for --tc-mode, or nullopt (logged) when the kernel lacks what the
// agent needs.
std::optional<bpf::TcMode> check_kernel(const AgentOptions& opts, bpf::FeatureProbe& probe) {
  auto features = probe.probe();
  if (!features) {
    spdlog::error("BPF data plane mode enabled but not supported by the kernel: {}",
                  features.error().str());
    return std::nullopt;
  }
  if (auto missing = features->missing(); !missing.empty()) {
    std::string list;
    for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
    spdlog::error("BPF data plane mode enabled but not supported by the kernel: missing {}", list);
    return std::nullopt;
  }
  bpf::TcMode mode = features->tc_mode();
  if (opts.tc_mode == "clsact") return bpf::TcMode::Clsact;
  if (opts.tc_mode == "tcx" && mode != bpf::TcMode::Tcx) {
    spdlog::error("BPF data plane mode enabled but not supported by the kernel: --tc-mode tcx, "
                  "but the kernel has no tcx (BPF_TCX_INGRESS/EGRESS links, Linux 6.6+); use "
                  "--tc-mode auto or clsact");
    return std::nullopt;
  }
  return mode;
}

// A bpffs at opts.bpffs and the pin root's maps/ and links/ directories.
Status prepare_pin_root(const AgentOptions& opts) {
  if (auto st = bpf::ensure_bpffs(opts.bpffs); !st) return st.error().wrap("bpffs at " + opts.bpffs);
  maps::PinLayout layout{opts.pin_root};
  for (const auto& dir : {layout.maps_dir(), layout.links_dir()}) {
    if (auto st = bpf::mkdirs(dir); !st) return st.error().wrap("pin directory");
  }
  return {};
}

// The datastore's DataplaneConfig when the input is valid now (its map sizes size new maps;
// pinned maps keep their own), else the defaults.
model::DataplaneConfig initial_config(datastore::Datastore& ds) {
  auto snap = ds.load();
  if (!snap) return {};
  apply_log_level(*snap);
  return snap->effective_config();
}

// The agent's event loop: a signalfd, the datastore watcher, and the deadlines of the sync loop
// (batched syncs, retries, conntrack scans, policy retries).
class EventLoop {
 public:
  // The flow records' fds (docs/observe.md): the ring buffer's (-1: none) with what drains it, and
  // the `weir observe` server (null: none) answering from the store.
  struct Flows {
    int events_fd = -1;
    std::function<void()> drain;
    ObserveServer* server = nullptr;
    const FlowStore* store = nullptr;
  };

  EventLoop(SyncLoop& loop, datastore::Datastore& ds, datastore::Watcher& watcher, const Fd& sig,
            const MetricsServer* metrics, std::function<std::string()> render,
            std::function<void(bool synced)> after_work, Flows flows)
      : loop_(loop),
        ds_(ds),
        watcher_(watcher),
        sig_(sig),
        metrics_(metrics),
        render_(std::move(render)),
        after_work_(std::move(after_work)),
        flows_(std::move(flows)) {}

  // Returns the process exit code: 0 on SIGTERM/SIGINT, 1 when polling or watching fails.
  int run() {
    std::vector<pollfd> fds;
    for (;;) {
      // A negative fd is ignored by poll(): no watcher fd (polled datastore), no metrics, no flows.
      fds.assign({{sig_.get(), POLLIN, 0},
                  {watcher_.fd(), POLLIN, 0},
                  {metrics_ ? metrics_->fd() : -1, POLLIN, 0},
                  {flows_.events_fd, POLLIN, 0}});
      if (flows_.server) flows_.server->poll_fds(fds);
      int timeout = timeout_ms();
      // Observers that never send their request are closed within a second.
      if (flows_.server && flows_.server->clients() > 0) timeout = std::min(timeout, 1000);
      int n = poll(fds.data(), fds.size(), timeout);
      if (n < 0 && errno != EINTR) {
        spdlog::error("poll: {}", std::strerror(errno));
        return 1;
      }
      if ((fds[0].revents & POLLIN) && terminated()) return 0;
      if (metrics_ && (fds[2].revents & POLLIN)) metrics_->serve_one(render_);
      if (fds[3].revents & POLLIN) flows_.drain();
      if (flows_.server) {
        flows_.server->on_ready(fds.data() + kFixedFds, fds.size() - kFixedFds, *flows_.store);
        flows_.server->expire_idle();
      }
      if (watcher_.fd() < 0 || (fds[1].revents & POLLIN)) {
        auto changed = watcher_.drain();
        if (!changed) {
          spdlog::error("datastore watch: {}", changed.error().str());
          return 1;
        }
        dirty_ = dirty_ || *changed;
      }
      run_due();
    }
  }

 private:
  static constexpr milliseconds kPendingRetry{1000};
  static constexpr size_t kFixedFds = 4;  // signals, watcher, metrics, flow events

  // Next deadline: a pending sync (not before min sync period after the last), a retry of
  // missing interfaces, a conntrack scan, a policy retry, or a poll of a watcher without fd.
  int timeout_ms() const {
    auto now = Clock::now();
    auto deadline = last_scan_ + loop_.scan_period();
    if (dirty_) deadline = std::min(deadline, last_sync_ + loop_.min_sync_period());
    if (loop_.has_pending()) deadline = std::min(deadline, last_sync_ + kPendingRetry);
    if (auto at = loop_.policy_retry_at()) deadline = std::min(deadline, *at);
    if (watcher_.fd() < 0) deadline = std::min(deadline, now + watcher_.poll_interval());
    return static_cast<int>(std::max<int64_t>(0, duration_cast<milliseconds>(deadline - now).count()));
  }

  bool terminated() {
    signalfd_siginfo si{};
    if (read(sig_.get(), &si, sizeof(si)) != sizeof(si)) return false;
    spdlog::info("received signal {}: exiting; programs and maps stay in place",
                 si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
    return true;
  }

  void run_due() {
    auto now = Clock::now();
    bool retry = loop_.has_pending() && now >= last_sync_ + kPendingRetry;
    if ((dirty_ && now >= last_sync_ + loop_.min_sync_period()) || retry) {
      dirty_ = false;
      loop_.sync(ds_);
      last_sync_ = Clock::now();
      after_work_(true);
    }
    if (auto at = loop_.policy_retry_at(); at && Clock::now() >= *at) loop_.retry_policy();
    if (now >= last_scan_ + loop_.scan_period()) {
      loop_.scan();
      last_scan_ = Clock::now();
      after_work_(false);
    }
  }

  SyncLoop& loop_;
  datastore::Datastore& ds_;
  datastore::Watcher& watcher_;
  const Fd& sig_;
  const MetricsServer* metrics_;
  std::function<std::string()> render_;
  std::function<void(bool synced)> after_work_;  // after each sync (true) and scan: status file, flow names
  Flows flows_;
  Clock::time_point last_sync_ = Clock::now(), last_scan_ = Clock::now();
  bool dirty_ = false;
};

}  // namespace

int run_agent(const AgentOptions& opts, bpf::FeatureProbe& probe) {
  bpf::route_libbpf_logs_to_spdlog();
  spdlog::info("{}: pid {}, node {}", calc::doctor::kAgentStartMark, ::getpid(), opts.node);
  // Without one of its capabilities the kernel refuses the agent's programs or attachments: say so
  // first, and again with the refusal.
  std::string caps_missing;
  if (auto eff = caps::effective(); !eff) {
    spdlog::warn("capabilities: {}", eff.error().str());
  } else if (auto missing = caps::missing_for_agent(*eff); !missing.empty()) {
    caps_missing = fmt::format("the agent runs without {}", fmt::join(missing, ", "));
    spdlog::warn("{}: the kernel's verifier refuses weir's programs without CAP_PERFMON, and their maps and "
                 "attachments without CAP_BPF and CAP_NET_ADMIN",
                 caps_missing);
  }
  auto mode = check_kernel(opts, probe);
  if (!mode) return 1;
  auto ds = datastore::open_datastore(opts.datastore, {opts.etcd_prefix});
  if (!ds) {
    spdlog::error("--datastore: {}", ds.error().str());
    return 2;
  }
  std::optional<MetricsServer> metrics;
  if (!opts.metrics_listen.empty()) {
    auto m = MetricsServer::listen(opts.metrics_listen);
    if (!m) {
      spdlog::error("{}", m.error().str());
      return 2;
    }
    metrics.emplace(std::move(*m));
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
  if (auto st = prepare_pin_root(opts); !st) {
    spdlog::error("{}", st.error().str());
    return 1;
  }
  const model::DataplaneConfig initial_cfg = initial_config(**ds);
  // The build bpfLogLevel asks for from the start (the sync loop switches when it changes).
  auto progs = dataplane::TcPrograms::load(maps::PinLayout{opts.pin_root}, initial_cfg.map_sizes,
                                           dataplane::variant_of(initial_cfg.bpf_log_level != model::BpfLogLevel::Off,
                                                                 initial_cfg.bpf_profiling));
  if (!progs) {
    spdlog::error("loading BPF programs: {}{}", progs.error().str(), caps_missing.empty() ? "" : "; " + caps_missing);
    return 1;
  }
  spdlog::info("BPF enabled, starting BPF endpoint manager and map manager");
  spdlog::info("node {}, datastore {}, pin root {}, TC attach mode {}{}", opts.node,
               (*ds)->describe(), opts.pin_root, bpf::to_string(*mode),
               opts.tc_mode == "auto" ? "" : " (--tc-mode " + opts.tc_mode + ")");

  std::optional<ObserveServer> observe;
  if (opts.flow_records > 0) {
    auto s = ObserveServer::listen(opts.observe_socket);
    if (!s) {
      spdlog::error("--observe-socket: {}", s.error().str());
      return 2;
    }
    observe.emplace(std::move(*s));
  }
  Agent agent(opts, std::move(*progs), *mode);
  if (auto st = agent.start_flows(opts.flow_records, opts.flow_rate); !st) {
    spdlog::error("flow events: {}", st.error().str());
    return 1;
  }
  if (observe) agent.recorder().set_observers(&*observe);
  agent.loop().set_config(initial_cfg);
  if (auto st = agent.loop().adopt(); !st) {
    spdlog::error("adopting pinned state: {}", st.error().str());
    return 1;
  }
  (void)(*watcher)->drain();
  agent.loop().sync(**ds);
  if (observe)
    spdlog::info("flow records: the last {} kept, `weir observe` reads them at {}", opts.flow_records,
                 observe->path());
  if (metrics) spdlog::info("serving Prometheus metrics at http://{}/metrics", opts.metrics_listen);
  auto render = [&] {
    return render_metrics(agent.loop().metrics(), agent.map_figures(), opts.node, opts.version);
  };
  bool status_warned = false;
  auto after_work = [&](bool synced) {
    agent.after_work(synced);
    auto st = write_status(opts.state_dir, agent.status());
    if (!st && !std::exchange(status_warned, true))
      spdlog::warn("status file for `weir doctor`: {} (not repeated)", st.error().str());
  };
  after_work(true);
  EventLoop::Flows flows{agent.flow_fd(), [&] { agent.drain_flows(); }, observe ? &*observe : nullptr,
                         &agent.recorder().store()};
  const int rc = EventLoop(agent.loop(), **ds, **watcher, *sig, metrics ? &*metrics : nullptr, render, after_work,
                           std::move(flows))
                     .run();
  agent.stop_flows();
  return rc;
}

}  // namespace weir::agent
