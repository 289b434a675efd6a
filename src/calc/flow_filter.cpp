// The filters of `weir observe` (docs/observe.md): the command line's strings parsed strictly,
// matching, and the request's JSON. The request carries each filter in the command line's own
// syntax, so that the agent parses it with the same code and the same errors.
#include "calc/flow_filter.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <limits>
#include <string_view>

#include "model/validation.h"

namespace weir::calc {

namespace {

constexpr uint8_t kTcp = 6, kUdp = 17, kIcmp = 1;

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// The parsers below name what they parse with `what`: "--port" on the command line,
// "filter.port" in a request. Each error reads "<what> <value>: <what is expected>".
Error bad(std::string_view what, std::string_view value, std::string_view expected) {
  return make_error("{} {}: {}", what, model::clip(value), expected);
}

bool has_space(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c) != 0; });
}

Result<NsName> parse_ns_name(std::string_view what, std::string_view s) {
  const size_t slash = s.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == s.size() ||
      s.find('/', slash + 1) != std::string_view::npos || has_space(s))
    return bad(what, s, "expected NAMESPACE/NAME");
  return NsName{std::string(s.substr(0, slash)), std::string(s.substr(slash + 1))};
}

// "a.b.c.d" (a /32) or "a.b.c.d/n"; host bits are cleared ("10.0.0.5/24" is 10.0.0.0/24).
Result<model::Cidr> parse_prefix(std::string_view what, std::string_view s) {
  static constexpr std::string_view kExpected =
      "expected an IPv4 address or CIDR (a.b.c.d or a.b.c.d/n, n 0..32)";
  const size_t slash = s.find('/');
  auto ip = model::Ipv4::parse(s.substr(0, slash));
  if (!ip) return bad(what, s, kExpected);
  unsigned len = 32;
  if (slash != std::string_view::npos) {
    const std::string_view ls = s.substr(slash + 1);
    auto [end, ec] = std::from_chars(ls.data(), ls.data() + ls.size(), len);
    if (ls.empty() || ls.size() > 2 || ec != std::errc() || end != ls.data() + ls.size() ||
        len > 32)
      return bad(what, s, kExpected);
  }
  return model::Cidr{model::Ipv4{ip->value & model::Cidr::netmask(len)}, static_cast<uint8_t>(len)};
}

Result<uint16_t> parse_port(std::string_view what, std::string_view s) {
  unsigned v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v == 0 || v > 65535)
    return bad(what, s, "a port is 1..65535");
  return static_cast<uint16_t>(v);
}

Result<uint8_t> parse_proto(std::string_view what, std::string_view s) {
  const std::string l = lower(s);
  if (l == "tcp") return kTcp;
  if (l == "udp") return kUdp;
  if (l == "icmp") return kIcmp;
  return bad(what, s, "expected tcp, udp or icmp");
}

Result<model::FlowVerdict> parse_verdict(std::string_view what, std::string_view s) {
  const std::string l = lower(s);
  if (l == "forwarded") return model::FlowVerdict::Forwarded;
  if (l == "dropped") return model::FlowVerdict::Dropped;
  return bad(what, s, "expected forwarded or dropped");
}

// The option names of one syntax: the command line's or the request's.
struct Names {
  const char *pod, *from_ip, *to_ip, *port, *proto, *verdict, *service;
};
constexpr Names kCliNames{"--pod",   "--from-ip", "--to-ip",  "--port",
                          "--proto", "--verdict", "--service"};
constexpr Names kJsonNames{"filter.pod",   "filter.from_ip", "filter.to_ip",  "filter.port",
                           "filter.proto", "filter.verdict", "filter.service"};

// Parses `value` into `out` with `parse` when it was given ("" leaves `out` empty).
template <typename T>
Status take(std::optional<T>& out, const char* name, const std::string& value,
            Result<T> (*parse)(std::string_view, std::string_view)) {
  if (value.empty()) return {};
  auto v = parse(name, value);
  if (!v) return v.error();
  out = *v;
  return {};
}

Result<FlowFilter> parse_with(const FlowFilterArgs& a, const Names& n) {
  FlowFilter f;
  WEIR_TRY(take(f.pod, n.pod, a.pod, parse_ns_name));
  WEIR_TRY(take(f.from_ip, n.from_ip, a.from_ip, parse_prefix));
  WEIR_TRY(take(f.to_ip, n.to_ip, a.to_ip, parse_prefix));
  WEIR_TRY(take(f.port, n.port, a.port, parse_port));
  WEIR_TRY(take(f.proto, n.proto, a.proto, parse_proto));
  WEIR_TRY(take(f.verdict, n.verdict, a.verdict, parse_verdict));
  WEIR_TRY(take(f.service, n.service, a.service, parse_ns_name));
  return f;
}

bool is_pod(const model::FlowPeer& p, const NsName& n) { return p.ns == n.ns && p.pod == n.name; }

const char* proto_text(uint8_t p) {
  switch (p) {
    case kTcp: return "tcp";
    case kUdp: return "udp";
    default: return "icmp";
  }
}

}  // namespace

Result<FlowFilter> parse_flow_filter(const FlowFilterArgs& a) { return parse_with(a, kCliNames); }

bool FlowFilter::matches(const model::Flow& f) const {
  const auto& t = f.translated;
  if (pod && !is_pod(f.source, *pod) && !is_pod(f.destination, *pod) && !(t && is_pod(*t, *pod)))
    return false;
  if (from_ip && !from_ip->contains(f.source.ip)) return false;
  if (to_ip && !to_ip->contains(f.destination.ip) && !(t && to_ip->contains(t->ip))) return false;
  if (port && f.source.port != *port && f.destination.port != *port && !(t && t->port == *port))
    return false;
  if (proto && f.proto != *proto) return false;
  if (verdict && f.verdict != *verdict) return false;
  if (service &&
      (f.destination.service_ns != service->ns || f.destination.service != service->name))
    return false;
  return true;
}

nlohmann::json to_json(const ObserveRequest& r) {
  nlohmann::json filter = nlohmann::json::object();
  const FlowFilter& f = r.filter;
  if (f.pod) filter["pod"] = f.pod->ns + "/" + f.pod->name;
  if (f.from_ip) filter["from_ip"] = f.from_ip->str();
  if (f.to_ip) filter["to_ip"] = f.to_ip->str();
  if (f.port) filter["port"] = std::to_string(*f.port);
  if (f.proto) filter["proto"] = proto_text(*f.proto);
  if (f.verdict)
    filter["verdict"] = f.verdict == model::FlowVerdict::Dropped ? "dropped" : "forwarded";
  if (f.service) filter["service"] = f.service->ns + "/" + f.service->name;
  return {{"last", r.last}, {"follow", r.follow}, {"filter", std::move(filter)}};
}

Result<ObserveRequest> observe_request_from_json(const nlohmann::json& j) {
  auto bad_field = [](std::string_view field, std::string_view expected, const nlohmann::json& v) {
    return make_error("request field \"{}\": expected {}, got {}", field, expected,
                      model::clip(v.dump()));
  };
  if (!j.is_object()) return bad_field("(request)", "a JSON object", j);
  ObserveRequest r;
  FlowFilterArgs a;
  // Strict: a field this agent does not know is a filter it would not apply (a newer client).
  for (const auto& [key, v] : j.items()) {
    if (key == "last") {
      if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0))
        return bad_field("last", "a count of flows (0 or more)", v);
      r.last = v.get<size_t>();
    } else if (key == "follow") {
      if (!v.is_boolean()) return bad_field("follow", "true or false", v);
      r.follow = v.get<bool>();
    } else if (key == "filter") {
      if (!v.is_object()) return bad_field("filter", "an object", v);
      for (const auto& [fk, fv] : v.items()) {
        std::string* dst = fk == "pod"       ? &a.pod
                           : fk == "from_ip" ? &a.from_ip
                           : fk == "to_ip"   ? &a.to_ip
                           : fk == "port"    ? &a.port
                           : fk == "proto"   ? &a.proto
                           : fk == "verdict" ? &a.verdict
                           : fk == "service" ? &a.service
                                             : nullptr;
        if (dst == nullptr)
          return make_error(
              "request field \"filter.{}\": unknown (this agent filters on pod, "
              "from_ip, to_ip, port, proto, verdict, service)",
              model::clip(fk));
        if (!fv.is_string() || fv.get<std::string>().empty())
          return bad_field("filter." + fk, "a non-empty string", fv);
        *dst = fv.get<std::string>();
      }
    } else {
      return make_error("request field \"{}\": unknown (a request has last, follow, filter)",
                        model::clip(key));
    }
  }
  auto f = parse_with(a, kJsonNames);
  if (!f) return f.error().wrap("request");
  r.filter = *f;
  return r;
}

}  // namespace weir::calc
