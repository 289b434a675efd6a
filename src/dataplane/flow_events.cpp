#include "dataplane/flow_events.h"

#include <arpa/inet.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstring>
#include <utility>

#include "bpf/map.h"
#include "calc/conntrack.h"
#include "dataplane/ct_scanner.h"
#include "maps/decode.h"

namespace weir::dataplane {

weir_flow_cfg flow_cfg_of(const FlowEventSettings& s) {
  weir_flow_cfg c{};
  if (s.rate_per_cpu == 0) return c;
  c.flags = WEIR_FLOW_CFG_START | WEIR_FLOW_CFG_DROP | WEIR_FLOW_CFG_END;
  c.interval_ns = std::max<uint64_t>(1, 1000000000ull / s.rate_per_cpu);
  // GCRA: an event conforms while the bucket's arrival time is at most burst_ns ahead, so
  // burst events pass at once after a quiet period: (burst - 1) intervals.
  c.burst_ns = c.interval_ns * (std::max<uint32_t>(s.burst, 1) - 1);
  return c;
}

struct FlowEventReader::State {
  Fd ring_fd;
  bpf::Map<uint32_t, weir_flow_cfg> cfg;
  bpf::PerCpuMap<uint32_t, weir_flow_stats> st;
  ring_buffer* rb = nullptr;
  const Sink* sink = nullptr;  // set for the duration of drain()
  const EndSink* ends = nullptr;
  size_t seen = 0;

  State() = default;
  State(const State&) = delete;
  State& operator=(const State&) = delete;
  ~State() {
    if (rb) ring_buffer__free(rb);
  }

  static int on_sample(void* ctx, void* data, size_t size) {
    auto* self = static_cast<State*>(ctx);
    if (size < sizeof(weir_flow_event) || !self->sink) return 0;  // not ours to judge: skipped
    weir_flow_event ev{};
    std::memcpy(&ev, data, sizeof(ev));
    self->seen++;
    if (ev.type != WEIR_FLOW_EV_END) {
      (*self->sink)(ev);
      return 0;
    }
    if (size < sizeof(weir_flow_end) || !self->ends || !*self->ends) return 0;
    weir_flow_end end{};
    std::memcpy(&end, data, sizeof(end));
    CtRemoved r{end.key, end.val, std::nullopt, false};
    if (end.ev.flags & WEIR_FLOW_F_TWIN) r.twin = end.twin;
    (*self->ends)(r);
    return 0;
  }
};

FlowEventReader::FlowEventReader(std::unique_ptr<State> s) : s_(std::move(s)) {}
FlowEventReader::FlowEventReader(FlowEventReader&&) noexcept = default;
FlowEventReader& FlowEventReader::operator=(FlowEventReader&&) noexcept = default;
FlowEventReader::~FlowEventReader() = default;

Result<FlowEventReader> FlowEventReader::open(const maps::MapFds& fds) {
  auto s = std::make_unique<State>();
  auto fdcopy = [&](maps::MapId id) { return bpf::MapFd::dup_of(fds.fd[static_cast<size_t>(id)]); };
  auto ring = fdcopy(maps::MapId::FLOWS);
  if (!ring) return ring.error().wrap("flow events ring buffer");
  auto cfg = fdcopy(maps::MapId::FLOW_CFG);
  if (!cfg) return cfg.error();
  auto cfg_map = bpf::Map<uint32_t, weir_flow_cfg>::create(std::move(*cfg));
  if (!cfg_map) return cfg_map.error();
  auto st = fdcopy(maps::MapId::FLOW_ST);
  if (!st) return st.error();
  auto st_map = bpf::PerCpuMap<uint32_t, weir_flow_stats>::create(std::move(*st));
  if (!st_map) return st_map.error();
  s->cfg = std::move(*cfg_map);
  s->st = std::move(*st_map);
  s->ring_fd = Fd(::dup(ring->fd()));
  if (!s->ring_fd) return errno_error("duplicating the flow events ring buffer's fd");
  s->rb = ring_buffer__new(s->ring_fd.get(), &State::on_sample, s.get(), nullptr);
  if (!s->rb) return errno_error(fmt::format("reading ring buffer {}", WEIR_MAP_FLOWS));
  return FlowEventReader(std::move(s));
}

int FlowEventReader::fd() const { return ring_buffer__epoll_fd(s_->rb); }

Result<size_t> FlowEventReader::drain(const Sink& sink, const EndSink& ends) {
  s_->sink = &sink;
  s_->ends = &ends;
  s_->seen = 0;
  const int rc = ring_buffer__consume(s_->rb);
  s_->sink = nullptr;
  s_->ends = nullptr;
  if (rc < 0) return sys_error(rc, fmt::format("consuming ring buffer {}", WEIR_MAP_FLOWS));
  return s_->seen;
}

Status FlowEventReader::configure(const FlowEventSettings& s) {
  auto st = s_->cfg.update(0, flow_cfg_of(s));
  if (!st) return st.error().wrap("writing the flow event settings");
  return {};
}

Result<weir_flow_stats> FlowEventReader::stats() const {
  auto v = s_->st.lookup(0);
  if (!v) return v.error();
  weir_flow_stats sum{};
  if (!*v) return sum;
  for (const weir_flow_stats& c : **v) {
    sum.sent += c.sent;
    sum.rate_limited += c.rate_limited;
    sum.lost += c.lost;
  }
  return sum;
}

int64_t unix_minus_monotonic_ns() {
  const auto real = std::chrono::system_clock::now().time_since_epoch();
  return std::chrono::duration_cast<std::chrono::nanoseconds>(real).count() -
         static_cast<int64_t>(monotonic_ns());  // dataplane/ct_scanner.h: the programs' clock
}

namespace {

bool has_ports(uint8_t proto) { return proto == IPPROTO_TCP || proto == IPPROTO_UDP; }

model::FlowPeer peer(uint32_t addr_be, uint16_t port_be, uint8_t proto) {
  model::FlowPeer p;
  p.ip = model::Ipv4::from_network_order(addr_be);
  p.port = has_ports(proto) ? ntohs(port_be) : 0;
  return p;
}

}  // namespace

model::Flow flow_from_event(const weir_flow_event& ev, int64_t unix_minus_monotonic_ns) {
  model::Flow f;
  f.time_unix_ns = static_cast<int64_t>(ev.ts_ns) + unix_minus_monotonic_ns;
  const bool drop = ev.type == WEIR_FLOW_EV_DROP;
  f.event = drop ? model::FlowEvent::Drop : model::FlowEvent::Start;
  f.verdict = drop ? model::FlowVerdict::Dropped : model::FlowVerdict::Forwarded;
  f.proto = ev.proto;
  f.tcp_flags = ev.proto == IPPROTO_TCP ? ev.tcp_flags : 0;
  if (ev.proto == IPPROTO_ICMP) {
    f.icmp_type = ev.icmp_type;
    f.icmp_code = ev.icmp_code;
  }
  f.source = peer(ev.saddr, ev.sport, ev.proto);
  f.destination = peer(ev.daddr, ev.dport, ev.proto);
  if (ev.nat_addr != 0) f.translated = peer(ev.nat_addr, ev.nat_port, ev.proto);
  f.ifindex = ev.ifindex;
  // On a pod's host veth the hooks are the pod's reverse (its egress arrives at ingress); on the
  // underlay (weir_from_ul) ingress is traffic coming into the node.
  if (ev.flags & WEIR_FLOW_F_UNDERLAY)
    f.direction = ev.hook == WEIR_HOOK_INGRESS ? model::TrafficDirection::Ingress : model::TrafficDirection::Unknown;
  else
    f.direction = ev.hook == WEIR_HOOK_INGRESS  ? model::TrafficDirection::Egress
                  : ev.hook == WEIR_HOOK_EGRESS ? model::TrafficDirection::Ingress
                                                : model::TrafficDirection::Unknown;
  if (drop) {
    if (auto m = maps::counter_meta(ev.reason)) {
      f.drop_reason = std::string(m->json_name);
      f.drop_reason_text = std::string(m->type);
    } else {
      f.drop_reason = fmt::format("counter_{}", ev.reason);
    }
  }
  return f;
}

model::Flow flow_end_of(const CtRemoved& r, int64_t unix_minus_monotonic_ns) {
  model::Flow f;
  f.event = model::FlowEvent::End;
  f.verdict = model::FlowVerdict::Forwarded;
  f.proto = r.key.proto;
  const bool a_client = r.val.flags & WEIR_CT_F_A_IS_CLIENT;
  // Each entry's client-side and server-side counts; the twin's sides follow its own flag.
  auto add = [&](const weir_ct_val& v) {
    const bool ac = v.flags & WEIR_CT_F_A_IS_CLIENT;
    f.packets_sent += ac ? v.packets_a : v.packets_b;
    f.bytes_sent += ac ? v.bytes_a : v.bytes_b;
    f.packets_received += ac ? v.packets_b : v.packets_a;
    f.bytes_received += ac ? v.bytes_b : v.bytes_a;
  };
  add(r.val);
  uint64_t created = r.val.created_ns, last = r.val.last_seen_ns;
  uint32_t flags_a = r.val.a.flags, flags_b = r.val.b.flags;
  if (r.twin) {
    add(*r.twin);
    created = std::min<uint64_t>(created, r.twin->created_ns);
    last = std::max<uint64_t>(last, r.twin->last_seen_ns);
  }
  if (auto nat = calc::ct_nat_flow(r.key, r.val)) {
    f.source.ip = nat->client;
    f.source.port = has_ports(f.proto) ? nat->client_port : 0;
    f.destination.ip = nat->frontend.vip;
    f.destination.port = has_ports(f.proto) ? nat->frontend.port : 0;
    model::FlowPeer be;
    be.ip = nat->backend.ip;
    be.port = has_ports(f.proto) ? nat->backend.port : 0;
    f.translated = be;
  } else {
    const uint32_t ca = a_client ? r.key.addr_a : r.key.addr_b, sa = a_client ? r.key.addr_b : r.key.addr_a;
    const uint16_t cp = a_client ? r.key.port_a : r.key.port_b, sp = a_client ? r.key.port_b : r.key.port_a;
    f.source = peer(ca, cp, f.proto);
    f.destination = peer(sa, sp, f.proto);
  }
  // The client's leg names the interface when the client is a local workload, else the server's.
  const weir_ct_leg& client = a_client ? r.val.a : r.val.b;
  const weir_ct_leg& server = a_client ? r.val.b : r.val.a;
  if (client.flags & WEIR_CT_LEG_WORKLOAD) {
    f.ifindex = client.ifindex;
    f.direction = model::TrafficDirection::Egress;
  } else if (server.flags & WEIR_CT_LEG_WORKLOAD) {
    f.ifindex = server.ifindex;
    f.direction = model::TrafficDirection::Ingress;
  }
  f.time_unix_ns = static_cast<int64_t>(last) + unix_minus_monotonic_ns;
  f.duration_ns = last > created ? last - created : 0;
  const calc::CtState state = calc::ct_state(f.proto, flags_a, flags_b);
  if (state == calc::CtState::TcpReset) f.close_reason = "rst";
  else if (state == calc::CtState::TcpClosed) f.close_reason = "fin";
  else if (r.stale_backend) f.close_reason = "backend removed";
  else f.close_reason = "idle timeout";
  return f;
}

}  // namespace weir::dataplane
