// Parsing and validation of the policy kinds: Namespace, NetworkPolicy, Tier,
// GlobalNetworkPolicy (docs/resources.md). Called from parse.cpp's dispatch.
//
// Selector syntax is checked with the selector parser (model/selector.h: the grammar belongs
// with the resources that carry selectors); the model keeps the validated text, calc builds
// the Selector again.
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cmath>
#include <map>
#include <set>
#include <variant>

#include "model/parse_ctx.h"
#include "model/parse_policy.h"
#include "model/selector.h"

namespace weir::model {

std::string_view to_string(PolicyAction a) {
  switch (a) {
    case PolicyAction::Allow: return "Allow";
    case PolicyAction::Deny: return "Deny";
    case PolicyAction::Pass: return "Pass";
    case PolicyAction::Log: return "Log";
  }
  return "?";
}

namespace parse_detail {

namespace {

bool in_cidr(Cidr outer, Cidr inner) {
  return inner.prefix_len >= outer.prefix_len && outer.contains(inner.addr);
}

// A finite decimal number (policy and tier order).
std::optional<double> number(Ctx& c, const YAML::Node& parent, const char* key,
                             const std::string& path) {
  YAML::Node n = Ctx::child(parent, key);
  auto s = c.raw_scalar(n, path, "a number");
  if (!s || c.quoted_instead_of(n, path, *s, ScalarType::Float)) return std::nullopt;
  double v = 0;
  auto [p, ec] = std::from_chars(s->data(), s->data() + s->size(), v);
  if (ec != std::errc() || p != s->data() + s->size() || s->empty() || !std::isfinite(v)) {
    c.error(path, n, fmt::format("{} is not a number", quote(*s)));
    return std::nullopt;
  }
  return v;
}

// Validates a Calico selector expression; the error carries the column.
std::optional<std::string> selector_text(Ctx& c, const YAML::Node& parent, const char* key,
                                         const std::string& path) {
  YAML::Node n = Ctx::child(parent, key);
  auto s = c.scalar(n, path);
  if (!s) return std::nullopt;
  auto r = parse_selector_detailed(*s);
  if (auto* e = std::get_if<SelectorError>(&r)) {
    c.error(path, n,
            fmt::format("selector {} does not parse: column {}: {}", quote(*s), e->column,
                        clip(e->message, 2 * kMaxEchoBytes)));
    return std::nullopt;
  }
  return *s;
}

// A Kubernetes LabelSelector (matchLabels, matchExpressions), checked entry by entry.
std::optional<LabelSelector> label_selector(Ctx& c, const YAML::Node& parent, const char* key,
                                            const std::string& path) {
  YAML::Node n = c.map(parent, key, path, false);
  if (!n.IsDefined()) {
    // Present but null ("podSelector: {}" spelled "podSelector:"): an empty selector.
    YAML::Node raw = parent.IsDefined() && parent.IsMap() ? parent[key] : YAML::Node();
    if (raw.IsDefined() && raw.IsNull()) return LabelSelector{};
    return std::nullopt;
  }
  LabelSelector ls;
  bool ok = true;
  YAML::Node ml = c.map(n, "matchLabels", path + ".matchLabels", false);
  if (ml.IsDefined()) {
    for (const auto& kv : ml) {
      std::string k = kv.first.IsScalar() ? kv.first.Scalar() : "";
      std::string kpath = fmt::format("{}.matchLabels[\"{}\"]", path, clip(k));
      if (std::string why = check_label_key(k); !why.empty()) {
        c.error(kpath, kv.first, fmt::format("invalid label key {}: {}", quote(k), why));
        ok = false;
        continue;
      }
      std::string v = kv.second.IsNull() ? "" : c.scalar(kv.second, kpath).value_or("");
      if (std::string why = check_label_value(v); !why.empty()) {
        c.error(kpath, kv.second, fmt::format("invalid label value {}: {}", quote(v), why));
        ok = false;
        continue;
      }
      ls.match_labels[k] = v;
    }
  }
  YAML::Node me = c.seq(n, "matchExpressions", path + ".matchExpressions", false);
  if (me.IsDefined()) {
    for (size_t i = 0; i < me.size(); ++i) {
      std::string ep = idx(path + ".matchExpressions", i);
      if (!me[i].IsMap()) {
        c.error(ep, me[i], "must be a mapping");
        ok = false;
        continue;
      }
      LabelSelectorRequirement req;
      auto k = c.str(me[i], "key", ep + ".key", true);
      auto op = c.str(me[i], "operator", ep + ".operator", true);
      if (!k || !op) {
        ok = false;
        continue;
      }
      req.key = *k;
      req.op = *op;
      if (std::string why = check_label_key(*k); !why.empty()) {
        c.error(ep + ".key", Ctx::child(me[i], "key"),
                fmt::format("invalid label key {}: {}", quote(*k), why));
        ok = false;
      }
      YAML::Node vals = c.seq(me[i], "values", ep + ".values", false);
      if (vals.IsDefined()) {
        for (size_t j = 0; j < vals.size(); ++j) {
          auto v = c.scalar(vals[j], idx(ep + ".values", j));
          if (!v) continue;
          if (std::string why = check_label_value(*v); !why.empty()) {
            c.error(idx(ep + ".values", j), vals[j],
                    fmt::format("invalid label value {}: {}", quote(*v), why));
            ok = false;
          }
          req.values.push_back(*v);
        }
      }
      if (req.op == "In" || req.op == "NotIn") {
        if (req.values.empty()) {
          c.error(ep + ".values", me[i],
                  fmt::format("operator {} needs at least one value", req.op));
          ok = false;
        }
      } else if (req.op == "Exists" || req.op == "DoesNotExist") {
        if (!req.values.empty()) {
          c.error(ep + ".values", vals, fmt::format("operator {} takes no values", req.op));
          ok = false;
        }
      } else {
        c.error(ep + ".operator", Ctx::child(me[i], "operator"),
                fmt::format("unknown operator {} (want In, NotIn, Exists or DoesNotExist)",
                            quote(req.op)));
        ok = false;
      }
      ls.match_expressions.push_back(std::move(req));
    }
  }
  if (!ok) return std::nullopt;
  return ls;
}

// ---------------------------------------------------------------- NetworkPolicy

std::optional<NetworkPolicyPeer> np_peer(Ctx& c, const YAML::Node& n, const std::string& path) {
  if (!n.IsMap()) {
    c.error(path, n, "must be a mapping");
    return std::nullopt;
  }
  NetworkPolicyPeer peer;
  peer.pod_selector = label_selector(c, n, "podSelector", path + ".podSelector");
  peer.namespace_selector = label_selector(c, n, "namespaceSelector", path + ".namespaceSelector");
  YAML::Node ib = c.map(n, "ipBlock", path + ".ipBlock", false);
  bool has_pod = n["podSelector"].IsDefined();
  bool has_ns = n["namespaceSelector"].IsDefined();
  if (ib.IsDefined()) {
    if (has_pod || has_ns) {
      c.error(path, n, "ipBlock may not be combined with podSelector or namespaceSelector");
      return std::nullopt;
    }
    std::string cp = path + ".ipBlock.cidr";
    auto cs = c.str(ib, "cidr", cp, true);
    if (!cs) return std::nullopt;
    IpBlock block;
    switch (parse_cidr(*cs, false, block.cidr)) {
      case CidrParse::Invalid:
        c.error(cp, Ctx::child(ib, "cidr"),
                fmt::format("{} is not a CIDR (expected a.b.c.d/n)", quote(*cs)));
        return std::nullopt;
      case CidrParse::Ipv6:
        c.warn(cp, Ctx::child(ib, "cidr"),
               fmt::format("IPv6 block {} matches no IPv4 traffic", quote(*cs)));
        peer.ipv6_only = true;
        return peer;
      case CidrParse::Ok:
        break;
    }
    YAML::Node ex = c.seq(ib, "except", path + ".ipBlock.except", false);
    if (ex.IsDefined()) {
      for (size_t i = 0; i < ex.size(); ++i) {
        std::string ep = idx(path + ".ipBlock.except", i);
        auto es = c.scalar(ex[i], ep);
        if (!es) continue;
        Cidr e;
        if (parse_cidr(*es, false, e) != CidrParse::Ok) {
          c.error(ep, ex[i], fmt::format("{} is not a CIDR (expected a.b.c.d/n)", quote(*es)));
          continue;
        }
        if (!in_cidr(block.cidr, e) || e.prefix_len == block.cidr.prefix_len) {
          c.error(ep, ex[i],
                  fmt::format("{} is not strictly inside cidr {}", quote(*es), block.cidr.str()));
          continue;
        }
        block.except.push_back(e);
      }
    }
    peer.ip_block = std::move(block);
    return peer;
  }
  if (!has_pod && !has_ns) {
    c.error(path, n, "must set podSelector, namespaceSelector or ipBlock");
    return std::nullopt;
  }
  if ((has_pod && !peer.pod_selector) || (has_ns && !peer.namespace_selector)) return std::nullopt;
  return peer;
}

std::optional<NetworkPolicyPort> np_port(Ctx& c, const YAML::Node& n, const std::string& path) {
  if (!n.IsMap()) {
    c.error(path, n, "must be a mapping");
    return std::nullopt;
  }
  NetworkPolicyPort p;
  auto proto = c.protocol(n, path + ".protocol");
  if (!proto) return std::nullopt;
  p.protocol = *proto;
  YAML::Node pn = Ctx::child(n, "port");
  if (pn.IsDefined()) {
    auto v = int_or_string(c, pn, path + ".port", 1, 65535);
    if (!v) return std::nullopt;
    if (const int64_t* num = std::get_if<int64_t>(&*v)) {
      p.port = static_cast<uint16_t>(*num);
    } else if (const std::string& s = std::get<std::string>(*v); is_iana_svc_name(s)) {
      p.name = s;
    } else {
      c.error(path + ".port", pn,
              fmt::format("{} is neither a port number nor a valid port name (IANA_SVC_NAME)",
                          quote(s)));
      return std::nullopt;
    }
  }
  YAML::Node en = Ctx::child(n, "endPort");
  if (en.IsDefined()) {
    auto v = c.integer(en, path + ".endPort", 1, 65535);
    if (!v) return std::nullopt;
    if (!p.port) {
      c.error(path + ".endPort", en,
              p.name.empty() ? "endPort needs a numeric port"
                             : fmt::format("endPort needs a numeric port, not the named port {}",
                                           quote(p.name)));
      return std::nullopt;
    }
    if (*v < *p.port) {
      c.error(path + ".endPort", en,
              fmt::format("endPort {} is less than port {}", *v, *p.port));
      return std::nullopt;
    }
    p.end_port = static_cast<uint16_t>(*v);
  }
  return p;
}

std::vector<NetworkPolicyRule> np_rules(Ctx& c, const YAML::Node& spec, const char* key,
                                        const char* peers_key) {
  std::vector<NetworkPolicyRule> out;
  std::string base = fmt::format("spec.{}", key);
  YAML::Node rules = c.seq(spec, key, base, false);
  if (!rules.IsDefined()) return out;
  for (size_t i = 0; i < rules.size(); ++i) {
    std::string rp = idx(base, i);
    NetworkPolicyRule rule;
    if (rules[i].IsNull()) {  // "- {}" written as "-": allow everything
      out.push_back(rule);
      continue;
    }
    if (!rules[i].IsMap()) {
      c.error(rp, rules[i], "must be a mapping");
      continue;
    }
    YAML::Node peers = c.seq(rules[i], peers_key, rp + "." + peers_key, false);
    if (peers.IsDefined())
      for (size_t j = 0; j < peers.size(); ++j)
        if (auto p = np_peer(c, peers[j], idx(rp + "." + peers_key, j)))
          rule.peers.push_back(std::move(*p));
    YAML::Node ports = c.seq(rules[i], "ports", rp + ".ports", false);
    if (ports.IsDefined())
      for (size_t j = 0; j < ports.size(); ++j)
        if (auto p = np_port(c, ports[j], idx(rp + ".ports", j))) rule.ports.push_back(*p);
    out.push_back(std::move(rule));
  }
  return out;
}

// spec.policyTypes / spec.types: a list of Ingress, Egress.
std::optional<PolicyTypes> policy_types(Ctx& c, const YAML::Node& spec, const char* key,
                                        const std::string& path) {
  YAML::Node n = c.seq(spec, key, path, false);
  if (!n.IsDefined() || n.size() == 0) return std::nullopt;
  PolicyTypes t;
  for (size_t i = 0; i < n.size(); ++i) {
    auto s = c.scalar(n[i], idx(path, i));
    if (!s) continue;
    if (*s == "Ingress")
      t.ingress = true;
    else if (*s == "Egress")
      t.egress = true;
    else
      c.error(idx(path, i), n[i],
              fmt::format("unknown policy type {} (want Ingress or Egress)", quote(*s)));
  }
  return t;
}

// ---------------------------------------------------------------- GlobalNetworkPolicy

// TCP, UDP, ICMP, SCTP (any case) or a number 1..255.
std::optional<uint8_t> gnp_protocol(Ctx& c, const YAML::Node& parent, const char* key,
                                    const std::string& path) {
  YAML::Node n = Ctx::child(parent, key);
  auto s = c.raw_scalar(n, path, "a protocol name or number");  // Calico: int or string
  if (!s) return std::nullopt;
  if (looks_like_integer(*s)) {
    auto v = c.integer(n, path, 1, 255);
    if (!v) return std::nullopt;
    return static_cast<uint8_t>(*v);
  }
  std::string up;
  for (char ch : *s) up += static_cast<char>(ch >= 'a' && ch <= 'z' ? ch - 32 : ch);
  if (up == "TCP") return uint8_t{6};
  if (up == "UDP") return uint8_t{17};
  if (up == "ICMP") return uint8_t{1};
  if (up == "SCTP") return uint8_t{132};
  c.error(path, n,
          fmt::format("unknown protocol {} (want TCP, UDP, ICMP, SCTP or a number 1..255)",
                      quote(*s)));
  return std::nullopt;
}

bool has_ports(uint8_t proto) { return proto == 6 || proto == 17 || proto == 132; }

// ports / notPorts: 80, "1000:2000" (first <= last), or a port name.
std::vector<PortSpec> gnp_ports(Ctx& c, const YAML::Node& parent, const char* key,
                                const std::string& path, bool named_ok) {
  std::vector<PortSpec> out;
  YAML::Node n = c.seq(parent, key, path, false);
  if (!n.IsDefined()) return out;
  for (size_t i = 0; i < n.size(); ++i) {
    std::string pp = idx(path, i);
    auto s = c.raw_scalar(n[i], pp, "a port, a range or a port name");  // Calico: int or string
    if (!s) continue;
    PortSpec ps;
    size_t colon = s->find(':');
    auto num = [&](std::string_view t, uint16_t& v) {
      if (!looks_like_integer(t) || t[0] == '-') return false;
      unsigned x = 0;
      auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), x);
      if (ec != std::errc() || x > 65535) return false;
      v = static_cast<uint16_t>(x);
      return true;
    };
    if (colon != std::string::npos) {
      std::string_view a = std::string_view(*s).substr(0, colon);
      std::string_view b = std::string_view(*s).substr(colon + 1);
      if (!num(a, ps.first) || !num(b, ps.last)) {
        c.error(pp, n[i],
                fmt::format("{} is not a port range (want first:last, each 0..65535)", quote(*s)));
        continue;
      }
      if (ps.first > ps.last) {
        c.error(pp, n[i], fmt::format("port range {} is the wrong way round", quote(*s)));
        continue;
      }
    } else if (looks_like_integer(*s)) {
      if (!num(*s, ps.first)) {
        c.error(pp, n[i], fmt::format("port {} is out of range 0..65535", clip(*s)));
        continue;
      }
      ps.last = ps.first;
    } else if (is_iana_svc_name(*s)) {
      if (!named_ok) {
        c.error(pp, n[i],
                fmt::format("named port {} is only supported in destination.ports", quote(*s)));
        continue;
      }
      ps.name = *s;
    } else {
      c.error(pp, n[i],
              fmt::format("{} is neither a port, a range first:last nor a port name", quote(*s)));
      continue;
    }
    out.push_back(std::move(ps));
  }
  return out;
}

std::vector<Cidr> gnp_nets(Ctx& c, const YAML::Node& parent, const char* key,
                           const std::string& path) {
  std::vector<Cidr> out;
  YAML::Node n = c.seq(parent, key, path, false);
  if (!n.IsDefined()) return out;
  for (size_t i = 0; i < n.size(); ++i) {
    auto s = c.scalar(n[i], idx(path, i));
    if (!s) continue;
    Cidr cidr;
    switch (parse_cidr(*s, true, cidr)) {
      case CidrParse::Ok:
        out.push_back(cidr);
        break;
      case CidrParse::Ipv6:
        c.error(idx(path, i), n[i], fmt::format("IPv6 network {} is not supported", quote(*s)));
        break;
      case CidrParse::Invalid:
        c.error(idx(path, i), n[i],
                fmt::format("{} is not a CIDR (expected a.b.c.d/n or a.b.c.d)", quote(*s)));
        break;
    }
  }
  return out;
}

void unsupported_keys(Ctx& c, const YAML::Node& m, const std::string& path,
                      std::initializer_list<std::string_view> keys) {
  for (auto k : keys) {
    std::string ks(k);
    if (Ctx::child(m, ks.c_str()).IsDefined())
      c.error(fmt::format("{}.{}", path, ks), Ctx::child(m, ks.c_str()), "is not supported by weir");
  }
}

EntityRule gnp_entity(Ctx& c, const YAML::Node& rule, const char* key, const std::string& path,
                      bool destination) {
  EntityRule e;
  YAML::Node n = c.map(rule, key, path, false);
  if (!n.IsDefined()) return e;
  c.warn_unknown_keys(n, path,
                      {"nets", "notNets", "selector", "notSelector", "namespaceSelector", "ports",
                       "notPorts", "serviceAccounts", "services"});
  unsupported_keys(c, n, path, {"serviceAccounts", "services"});
  e.nets = gnp_nets(c, n, "nets", path + ".nets");
  e.not_nets = gnp_nets(c, n, "notNets", path + ".notNets");
  e.selector = selector_text(c, n, "selector", path + ".selector").value_or("");
  e.not_selector = selector_text(c, n, "notSelector", path + ".notSelector").value_or("");
  e.namespace_selector = selector_text(c, n, "namespaceSelector", path + ".namespaceSelector");
  e.ports = gnp_ports(c, n, "ports", path + ".ports", destination);
  if (Ctx::child(n, "notPorts").IsDefined() && !destination)
    c.error(path + ".notPorts", Ctx::child(n, "notPorts"),
            "is only supported in destination (source.notPorts is not supported by weir)");
  else
    e.not_ports = gnp_ports(c, n, "notPorts", path + ".notPorts", false);
  return e;
}

std::optional<GnpRule> gnp_rule(Ctx& c, const YAML::Node& n, const std::string& path) {
  if (!n.IsMap()) {
    c.error(path, n, "must be a mapping");
    return std::nullopt;
  }
  c.warn_unknown_keys(n, path,
                      {"action", "protocol", "notProtocol", "icmp", "notICMP", "source",
                       "destination", "ipVersion", "http", "metadata"});
  unsupported_keys(c, n, path, {"notICMP", "http"});
  GnpRule r;
  if (auto a = c.str(n, "action", path + ".action", true)) {
    if (*a == "Allow")
      r.action = PolicyAction::Allow;
    else if (*a == "Deny")
      r.action = PolicyAction::Deny;
    else if (*a == "Pass")
      r.action = PolicyAction::Pass;
    else if (*a == "Log")
      r.action = PolicyAction::Log;
    else
      c.error(path + ".action", Ctx::child(n, "action"),
              fmt::format("unknown action {} (want Allow, Deny, Pass or Log)", quote(*a)));
  }
  if (auto v = c.integer(n, "ipVersion", path + ".ipVersion", 4, 6, false); v && *v != 4)
    c.error(path + ".ipVersion", Ctx::child(n, "ipVersion"), "only ipVersion 4 is supported");
  r.protocol = gnp_protocol(c, n, "protocol", path + ".protocol");
  r.not_protocol = gnp_protocol(c, n, "notProtocol", path + ".notProtocol");
  YAML::Node icmp = c.map(n, "icmp", path + ".icmp", false);
  if (icmp.IsDefined()) {
    c.warn_unknown_keys(icmp, path + ".icmp", {"type", "code"});
    if (auto t = c.integer(icmp, "type", path + ".icmp.type", 0, 254, false))
      r.icmp_type = static_cast<uint8_t>(*t);
    if (auto k = c.integer(icmp, "code", path + ".icmp.code", 0, 255, false)) {
      r.icmp_code = static_cast<uint8_t>(*k);
      if (!Ctx::child(icmp, "type").IsDefined())
        c.error(path + ".icmp.code", Ctx::child(icmp, "code"), "icmp.code needs icmp.type");
    }
    if (r.protocol != 1)
      c.error(path + ".icmp", icmp, "icmp needs protocol ICMP");
  }
  r.source = gnp_entity(c, n, "source", path + ".source", false);
  r.destination = gnp_entity(c, n, "destination", path + ".destination", true);
  auto need_ports_proto = [&](const char* side, const EntityRule& e, const char* key) {
    std::string fp = fmt::format("{}.{}.{}", path, side, key);
    bool any = std::string_view(key) == "ports" ? !e.ports.empty() : !e.not_ports.empty();
    if (any && !(r.protocol && has_ports(*r.protocol)))
      c.error(fp, Ctx::child(Ctx::child(n, side), key),
              "ports need protocol TCP, UDP or SCTP on the rule");
  };
  need_ports_proto("source", r.source, "ports");
  need_ports_proto("destination", r.destination, "ports");
  need_ports_proto("destination", r.destination, "notPorts");
  return r;
}

std::vector<GnpRule> gnp_rules(Ctx& c, const YAML::Node& spec, const char* key) {
  std::vector<GnpRule> out;
  std::string base = fmt::format("spec.{}", key);
  YAML::Node rules = c.seq(spec, key, base, false);
  if (!rules.IsDefined()) return out;
  for (size_t i = 0; i < rules.size(); ++i)
    if (auto r = gnp_rule(c, rules[i], idx(base, i))) out.push_back(std::move(*r));
  return out;
}

}  // namespace

// ---------------------------------------------------------------- kinds

std::optional<Namespace> parse_namespace(Ctx& c, const YAML::Node& root, const Source& src) {
  Namespace ns;
  ns.source = src;
  ns.meta = parse_meta(c, root, "Namespace", false);
  if (!ns.meta.name.empty() && !is_dns_label(ns.meta.name))
    c.error("metadata.name", Ctx::child(Ctx::child(root, "metadata"), "name"),
            fmt::format("{} is not a valid namespace name: must be a lowercase RFC 1123 label",
                        quote(ns.meta.name)));
  for (const auto& [k, v] : ns.meta.labels) {
    std::string path = fmt::format("metadata.labels[\"{}\"]", clip(k));
    if (std::string why = check_label_key(k); !why.empty())
      c.error(path, root, fmt::format("invalid label key {}: {}", quote(k), why));
    else if (std::string why2 = check_label_value(v); !why2.empty())
      c.error(path, root, fmt::format("invalid label value {}: {}", quote(v), why2));
  }
  if (c.failed()) return std::nullopt;
  return ns;
}

std::optional<NetworkPolicy> parse_network_policy(Ctx& c, const YAML::Node& root,
                                                  const Source& src) {
  NetworkPolicy np;
  np.source = src;
  np.meta = parse_meta(c, root, "NetworkPolicy", true);
  YAML::Node spec = c.map(root, "spec", "spec", true);
  if (!spec.IsDefined()) return std::nullopt;
  if (auto ps = label_selector(c, spec, "podSelector", "spec.podSelector")) np.pod_selector = *ps;
  np.ingress = np_rules(c, spec, "ingress", "from");
  np.egress = np_rules(c, spec, "egress", "to");
  if (auto t = policy_types(c, spec, "policyTypes", "spec.policyTypes")) {
    np.types = *t;
  } else {
    // Kubernetes defaulting: Ingress always, Egress when there are egress rules.
    np.types.ingress = true;
    np.types.egress = !np.egress.empty();
  }
  if (c.failed()) return std::nullopt;
  return np;
}

std::optional<Tier> parse_tier(Ctx& c, const YAML::Node& root, const Source& src) {
  Tier t;
  t.source = src;
  t.meta = parse_meta(c, root, "Tier", false);
  if (t.meta.name == kKubernetesTierName)
    c.error("metadata.name", Ctx::child(Ctx::child(root, "metadata"), "name"),
            fmt::format("tier name {} is reserved for the Kubernetes NetworkPolicies",
                        quote(t.meta.name)));
  YAML::Node spec = c.map(root, "spec", "spec", false);
  c.warn_unknown_keys(spec, "spec", {"order", "defaultAction"});
  t.order = number(c, spec, "order", "spec.order");
  if (auto a = c.str(spec, "defaultAction", "spec.defaultAction", false)) {
    if (*a == "Deny")
      t.default_action = PolicyAction::Deny;
    else if (*a == "Pass")
      t.default_action = PolicyAction::Pass;
    else
      c.error("spec.defaultAction", Ctx::child(spec, "defaultAction"),
              fmt::format("invalid defaultAction {}: must be Deny or Pass", quote(*a)));
  }
  if (c.failed()) return std::nullopt;
  return t;
}

std::optional<GlobalNetworkPolicy> parse_global_network_policy(Ctx& c, const YAML::Node& root,
                                                               const Source& src) {
  GlobalNetworkPolicy g;
  g.source = src;
  g.meta = parse_meta(c, root, "GlobalNetworkPolicy", false);
  YAML::Node spec = c.map(root, "spec", "spec", true);
  if (!spec.IsDefined()) return std::nullopt;
  c.warn_unknown_keys(spec, "spec",
                      {"tier", "order", "selector", "namespaceSelector", "types", "ingress",
                       "egress", "doNotTrack", "preDNAT", "applyOnForward",
                       "serviceAccountSelector"});
  unsupported_keys(c, spec, "spec", {"doNotTrack", "preDNAT", "serviceAccountSelector"});
  if (auto t = c.str(spec, "tier", "spec.tier", false)) {
    if (t->empty()) {
      // "" = the default tier, as in Calico.
    } else if (!is_dns_subdomain(*t)) {
      c.error("spec.tier", Ctx::child(spec, "tier"),
              fmt::format("{} is not a valid tier name", quote(*t)));
    } else {
      g.tier = *t;
    }
  }
  g.order = number(c, spec, "order", "spec.order");
  g.selector = selector_text(c, spec, "selector", "spec.selector").value_or("");
  g.namespace_selector = selector_text(c, spec, "namespaceSelector", "spec.namespaceSelector");
  g.ingress = gnp_rules(c, spec, "ingress");
  g.egress = gnp_rules(c, spec, "egress");
  if (auto t = policy_types(c, spec, "types", "spec.types")) {
    g.types = *t;
  } else {
    g.types.ingress = true;
    g.types.egress = !g.egress.empty();
  }
  if (c.failed()) return std::nullopt;
  return g;
}

void validate_policy_refs(const Snapshot& snap, ValidationErrors& errors) {
  std::set<std::string> tiers{kDefaultTier};
  for (const Tier& t : snap.tiers) tiers.insert(t.meta.name);
  for (const GlobalNetworkPolicy& g : snap.global_network_policies) {
    if (!tiers.contains(g.tier))
      errors.push_back({g.source.file, fmt::format("GlobalNetworkPolicy {}", g.meta.name),
                        "spec.tier",
                        fmt::format("tier {} does not exist (no Tier resource has that name)",
                                    quote(g.tier)),
                        g.source.line, 0});
  }
}

}  // namespace parse_detail
}  // namespace weir::model
