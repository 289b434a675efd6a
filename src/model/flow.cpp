// Flow records as JSON (docs/observe.md, section "JSON"): Hubble's field names where Hubble has
// the field, weir's own under "weir". to_json writes every field of a Flow somewhere, so that
// flow_from_json(to_json(f)) == f; the fields derived for Hubble's readers (drop_reason_desc,
// *_denied_by, Summary, is_reply, Type) are not read back.
#include "model/flow.h"

#include <fmt/format.h>

#include <array>
#include <charconv>
#include <chrono>
#include <cstring>
#include <limits>
#include <string_view>
#include <utility>

#include "model/duration.h"
#include "model/validation.h"

namespace weir::model {

using nlohmann::json;

namespace {

constexpr uint8_t kTcp = 6, kUdp = 17, kIcmp = 1;

// Hubble's DropReason (flow.proto) for weir's drop counters (the snake_case names of
// src/maps/decode.cpp kCounters) where one means the same; the others are DROP_REASON_UNKNOWN.
constexpr std::pair<std::string_view, std::string_view> kHubbleDropReasons[] = {
    {"dropped_by_policy", "POLICY_DENIED"},
    {"dropped_unknown_source", "INVALID_SOURCE_IP"},
    {"dropped_ct_create", "CT_MAP_INSERTION_FAILED"},
    {"dropped_no_backend", "SERVICE_BACKEND_NOT_FOUND"},
    {"dropped_tail_call", "MISSED_TAIL_CALL"},
    {"dropped_rewrite", "ERROR_WRITING_TO_PACKET"},
    {"dropped_frag_incomplete", "FIRST_LOGICAL_DATAGRAM_FRAGMENT_NOT_FOUND"},
    {"dropped_frag_unsupported", "IP_FRAGMENTATION_NOT_SUPPORTED"},
    {"dropped_vlan", "VLAN_FILTERED"},
    {"dropped_malformed", "INVALID_PACKET_DROPPED"},
    {"dropped_short", "INVALID_PACKET_DROPPED"},
    {"dropped_bad_csum", "INVALID_PACKET_DROPPED"},
    {"dropped_unknown_route", "UNKNOWN_L3_TARGET_ADDRESS"},
};

std::string_view hubble_drop_reason(std::string_view weir_reason) {
  for (const auto& [w, h] : kHubbleDropReasons)
    if (w == weir_reason) return h;
  return "DROP_REASON_UNKNOWN";
}

// TCP flag bits in header order, with Hubble's TCPFlags field names. Hubble's summary lists
// them in its own order (kTcpSummaryOrder).
constexpr std::pair<uint8_t, std::string_view> kTcpFlags[] = {
    {0x01, "FIN"}, {0x02, "SYN"}, {0x04, "RST"}, {0x08, "PSH"},
    {0x10, "ACK"}, {0x20, "URG"}, {0x40, "ECE"}, {0x80, "CWR"},
};
constexpr std::pair<uint8_t, std::string_view> kTcpSummaryOrder[] = {
    {0x02, "SYN"}, {0x10, "ACK"}, {0x04, "RST"}, {0x01, "FIN"},
    {0x08, "PSH"}, {0x20, "URG"}, {0x40, "ECE"}, {0x80, "CWR"},
};

// ------------------------------------------------------------------ time

constexpr int64_t kNsPerSec = 1000000000;

// RFC 3339 in UTC with nine fractional digits: "2026-12-05T14:07:07.123456789Z". The calendar
// is <chrono>'s (floor to the day: instants before 1970 keep a fraction in [0, 1 s)).
std::string rfc3339(int64_t unix_ns) {
  using namespace std::chrono;
  const sys_time<nanoseconds> t{nanoseconds{unix_ns}};
  const sys_days day = floor<days>(t);
  const year_month_day ymd{day};
  const hh_mm_ss<nanoseconds> tod{t - day};
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z", int{ymd.year()}, unsigned{ymd.month()},
                     unsigned{ymd.day()}, tod.hours().count(), tod.minutes().count(), tod.seconds().count(),
                     tod.subseconds().count());
}

// Exactly `n` decimal digits at s[pos..], else nullopt.
std::optional<unsigned> digits(std::string_view s, size_t pos, size_t n) {
  if (pos + n > s.size()) return std::nullopt;
  unsigned v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return std::nullopt;
    v = v * 10 + static_cast<unsigned>(s[i] - '0');
  }
  return v;
}

// The inverse of rfc3339, a little wider: 0 to 9 fractional digits (protobuf's JSON writes 0, 3,
// 6 or 9), "Z" only (what Hubble writes). nullopt when malformed or beyond int64 nanoseconds.
std::optional<int64_t> parse_rfc3339(std::string_view s) {
  using namespace std::chrono;
  auto y = digits(s, 0, 4), mo = digits(s, 5, 2), d = digits(s, 8, 2);
  auto h = digits(s, 11, 2), mi = digits(s, 14, 2), se = digits(s, 17, 2);
  if (!y || !mo || !d || !h || !mi || !se || s[4] != '-' || s[7] != '-' || s[10] != 'T' ||
      s[13] != ':' || s[16] != ':')
    return std::nullopt;
  const year_month_day ymd{year{static_cast<int>(*y)}, month{*mo}, day{*d}};
  if (!ymd.ok() || *h > 23 || *mi > 59 || *se > 59) return std::nullopt;  // ok(): leap years too
  size_t pos = 19;
  int64_t frac = 0;
  if (pos < s.size() && s[pos] == '.') {
    size_t n = 0;
    for (++pos; pos < s.size() && s[pos] >= '0' && s[pos] <= '9' && n < 9; ++pos, ++n)
      frac = frac * 10 + (s[pos] - '0');
    if (n == 0) return std::nullopt;
    for (; n < 9; ++n) frac *= 10;
  }
  if (pos + 1 != s.size() || s[pos] != 'Z') return std::nullopt;
  const int64_t sec = (sys_days{ymd} + hours{*h} + minutes{*mi} + seconds{*se}).time_since_epoch().count();
  // int64 nanoseconds reach from 1677-09-21T00:12:43.145224192Z to 2262-04-11T23:47:16.854775807Z.
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max(),
                    kMin = std::numeric_limits<int64_t>::min();
  if (sec > (kMax - frac) / kNsPerSec || sec < kMin / kNsPerSec) return std::nullopt;
  if (sec == kMin / kNsPerSec && frac < kMin % kNsPerSec + kNsPerSec) return std::nullopt;
  return sec * kNsPerSec + frac;
}

// ------------------------------------------------------------------ summary

std::string icmp_summary(uint8_t type, uint8_t code) {
  // The names gopacket's ICMPv4TypeCode prints, as Hubble's Summary shows them.
  static constexpr std::array<std::string_view, 6> kUnreach = {
      "Net", "Host", "Protocol", "Port", "FragmentationNeeded", "SourceRoutingFailed"};
  switch (type) {
    case 0: return "ICMPv4 EchoReply";
    case 3:
      if (code < kUnreach.size())
        return fmt::format("ICMPv4 DestinationUnreachable({})", kUnreach[code]);
      return fmt::format("ICMPv4 DestinationUnreachable(Code: {})", code);
    case 5: return "ICMPv4 Redirect";
    case 8: return "ICMPv4 EchoRequest";
    case 11: return code == 0 ? "ICMPv4 TimeExceeded(TTLExceeded)" : "ICMPv4 TimeExceeded";
    default: return fmt::format("ICMPv4 Type {} Code {}", type, code);
  }
}

std::string l4_summary(const Flow& f) {
  switch (f.proto) {
    case kTcp: {
      std::string flags;
      for (const auto& [bit, name] : kTcpSummaryOrder) {
        if ((f.tcp_flags & bit) == 0) continue;
        if (!flags.empty()) flags += ", ";
        flags += name;
      }
      return flags.empty() ? "TCP" : "TCP Flags: " + flags;
    }
    case kUdp: return "UDP";
    case kIcmp: return icmp_summary(f.icmp_type, f.icmp_code);
    default: return fmt::format("IP protocol {}", f.proto);
  }
}

// What decided a drop: "policy default/deny-all (tier default) denied", "service without
// backends", ...
std::string drop_summary(const Flow& f) {
  const FlowPolicy& p = f.policy;
  if (!p.name.empty()) {
    std::string rule = p.rule_index >= 0 ? fmt::format(" rule {}", p.rule_index) : "";
    return fmt::format("policy {}{} (tier {}) denied", p.name, rule, p.tier);
  }
  if (!p.tier.empty()) return fmt::format("tier {}: no policy matched, denied", p.tier);
  if (!f.drop_reason_text.empty()) return f.drop_reason_text;
  if (!f.drop_reason.empty()) return f.drop_reason;
  return "dropped";
}

// "TCP", "UDP", "ICMP", else "IP protocol <n>": the word a flow end's summary starts with.
std::string proto_word(uint8_t proto) {
  switch (proto) {
    case kTcp: return "TCP";
    case kUdp: return "UDP";
    case kIcmp: return "ICMP";
    default: return fmt::format("IP protocol {}", proto);
  }
}

std::string summary(const Flow& f) {
  switch (f.event) {
    case FlowEvent::Drop: return drop_summary(f) + "; " + l4_summary(f);
    case FlowEvent::End: {
      std::string why = f.close_reason.empty() ? "" : " (" + f.close_reason + ")";
      return fmt::format(
          "{} flow ended{} after {}: sent {} packets {} bytes, received {} packets {} bytes",
          proto_word(f.proto), why,
          format_duration(std::chrono::nanoseconds(static_cast<int64_t>(
              std::min<uint64_t>(f.duration_ns, std::numeric_limits<int64_t>::max())))),
          f.packets_sent, f.bytes_sent, f.packets_received, f.bytes_received);
    }
    case FlowEvent::Start: break;
  }
  return l4_summary(f);
}

// ------------------------------------------------------------------ writing

json service_json(const std::string& ns, const std::string& name) {
  return json{{"namespace", ns}, {"name", name}};
}

// Hubble's Endpoint: only the names weir has, each when known.
json endpoint_json(const FlowPeer& p) {
  json j = json::object();
  if (!p.ns.empty()) j["namespace"] = p.ns;
  if (!p.pod.empty()) j["pod_name"] = p.pod;
  return j;
}

// Hubble's Policy for *_denied_by: "ns/name" is a namespaced policy, "name" a global one.
json denied_by_json(const FlowPolicy& p) {
  const size_t slash = p.name.find('/');
  json j;
  if (slash == std::string::npos) {
    j = {{"name", p.name}, {"namespace", ""}, {"kind", "GlobalNetworkPolicy"}};
  } else {
    j = {{"name", p.name.substr(slash + 1)},
         {"namespace", p.name.substr(0, slash)},
         {"kind", "NetworkPolicy"}};
  }
  j["labels"] = json::array({"weir:tier=" + p.tier});
  return json::array({j});
}

bool has_l4(uint8_t proto) { return proto == kTcp || proto == kUdp || proto == kIcmp; }

bool policy_is_default(const FlowPolicy& p) {
  return p.tier.empty() && p.name.empty() && p.action.empty() && p.rule_index == -1;
}

bool has_end_fields(const Flow& f) {
  return f.event == FlowEvent::End || f.packets_sent != 0 || f.bytes_sent != 0 ||
         f.packets_received != 0 || f.bytes_received != 0 || f.duration_ns != 0 ||
         !f.close_reason.empty();
}

// ------------------------------------------------------------------ reading

// Errors name the field by its path from the flow's root ("l4.TCP.source_port").
Error bad(const std::string& path, std::string_view expected, const json& got) {
  return make_error("flow field \"{}\": expected {}, got {}", path, expected, clip(got.dump()));
}
Error missing(const std::string& path) { return make_error("flow field \"{}\" is missing", path); }

std::string join(const std::string& parent, std::string_view key) {
  return parent.empty() ? std::string(key) : fmt::format("{}.{}", parent, key);
}

// The member `key` of `obj` (an object), nullptr when absent (or null).
const json* member(const json& obj, std::string_view key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

// An object member: nullptr when absent and not required.
Result<const json*> object_at(const json& obj, const std::string& parent, std::string_view key,
                              bool required) {
  const std::string path = join(parent, key);
  const json* v = member(obj, key);
  if (v == nullptr) {
    if (required) return missing(path);
    return static_cast<const json*>(nullptr);
  }
  if (!v->is_object()) return bad(path, "an object", *v);
  return v;
}

// A string member: "" when absent and not required.
Result<std::string> string_at(const json& obj, const std::string& parent, std::string_view key,
                              bool required = false) {
  const std::string path = join(parent, key);
  const json* v = member(obj, key);
  if (v == nullptr) {
    if (required) return missing(path);
    return std::string();
  }
  if (!v->is_string()) return bad(path, "a string", *v);
  return v->get<std::string>();
}

// An integer member in [lo, hi]: `dflt` when absent and not required.
Result<int64_t> int_at(const json& obj, const std::string& parent, std::string_view key, int64_t lo,
                       int64_t hi, int64_t dflt, bool required = false) {
  const std::string path = join(parent, key);
  const json* v = member(obj, key);
  if (v == nullptr) {
    if (required) return missing(path);
    return dflt;
  }
  const std::string range = fmt::format("an integer in {}..{}", lo, hi);
  if (v->is_number_unsigned()) {
    const auto u = v->get<uint64_t>();
    if (u > static_cast<uint64_t>(hi)) return bad(path, range, *v);
    return static_cast<int64_t>(u);
  }
  if (!v->is_number_integer()) return bad(path, range, *v);
  const auto i = v->get<int64_t>();
  if (i < lo || i > hi) return bad(path, range, *v);
  return i;
}

// An unsigned integer member up to `hi` (the whole uint64 range allowed): 0 when absent.
Result<uint64_t> uint_at(const json& obj, const std::string& parent, std::string_view key,
                         uint64_t hi = std::numeric_limits<uint64_t>::max()) {
  const std::string path = join(parent, key);
  const json* v = member(obj, key);
  if (v == nullptr) return uint64_t{0};
  const std::string range = fmt::format("an integer in 0..{}", hi);
  uint64_t u = 0;
  if (v->is_number_unsigned()) {
    u = v->get<uint64_t>();
  } else if (v->is_number_integer() && v->get<int64_t>() >= 0) {
    u = static_cast<uint64_t>(v->get<int64_t>());
  } else {
    return bad(path, range, *v);
  }
  if (u > hi) return bad(path, range, *v);
  return u;
}

Result<Ipv4> ip_at(const json& obj, const std::string& parent, std::string_view key) {
  auto s = string_at(obj, parent, key, true);
  if (!s) return s.error();
  auto ip = Ipv4::parse(*s);
  if (!ip) return bad(join(parent, key), "an IPv4 address (a.b.c.d)", obj.at(key));
  return *ip;
}

Status read_endpoint(const json& root, std::string_view key, FlowPeer& p) {
  auto o = object_at(root, "", key, false);
  if (!o) return o.error();
  if (*o == nullptr) return {};
  auto ns = string_at(**o, std::string(key), "namespace");
  if (!ns) return ns.error();
  auto pod = string_at(**o, std::string(key), "pod_name");
  if (!pod) return pod.error();
  p.ns = *ns;
  p.pod = *pod;
  return {};
}

Status read_service(const json& obj, const std::string& parent, std::string_view key,
                    std::string& ns, std::string& name) {
  auto o = object_at(obj, parent, key, false);
  if (!o) return o.error();
  if (*o == nullptr) return {};
  const std::string path = join(parent, key);
  auto n = string_at(**o, path, "namespace");
  if (!n) return n.error();
  auto nm = string_at(**o, path, "name");
  if (!nm) return nm.error();
  ns = *n;
  name = *nm;
  return {};
}

Result<uint16_t> port_at(const json& obj, const std::string& parent, std::string_view key) {
  auto v = int_at(obj, parent, key, 0, 65535, 0);
  if (!v) return v.error();
  return static_cast<uint16_t>(*v);
}

Status read_l4(const json& root, Flow& f) {
  auto l4 = object_at(root, "", "l4", false);
  if (!l4) return l4.error();
  if (*l4 == nullptr) return {};
  if ((*l4)->size() != 1) return bad("l4", "an object with one of TCP, UDP, ICMPv4", **l4);
  // (Not items(): its proxy is a temporary, gone before the key would be read.)
  const auto first = (*l4)->begin();
  const std::string& name = first.key();
  const json& body = first.value();
  const std::string path = "l4." + name;
  if (!body.is_object()) return bad(path, "an object", body);
  if (name == "ICMPv4") {
    f.proto = kIcmp;
    auto type = int_at(body, path, "type", 0, 255, 0, true);
    if (!type) return type.error();
    auto code = int_at(body, path, "code", 0, 255, 0, true);
    if (!code) return code.error();
    f.icmp_type = static_cast<uint8_t>(*type);
    f.icmp_code = static_cast<uint8_t>(*code);
    return {};
  }
  if (name != "TCP" && name != "UDP")
    return make_error(R"(flow field "l4": expected TCP, UDP or ICMPv4, got "{}")", clip(name));
  f.proto = name == "TCP" ? kTcp : kUdp;
  auto sp = port_at(body, path, "source_port");
  if (!sp) return sp.error();
  auto dp = port_at(body, path, "destination_port");
  if (!dp) return dp.error();
  f.source.port = *sp;
  f.destination.port = *dp;
  if (f.proto != kTcp) return {};
  auto flags = object_at(body, path, "flags", false);
  if (!flags) return flags.error();
  if (*flags == nullptr) return {};
  for (const auto& [flag, set] : (*flags)->items()) {
    const std::string fpath = fmt::format("{}.flags.{}", path, flag);
    uint8_t bit = 0;
    for (const auto& [b, n] : kTcpFlags)
      if (n == flag) bit = b;
    if (bit == 0)
      return make_error(
          "flow field \"{}\": not a TCP flag weir records (FIN, SYN, RST, PSH, ACK, URG, ECE, CWR)",
          clip(fpath));
    if (!set.is_boolean()) return bad(fpath, "true or false", set);
    if (set.get<bool>()) f.tcp_flags |= bit;
  }
  return {};
}

Status read_weir(const json& root, Flow& f) {
  auto w = object_at(root, "", "weir", true);
  if (!w) return w.error();
  const json& o = **w;
  auto ev = string_at(o, "weir", "event", true);
  if (!ev) return ev.error();
  if (*ev == "flow_start")
    f.event = FlowEvent::Start;
  else if (*ev == "flow_end")
    f.event = FlowEvent::End;
  else if (*ev == "drop")
    f.event = FlowEvent::Drop;
  else
    return bad("weir.event", "flow_start, flow_end or drop", o.at("event"));

  // Protocols Hubble's l4 has no field for, and their ports.
  if (member(root, "l4") == nullptr) {
    auto p = int_at(o, "weir", "proto", 0, 255, 0, true);
    if (!p) return p.error();
    f.proto = static_cast<uint8_t>(*p);
  }
  if (f.proto != kTcp && f.proto != kUdp) {
    auto sp = port_at(o, "weir", "source_port");
    if (!sp) return sp.error();
    auto dp = port_at(o, "weir", "destination_port");
    if (!dp) return dp.error();
    f.source.port = *sp;
    f.destination.port = *dp;
  }

  auto reason = string_at(o, "weir", "drop_reason");
  if (!reason) return reason.error();
  auto reason_text = string_at(o, "weir", "drop_reason_text");
  if (!reason_text) return reason_text.error();
  f.drop_reason = *reason;
  f.drop_reason_text = *reason_text;

  auto tr = object_at(o, "weir", "translated", false);
  if (!tr) return tr.error();
  if (*tr != nullptr) {
    FlowPeer t;
    auto ip = ip_at(**tr, "weir.translated", "ip");
    if (!ip) return ip.error();
    auto port = port_at(**tr, "weir.translated", "port");
    if (!port) return port.error();
    auto ns = string_at(**tr, "weir.translated", "namespace");
    if (!ns) return ns.error();
    auto pod = string_at(**tr, "weir.translated", "pod_name");
    if (!pod) return pod.error();
    WEIR_TRY(read_service(**tr, "weir.translated", "service", t.service_ns, t.service));
    t.ip = *ip;
    t.port = *port;
    t.ns = *ns;
    t.pod = *pod;
    f.translated = std::move(t);
  }

  auto pol = object_at(o, "weir", "policy", false);
  if (!pol) return pol.error();
  if (*pol != nullptr) {
    const json& p = **pol;
    auto tier = string_at(p, "weir.policy", "tier");
    if (!tier) return tier.error();
    auto name = string_at(p, "weir.policy", "name");
    if (!name) return name.error();
    auto rule = int_at(p, "weir.policy", "rule_index", -1, std::numeric_limits<int>::max(), -1);
    if (!rule) return rule.error();
    auto action = string_at(p, "weir.policy", "action");
    if (!action) return action.error();
    f.policy.tier = *tier;
    f.policy.name = *name;
    f.policy.rule_index = static_cast<int>(*rule);
    f.policy.action = *action;
  }

  auto ps = uint_at(o, "weir", "packets_sent");
  if (!ps) return ps.error();
  auto bs = uint_at(o, "weir", "bytes_sent");
  if (!bs) return bs.error();
  auto pr = uint_at(o, "weir", "packets_received");
  if (!pr) return pr.error();
  auto br = uint_at(o, "weir", "bytes_received");
  if (!br) return br.error();
  auto dur = uint_at(o, "weir", "duration_ns");
  if (!dur) return dur.error();
  auto why = string_at(o, "weir", "close_reason");
  if (!why) return why.error();
  f.packets_sent = *ps;
  f.bytes_sent = *bs;
  f.packets_received = *pr;
  f.bytes_received = *br;
  f.duration_ns = *dur;
  f.close_reason = *why;
  return {};
}

}  // namespace

const char* to_string(FlowEvent e) {
  switch (e) {
    case FlowEvent::Start: return "flow_start";
    case FlowEvent::End: return "flow_end";
    case FlowEvent::Drop: return "drop";
  }
  return "?";
}

const char* to_string(FlowVerdict v) {
  switch (v) {
    case FlowVerdict::Forwarded: return "FORWARDED";
    case FlowVerdict::Dropped: return "DROPPED";
  }
  return "?";
}

const char* to_string(TrafficDirection d) {
  switch (d) {
    case TrafficDirection::Ingress: return "INGRESS";
    case TrafficDirection::Egress: return "EGRESS";
    case TrafficDirection::Unknown: break;
  }
  return "";
}

json to_json(const Flow& f) {
  json j;
  j["time"] = rfc3339(f.time_unix_ns);
  j["verdict"] = to_string(f.verdict);
  if (f.verdict == FlowVerdict::Dropped) j["drop_reason_desc"] = hubble_drop_reason(f.drop_reason);
  j["IP"] = {{"source", f.source.ip.str()},
             {"destination", f.destination.ip.str()},
             {"ipVersion", "IPv4"}};
  if (f.proto == kTcp || f.proto == kUdp) {
    json l4 = {{"source_port", f.source.port}, {"destination_port", f.destination.port}};
    if (f.proto == kTcp && f.tcp_flags != 0) {
      json flags = json::object();
      for (const auto& [bit, name] : kTcpFlags)
        if ((f.tcp_flags & bit) != 0) flags[std::string(name)] = true;
      l4["flags"] = std::move(flags);
    }
    j["l4"] = {{f.proto == kTcp ? "TCP" : "UDP", std::move(l4)}};
  } else if (f.proto == kIcmp) {
    j["l4"] = {{"ICMPv4", {{"type", f.icmp_type}, {"code", f.icmp_code}}}};
  }
  j["source"] = endpoint_json(f.source);
  j["destination"] = endpoint_json(f.destination);
  if (!f.source.service_ns.empty() || !f.source.service.empty())
    j["source_service"] = service_json(f.source.service_ns, f.source.service);
  if (!f.destination.service_ns.empty() || !f.destination.service.empty())
    j["destination_service"] = service_json(f.destination.service_ns, f.destination.service);
  j["Type"] = "L3_L4";
  j["node_name"] = f.node;
  j["traffic_direction"] = f.direction == TrafficDirection::Unknown ? "TRAFFIC_DIRECTION_UNKNOWN"
                                                                    : to_string(f.direction);
  j["policy_match_type"] = f.policy.match_type;
  if (f.ifindex != 0 || !f.interface.empty())
    j["interface"] = {{"index", f.ifindex}, {"name", f.interface}};
  // Hubble names the denying policy per direction of the workload's traffic.
  if (f.verdict == FlowVerdict::Dropped && f.drop_reason == "dropped_by_policy" &&
      !f.policy.name.empty()) {
    if (f.direction == TrafficDirection::Egress) j["egress_denied_by"] = denied_by_json(f.policy);
    if (f.direction == TrafficDirection::Ingress) j["ingress_denied_by"] = denied_by_json(f.policy);
  }
  j["is_reply"] = false;
  j["Summary"] = summary(f);

  json w;
  w["event"] = to_string(f.event);
  if (!has_l4(f.proto)) w["proto"] = f.proto;
  if (f.proto != kTcp && f.proto != kUdp) {
    // ICMP's echo id as conntrack keeps it, or another protocol's ports: only when set.
    if (f.source.port != 0) w["source_port"] = f.source.port;
    if (f.destination.port != 0) w["destination_port"] = f.destination.port;
  }
  if (!f.drop_reason.empty()) w["drop_reason"] = f.drop_reason;
  if (!f.drop_reason_text.empty()) w["drop_reason_text"] = f.drop_reason_text;
  if (f.translated) {
    const FlowPeer& t = *f.translated;
    json tj = {{"ip", t.ip.str()}, {"port", t.port}};
    if (!t.ns.empty()) tj["namespace"] = t.ns;
    if (!t.pod.empty()) tj["pod_name"] = t.pod;
    if (!t.service_ns.empty() || !t.service.empty())
      tj["service"] = service_json(t.service_ns, t.service);
    w["translated"] = std::move(tj);
  }
  if (!policy_is_default(f.policy)) {
    w["policy"] = {{"tier", f.policy.tier},
                   {"name", f.policy.name},
                   {"rule_index", f.policy.rule_index},
                   {"action", f.policy.action}};
  }
  if (has_end_fields(f)) {
    w["packets_sent"] = f.packets_sent;
    w["bytes_sent"] = f.bytes_sent;
    w["packets_received"] = f.packets_received;
    w["bytes_received"] = f.bytes_received;
    w["duration_ns"] = f.duration_ns;
    w["close_reason"] = f.close_reason;
  }
  j["weir"] = std::move(w);
  return j;
}

Result<Flow> flow_from_json(const json& j) {
  if (!j.is_object()) return make_error("flow: expected a JSON object, got {}", clip(j.dump()));
  Flow f;
  auto time = string_at(j, "", "time", true);
  if (!time) return time.error();
  auto ns = parse_rfc3339(*time);
  if (!ns)
    return bad("time", "an RFC 3339 UTC time (2026-12-05T14:07:07.123456789Z)", j.at("time"));
  f.time_unix_ns = *ns;

  auto verdict = string_at(j, "", "verdict", true);
  if (!verdict) return verdict.error();
  if (*verdict == "FORWARDED")
    f.verdict = FlowVerdict::Forwarded;
  else if (*verdict == "DROPPED")
    f.verdict = FlowVerdict::Dropped;
  else
    return bad("verdict", "FORWARDED or DROPPED", j.at("verdict"));

  auto ip = object_at(j, "", "IP", true);
  if (!ip) return ip.error();
  auto src = ip_at(**ip, "IP", "source");
  if (!src) return src.error();
  auto dst = ip_at(**ip, "IP", "destination");
  if (!dst) return dst.error();
  auto version = string_at(**ip, "IP", "ipVersion");
  if (!version) return version.error();
  if (!version->empty() && *version != "IPv4")
    return bad("IP.ipVersion", "IPv4 (weir records IPv4 only)", (*ip)->at("ipVersion"));
  f.source.ip = *src;
  f.destination.ip = *dst;

  WEIR_TRY(read_l4(j, f));
  WEIR_TRY(read_endpoint(j, "source", f.source));
  WEIR_TRY(read_endpoint(j, "destination", f.destination));
  WEIR_TRY(read_service(j, "", "source_service", f.source.service_ns, f.source.service));
  WEIR_TRY(
      read_service(j, "", "destination_service", f.destination.service_ns, f.destination.service));

  auto node = string_at(j, "", "node_name");
  if (!node) return node.error();
  f.node = *node;

  auto dir = string_at(j, "", "traffic_direction");
  if (!dir) return dir.error();
  if (*dir == "INGRESS")
    f.direction = TrafficDirection::Ingress;
  else if (*dir == "EGRESS")
    f.direction = TrafficDirection::Egress;
  else if (dir->empty() || *dir == "TRAFFIC_DIRECTION_UNKNOWN")
    f.direction = TrafficDirection::Unknown;
  else
    return bad("traffic_direction", "INGRESS, EGRESS or TRAFFIC_DIRECTION_UNKNOWN",
               j.at("traffic_direction"));

  auto match = int_at(j, "", "policy_match_type", 0, std::numeric_limits<uint32_t>::max(), 0);
  if (!match) return match.error();
  f.policy.match_type = static_cast<uint32_t>(*match);

  auto itf = object_at(j, "", "interface", false);
  if (!itf) return itf.error();
  if (*itf != nullptr) {
    auto index = int_at(**itf, "interface", "index", 0, std::numeric_limits<uint32_t>::max(), 0);
    if (!index) return index.error();
    auto name = string_at(**itf, "interface", "name");
    if (!name) return name.error();
    f.ifindex = static_cast<uint32_t>(*index);
    f.interface = *name;
  }

  WEIR_TRY(read_weir(j, f));
  return f;
}

}  // namespace weir::model
