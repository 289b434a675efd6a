// `weir bpf trace` (docs/bpf-trace.md): a packet made here, run through weir's real programs
// (the trace build, over the agent's pinned maps) with BPF_PROG_TEST_RUN, without side effects;
// prints the path the programs' log lines describe and the final verdict.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <fmt/format.h>
#include <linux/pkt_cls.h>
#include <sys/random.h>

#include <CLI/CLI.hpp>
#include <array>
#include <charconv>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "bpf/netlink.h"
#include "bpf/tracefs.h"
#include "calc/tracelog.h"
#include "cli/commands.h"
#include "dataplane/programs.h"
#include "maps/decode.h"
#include "maps/pin_layout.h"
#include "maps/weir_maps.h"
#include "util/inet_csum.h"

namespace weir::cli {
namespace {

struct Endpoint {
  uint32_t addr = 0;  // network order
  uint16_t port = 0;  // host order; 0 when not given
};

// "10.65.0.2" or "10.65.0.2:80".
Result<Endpoint> parse_endpoint(const std::string& what, const std::string& s, bool port_required) {
  Endpoint e;
  const size_t colon = s.find(':');
  const std::string ip = s.substr(0, colon);
  in_addr a{};
  if (::inet_pton(AF_INET, ip.c_str(), &a) != 1)
    return Error{EINVAL, fmt::format("{} {}: not an IPv4 address (IP or IP:PORT)", what, s)};
  e.addr = a.s_addr;
  if (colon == std::string::npos) {
    if (port_required) return Error{EINVAL, fmt::format("{} {}: a port is needed (IP:PORT)", what, s)};
    return e;
  }
  const std::string p = s.substr(colon + 1);
  unsigned v = 0;
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
  if (ec != std::errc() || end != p.data() + p.size() || v == 0 || v > 65535)
    return Error{EINVAL, fmt::format("{} {}: port {} is not 1..65535", what, s, p)};
  e.port = static_cast<uint16_t>(v);
  return e;
}

void put16(std::vector<uint8_t>& b, size_t off, uint16_t v) { put_be16(&b[off], v); }

// Ethernet + IPv4 (DF, TTL 64) + TCP (flags; window 64240) | UDP | ICMP echo request, with every
// checksum filled.
std::vector<uint8_t> build_packet(const std::array<uint8_t, 6>& src_mac, const std::array<uint8_t, 6>& dst_mac,
                                  const Endpoint& src, const Endpoint& dst, uint8_t proto, uint8_t tcp_flags) {
  const size_t l4 = proto == IPPROTO_TCP ? 20 : 8;
  std::vector<uint8_t> b(14 + 20 + l4, 0);
  std::copy(dst_mac.begin(), dst_mac.end(), b.begin());
  std::copy(src_mac.begin(), src_mac.end(), b.begin() + 6);
  put16(b, 12, 0x0800);
  const size_t ip = 14, t = 34;
  b[ip] = 0x45;
  put16(b, ip + 2, static_cast<uint16_t>(20 + l4));
  put16(b, ip + 4, 0x7472);  // id
  put16(b, ip + 6, 0x4000);  // DF
  b[ip + 8] = 64;
  b[ip + 9] = proto;
  std::memcpy(&b[ip + 12], &src.addr, 4);
  std::memcpy(&b[ip + 16], &dst.addr, 4);
  put16(b, ip + 10, csum_fold(csum_add(0, &b[ip], 20)));
  if (proto == IPPROTO_ICMP) {
    b[t] = 8;  // echo request
    put16(b, t + 4, 0x7774);
    put16(b, t + 6, 1);
    put16(b, t + 2, csum_fold(csum_add(0, &b[t], l4)));
    return b;
  }
  put16(b, t, src.port);
  put16(b, t + 2, dst.port);
  if (proto == IPPROTO_TCP) {
    put16(b, t + 4, 0x0001);  // seq 1
    b[t + 12] = 5 << 4;
    b[t + 13] = tcp_flags;
    put16(b, t + 14, 64240);
  } else {
    put16(b, t + 4, static_cast<uint16_t>(l4));
  }
  // Pseudo-header: addresses, protocol, length.
  const uint32_t pseudo = csum_add(0, &b[ip + 12], 8) + proto + static_cast<uint32_t>(l4);
  const uint16_t c = csum_fold(csum_add(pseudo, &b[t], l4));
  put16(b, proto == IPPROTO_TCP ? t + 16 : t + 6, c == 0 && proto == IPPROTO_UDP ? 0xffff : c);
  return b;
}

struct TraceOptions {
  std::string iface, src, dst, proto = "tcp";
  bool ingress = false, egress = false, syn = false, json = false;
};

const char* verdict_name(int v) {
  switch (v) {
    case TC_ACT_OK: return "ALLOW";
    case TC_ACT_SHOT: return "DENY";
    case TC_ACT_REDIRECT: return "REDIRECT";
    case TC_ACT_UNSPEC: return "UNSPEC";
    default: return "OTHER";
  }
}

int run_trace(const GlobalOptions& g, const TraceOptions& o) {
  auto fail = [](const Error& e) {
    std::cerr << "weir bpf trace: " << e.str() << "\n";
    return 1;
  };
  if (o.ingress == o.egress) return fail(Error{EINVAL, "give exactly one of --ingress (the pod's packets, weir_from_wl) and --egress (packets to the pod, weir_to_wl)"});
  uint8_t proto = 0;
  if (o.proto == "tcp") proto = IPPROTO_TCP;
  else if (o.proto == "udp") proto = IPPROTO_UDP;
  else if (o.proto == "icmp") proto = IPPROTO_ICMP;
  else return fail(Error{EINVAL, fmt::format("--proto {}: must be tcp, udp or icmp", o.proto)});
  if (o.syn && proto != IPPROTO_TCP) return fail(Error{EINVAL, "--syn is for --proto tcp"});
  auto src = parse_endpoint("--src", o.src, false);
  if (!src) return fail(src.error());
  auto dst = parse_endpoint("--dst", o.dst, proto != IPPROTO_ICMP);
  if (!dst) return fail(dst.error());
  if (proto != IPPROTO_ICMP && src->port == 0) src->port = 40000;
  auto link = bpf::link_by_name(o.iface);
  if (!link) return fail(link.error().wrap("--iface " + o.iface));
  const maps::PinLayout layout{g.pin_root};
  auto wm = maps::WeirMaps::open_pinned(layout);
  if (!wm) return fail(wm.error());
  auto ifs = wm->ifstate.lookup(static_cast<uint32_t>(link->ifindex));
  if (!ifs) return fail(ifs.error());
  if (!ifs->has_value())
    return fail(Error{ENOENT, fmt::format("--iface {}: not an interface weir manages (no entry in {})", o.iface, WEIR_MAP_IFSTATE)});
  // The pod's MAC from its route (the workload end), the host side's from ifstate.
  const uint32_t pod = o.ingress ? src->addr : dst->addr;
  std::array<uint8_t, 6> pod_mac{}, host_mac{};
  std::copy(std::begin((*ifs)->host_mac), std::end((*ifs)->host_mac), host_mac.begin());
  if (auto rt = wm->routes.lookup(weir_route_key{32, pod}); rt && rt->has_value())
    std::copy(std::begin((*rt)->mac), std::end((*rt)->mac), pod_mac.begin());
  const uint8_t flags = proto != IPPROTO_TCP ? 0 : o.syn ? 0x02 : 0x10;
  // The pod's packet goes from its MAC to the host side's; a packet to the pod the other way.
  const auto& eth_src = o.ingress ? pod_mac : host_mac;
  const auto& eth_dst = o.ingress ? host_mac : pod_mac;
  const auto pkt = build_packet(eth_src, eth_dst, *src, *dst, proto, flags);

  auto progs = dataplane::TcPrograms::load_trace(layout);
  if (!progs) return fail(progs.error().wrap("loading the trace build"));
  uint32_t nonce = 0;
  while (nonce == 0)
    if (::getrandom(&nonce, sizeof(nonce), 0) != sizeof(nonce)) return fail(errno_error("getrandom"));
  std::vector<uint8_t> out(pkt.size() + 256);
  __sk_buff ctx{};
  ctx.ifindex = static_cast<uint32_t>(link->ifindex);
  ctx.mark = nonce;
  bpf_test_run_opts t{};
  t.sz = sizeof(t);
  t.data_in = pkt.data();
  t.data_size_in = static_cast<uint32_t>(pkt.size());
  t.data_out = out.data();
  t.data_size_out = static_cast<uint32_t>(out.size());
  t.ctx_in = &ctx;
  t.ctx_size_in = sizeof(ctx);
  t.ctx_out = &ctx;
  t.ctx_size_out = sizeof(ctx);
  t.repeat = 1;
  const int fd = o.ingress ? progs->from_wl_fd() : progs->to_wl_fd();
  if (bpf_prog_test_run_opts(fd, &t) != 0) return fail(errno_error("BPF_PROG_TEST_RUN of the trace build"));
  const int verdict = static_cast<int>(t.retval);

  auto text = bpf::read_trace();
  if (!text) return fail(text.error().wrap("reading the trace buffer"));
  const std::string tag = "wtr" + std::to_string(nonce);
  std::vector<calc::TraceLine> lines;
  std::istringstream in(*text);
  for (std::string line; std::getline(in, line);)
    if (auto l = calc::parse_trace_line(line); l && l->iface == tag) lines.push_back(*l);

  auto dotted = [](uint32_t a) {
    char buf[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &a, buf, sizeof(buf));
    return std::string(buf);
  };
  const std::string what =
      proto == IPPROTO_ICMP
          ? fmt::format("icmp echo {} -> {}", dotted(src->addr), dotted(dst->addr))
          : fmt::format("{} {}:{} -> {}:{}{}", o.proto, dotted(src->addr), src->port, dotted(dst->addr), dst->port,
                        proto == IPPROTO_TCP ? (o.syn ? " SYN" : " ACK") : "");
  const char* hook = o.ingress ? "ingress (weir_from_wl)" : "egress (weir_to_wl)";
  if (o.json) {
    nlohmann::json j{{"iface", o.iface}, {"ifindex", link->ifindex}, {"hook", o.ingress ? "ingress" : "egress"},
                     {"packet", what}, {"retval", verdict}, {"verdict", verdict_name(verdict)}};
    nlohmann::json ls = nlohmann::json::array();
    for (const auto& l : lines) ls.push_back(l.message);
    j["path"] = ls;
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << fmt::format("trace of {} at {} {}\n", what, o.iface, hook);
    for (const auto& l : lines) std::cout << "  " << l.message << "\n";
    std::cout << fmt::format("verdict: {} ({})\n", verdict_name(verdict), verdict);
    std::cout << "(the trace build writes nothing: no conntrack entry, counter or rule count was changed)\n";
  }
  if (lines.empty()) {
    std::cerr << "weir bpf trace: no line of this trace (" << tag
              << ") in the kernel trace buffer: another tracer may have cleared it\n";
    return 1;
  }
  return 0;
}

}  // namespace

void add_trace_command(CLI::App* bpf, GlobalOptions& g, int& rc) {
  auto o = std::make_shared<TraceOptions>();
  CLI::App* cmd = bpf->add_subcommand("trace", "Runs a packet through weir's programs, without side effects, and prints its path");
  cmd->add_option("--iface", o->iface, "a pod's host-side interface weir manages")->required();
  cmd->add_flag("--ingress", o->ingress, "the pod's packet (weir_from_wl)");
  cmd->add_flag("--egress", o->egress, "a packet to the pod (weir_to_wl)");
  cmd->add_option("--src", o->src, "source IP[:PORT] (port default 40000)")->required();
  cmd->add_option("--dst", o->dst, "destination IP:PORT (IP for icmp)")->required();
  cmd->add_option("--proto", o->proto, "tcp, udp or icmp")->capture_default_str();
  cmd->add_flag("--syn", o->syn, "a TCP SYN (else an ACK: a packet of an established connection)");
  cmd->add_flag("--json", o->json, "JSON output");
  cmd->callback([&g, &rc, o] { rc = run_trace(g, *o); });
}

}  // namespace weir::cli
