// PolicyResolver: see policy.h.
//
// Each update():
//   1. pushes namespace and endpoint changes into the LabelIndex (only what changed);
//   2. compiles every policy into endpoint-independent rule templates (selectors become set
//      specs, ports become ranges or named-port sets); takes a LabelIndex reference on each newly
//      needed set and releases the sets no longer referenced;
//   3. recomputes the named-port sets' members;
//   4. rebuilds the EndpointPolicy of the endpoints that may have changed: every endpoint when
//      tiers or policies were added, removed or reordered; else the endpoints whose labels,
//      namespace or ports changed, those of namespaces whose labels changed, and those selected
//      (before or after) by a policy whose rules changed.
// Cost: compiling is O(policies x rules); rebuilding one endpoint is O(policies) selector
// matches plus its rules.
#include "calc/policy.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <tuple>

namespace weir::calc {

namespace {

using model::Protocol;
using pol::Action;
using pol::Direction;

constexpr size_t kIn = 0;   // index of Direction::Ingress
constexpr size_t kOut = 1;  // index of Direction::Egress

Action to_action(model::PolicyAction a) {
  switch (a) {
    case model::PolicyAction::Allow: return Action::Allow;
    case model::PolicyAction::Deny: return Action::Deny;
    case model::PolicyAction::Pass: return Action::Pass;
    case model::PolicyAction::Log: return Action::Log;
  }
  return Action::Deny;
}

std::string proto_name(uint8_t p) {
  switch (p) {
    case 1: return "ICMP";
    case 6: return "TCP";
    case 17: return "UDP";
    case 132: return "SCTP";
    default: return std::to_string(p);
  }
}

SetId named_port_set_id(const std::string& name, uint8_t proto) {
  return model::fnv1a64("named-port:" + name + "/" + proto_name(proto));
}

// A text value for the description: double quotes, with '"' and '\' escaped.
std::string q(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
  return out;
}

// ---------------------------------------------------------------- compiled form

// What a rule's description shows beyond the match: the selectors the sets came from.
struct Origin {
  std::string field;  // "original_src_selector", ...
  std::string text;
  bool operator==(const Origin&) const = default;
};

struct RuleTmpl {
  Action action = Action::Deny;
  pol::Match match;
  std::string index;  // "3" (GNP) or "3.1.0" (NetworkPolicy rule.peer.protocol group)
  std::vector<Origin> origins;
  // Kubernetes ingress named ports, resolved against the endpoint's own ports (protocol =
  // match.protocol). A rule whose ports all fail to resolve is dropped.
  std::vector<std::string> own_named_ports;
  bool operator==(const RuleTmpl&) const = default;
};

struct CompiledPolicy {
  std::string name;  // IR name
  std::optional<double> order;
  // Which endpoints it applies to.
  bool k8s = false;
  std::string ns;                     // k8s: the policy's namespace
  model::Selector selector;           // k8s: podSelector; GNP: spec.selector
  std::optional<model::Selector> ns_selector;  // GNP: spec.namespaceSelector
  model::PolicyTypes types;
  std::vector<RuleTmpl> rules[2];
  bool operator==(const CompiledPolicy&) const = default;
};

struct CompiledTier {
  std::string name;
  std::optional<double> order;
  Action default_action = Action::Deny;
  std::vector<CompiledPolicy> policies;  // sorted
  bool operator==(const CompiledTier&) const = default;
};

// Sort key: ordered ones first by order, then the unordered; ties by name.
template <typename T>
bool order_less(const T& a, const T& b) {
  if (a.order.has_value() != b.order.has_value()) return a.order.has_value();
  if (a.order && *a.order != *b.order) return *a.order < *b.order;
  return a.name < b.name;
}

struct NamedPortSpec {
  std::string name;
  uint8_t proto = 6;
};

// Collects what the compiled rules reference.
struct Refs {
  std::map<SetId, SetSpec> sets;
  std::map<SetId, NamedPortSpec> named_ports;

  SetId add(SetSpec spec) {
    SetId id = spec.id();
    sets.emplace(id, std::move(spec));
    return id;
  }
  SetId add_named(const std::string& name, uint8_t proto) {
    SetId id = named_port_set_id(name, proto);
    named_ports.emplace(id, NamedPortSpec{name, proto});
    return id;
  }
};

// A selector that matches nothing: what a (validated, so impossible) bad selector becomes, so
// that an error can only narrow a rule, never widen it.
model::Selector none_selector() {
  auto s = model::parse_selector("!all()");
  return s.ok() ? *s : model::Selector();
}

model::Selector sel(const std::string& text) {
  auto s = model::parse_selector(text);
  return s.ok() ? *s : none_selector();
}

std::optional<model::Selector> k8s_selector(const model::LabelSelector& ls) {
  model::Labels ml(ls.match_labels.begin(), ls.match_labels.end());
  auto s = model::from_label_selector(ml, ls.match_expressions);
  if (!s.ok()) return std::nullopt;  // the model validated it: cannot happen
  return *s;
}

model::Selector namespace_name_selector(const std::string& ns) {
  return sel(fmt::format("{} == \"{}\"", kNamespaceNameLabel, ns));
}

// ---------------------------------------------------------------- NetworkPolicy

struct PeerMatch {
  std::vector<model::Cidr> nets, not_nets;
  std::vector<SetId> sets;
  std::vector<Origin> origins;
};

struct PortGroup {
  std::optional<uint8_t> protocol;  // nullopt: no ports listed (any protocol)
  bool all_ports = false;           // a port entry without port: every port of the protocol
  std::vector<pol::PortRange> ranges;
  std::vector<std::string> names;
};

CompiledPolicy compile_np(const model::NetworkPolicy& np, Refs& refs) {
  CompiledPolicy cp;
  cp.name = fmt::format("{}/knp.default.{}", np.meta.ns, np.meta.name);
  cp.k8s = true;
  cp.ns = np.meta.ns;
  cp.selector = k8s_selector(np.pod_selector).value_or(none_selector());
  cp.types = np.types;
  for (size_t d : {kIn, kOut}) {
    bool on = d == kIn ? np.types.ingress : np.types.egress;
    if (!on) continue;
    const auto& rules = d == kIn ? np.ingress : np.egress;
    const char* side = d == kIn ? "src" : "dst";
    for (size_t i = 0; i < rules.size(); ++i) {
      const model::NetworkPolicyRule& rule = rules[i];
      // Peers.
      std::vector<PeerMatch> peers;
      if (rule.peers.empty()) peers.emplace_back();
      for (const model::NetworkPolicyPeer& p : rule.peers) {
        if (p.ipv6_only) continue;
        PeerMatch pm;
        if (p.ip_block) {
          pm.nets.push_back(p.ip_block->cidr);
          pm.not_nets = p.ip_block->except;
        } else {
          SetSpec spec;
          spec.selector = p.pod_selector ? k8s_selector(*p.pod_selector).value_or(none_selector())
                                         : model::Selector();
          spec.ns_selector = p.namespace_selector
                                 ? k8s_selector(*p.namespace_selector).value_or(none_selector())
                                 : namespace_name_selector(np.meta.ns);
          pm.sets.push_back(refs.add(spec));
          pm.origins.push_back({fmt::format("original_{}_selector", side),
                                spec.selector.canonical()});
          pm.origins.push_back({fmt::format("original_{}_namespace_selector", side),
                                spec.ns_selector->canonical()});
        }
        peers.push_back(std::move(pm));
      }
      // Ports, grouped by protocol (one IR rule matches one protocol).
      std::vector<PortGroup> groups;
      if (rule.ports.empty()) groups.emplace_back();
      for (const model::NetworkPolicyPort& port : rule.ports) {
        uint8_t proto = model::ip_proto(port.protocol);
        auto g = std::find_if(groups.begin(), groups.end(),
                              [&](const PortGroup& x) { return x.protocol == proto; });
        if (g == groups.end()) {
          groups.push_back(PortGroup{proto, false, {}, {}});
          g = groups.end() - 1;
        }
        if (port.port)
          g->ranges.push_back({*port.port, port.end_port.value_or(*port.port)});
        else if (!port.name.empty())
          g->names.push_back(port.name);
        else
          g->all_ports = true;
      }
      for (size_t j = 0; j < peers.size(); ++j) {
        for (size_t k = 0; k < groups.size(); ++k) {
          const PeerMatch& pm = peers[j];
          const PortGroup& g = groups[k];
          RuleTmpl t;
          t.action = Action::Allow;
          t.index = fmt::format("{}.{}.{}", i, j, k);
          t.origins = pm.origins;
          pol::Match& m = t.match;
          m.protocol = g.protocol;
          (d == kIn ? m.src_nets : m.dst_nets) = pm.nets;
          (d == kIn ? m.src_not_nets : m.dst_not_nets) = pm.not_nets;
          (d == kIn ? m.src_sets : m.dst_sets) = pm.sets;
          if (!g.all_ports) {
            m.dst_ports = g.ranges;
            if (d == kIn) {
              t.own_named_ports = g.names;
            } else {
              for (const std::string& n : g.names)
                m.dst_named_port_sets.push_back(refs.add_named(n, *g.protocol));
            }
          }
          cp.rules[d].push_back(std::move(t));
        }
      }
    }
  }
  return cp;
}

// ---------------------------------------------------------------- GlobalNetworkPolicy

void compile_entity(const model::EntityRule& e, bool src, std::optional<uint8_t> proto,
                    RuleTmpl& t, Refs& refs) {
  pol::Match& m = t.match;
  const char* side = src ? "src" : "dst";
  (src ? m.src_nets : m.dst_nets) = e.nets;
  (src ? m.src_not_nets : m.dst_not_nets) = e.not_nets;
  if (!e.selector.empty() || e.namespace_selector) {
    SetSpec spec;
    if (!e.selector.empty()) spec.selector = sel(e.selector);
    if (e.namespace_selector)
      spec.ns_selector = sel(*e.namespace_selector);
    (src ? m.src_sets : m.dst_sets).push_back(refs.add(spec));
    t.origins.push_back({fmt::format("original_{}_selector", side), spec.selector.canonical()});
    if (spec.ns_selector)
      t.origins.push_back(
          {fmt::format("original_{}_namespace_selector", side), spec.ns_selector->canonical()});
  }
  if (!e.not_selector.empty()) {
    SetSpec spec;
    spec.selector = sel(e.not_selector);
    (src ? m.src_not_sets : m.dst_not_sets).push_back(refs.add(spec));
    t.origins.push_back(
        {fmt::format("original_not_{}_selector", side), spec.selector.canonical()});
  }
  for (const model::PortSpec& p : e.ports) {
    if (!p.name.empty()) {
      if (!src && proto) m.dst_named_port_sets.push_back(refs.add_named(p.name, *proto));
      continue;  // named source ports are rejected by the model
    }
    (src ? m.src_ports : m.dst_ports).push_back({p.first, p.last});
  }
  if (!src)
    for (const model::PortSpec& p : e.not_ports)
      if (p.name.empty()) m.dst_not_ports.push_back({p.first, p.last});
}

CompiledPolicy compile_gnp(const model::GlobalNetworkPolicy& g, Refs& refs) {
  CompiledPolicy cp;
  cp.name = g.meta.name;
  cp.order = g.order;
  cp.selector = sel(g.selector);
  if (g.namespace_selector)
    cp.ns_selector = sel(*g.namespace_selector);
  cp.types = g.types;
  for (size_t d : {kIn, kOut}) {
    bool on = d == kIn ? g.types.ingress : g.types.egress;
    if (!on) continue;
    const auto& rules = d == kIn ? g.ingress : g.egress;
    for (size_t i = 0; i < rules.size(); ++i) {
      const model::GnpRule& r = rules[i];
      RuleTmpl t;
      t.action = to_action(r.action);
      t.index = std::to_string(i);
      t.match.protocol = r.protocol;
      t.match.not_protocol = r.not_protocol;
      t.match.icmp_type = r.icmp_type;
      t.match.icmp_code = r.icmp_code;
      compile_entity(r.source, true, r.protocol, t, refs);
      compile_entity(r.destination, false, r.protocol, t, refs);
      cp.rules[d].push_back(std::move(t));
    }
  }
  return cp;
}

// ---------------------------------------------------------------- descriptions and ids

void describe_proto(std::string& out, const char* field, uint8_t p) {
  switch (p) {
    case 1: out += fmt::format(" {}:{{name:\"icmp\"}}", field); break;
    case 6: out += fmt::format(" {}:{{name:\"tcp\"}}", field); break;
    case 17: out += fmt::format(" {}:{{name:\"udp\"}}", field); break;
    case 132: out += fmt::format(" {}:{{name:\"sctp\"}}", field); break;
    default: out += fmt::format(" {}:{{number:{}}}", field, p); break;
  }
}

std::string describe(Action a, const pol::Match& m, const std::vector<Origin>& origins) {
  std::string out = fmt::format("action:{}", q(pol::to_string(a)));
  if (m.protocol) describe_proto(out, "protocol", *m.protocol);
  if (m.not_protocol) describe_proto(out, "not_protocol", *m.not_protocol);
  auto nets = [&](const char* f, const std::vector<model::Cidr>& v) {
    for (const auto& c : v) out += fmt::format(" {}:{}", f, q(c.str()));
  };
  auto ports = [&](const char* f, const std::vector<pol::PortRange>& v) {
    for (const auto& r : v) out += fmt::format(" {}:{{first:{} last:{}}}", f, r.first, r.last);
  };
  auto sets = [&](const char* f, const std::vector<SetId>& v) {
    for (SetId s : v) out += fmt::format(" {}:{}", f, q(model::format_set_id(s)));
  };
  nets("src_net", m.src_nets);
  nets("not_src_net", m.src_not_nets);
  ports("src_ports", m.src_ports);
  nets("dst_net", m.dst_nets);
  nets("not_dst_net", m.dst_not_nets);
  ports("dst_ports", m.dst_ports);
  ports("not_dst_ports", m.dst_not_ports);
  if (m.icmp_type) out += fmt::format(" icmp_type:{}", *m.icmp_type);
  if (m.icmp_code) out += fmt::format(" icmp_code:{}", *m.icmp_code);
  sets("src_ip_set_ids", m.src_sets);
  sets("not_src_ip_set_ids", m.src_not_sets);
  sets("dst_ip_set_ids", m.dst_sets);
  sets("not_dst_ip_set_ids", m.dst_not_sets);
  sets("dst_named_port_ip_set_ids", m.dst_named_port_sets);
  for (const Origin& o : origins) out += fmt::format(" {}:{}", o.field, q(o.text));
  return out;
}

uint64_t rule_id(const std::string& tier, const std::string& policy, Direction d,
                 const std::string& index, const std::string& description) {
  std::string key = tier;
  key += '\0';
  key += policy;
  key += '\0';
  key += pol::to_string(d);
  key += '\0';
  key += index;
  key += '\0';
  key += description;
  uint64_t id = model::fnv1a64(key);
  // 0 is "no rule"; the top 2^16 values name tier defaults (pol::tier_default_rule_id).
  if (id >= pol::kTierDefaultRuleIdMin) id -= pol::kTierDefaultRuleIdMin;
  return id == 0 ? 1 : id;
}

}  // namespace

// ---------------------------------------------------------------- state

struct PolicyResolver::State {
  struct Ep {
    std::string ns;
    model::Labels labels;
    std::vector<model::Ipv4> ips;
    std::vector<model::WorkloadPort> ports;
    bool same_policy_inputs(const Ep& o) const {
      return ns == o.ns && labels == o.labels &&
             std::equal(ports.begin(), ports.end(), o.ports.begin(), o.ports.end(),
                        [](const model::WorkloadPort& a, const model::WorkloadPort& b) {
                          return a.name == b.name && a.protocol == b.protocol && a.port == b.port;
                        });
    }
  };
  struct Policies {
    pol::EndpointPolicy dir[2];
  };

  std::map<std::string, Ep> eps;
  std::map<std::string, model::Labels> ns_labels;  // declared namespaces, as given
  std::vector<CompiledTier> tiers;          // global tiers in order, then "kubernetes"
  bool compiled_once = false;
  std::map<SetId, SetSpec> held;  // LabelIndex sets we hold one reference on
  std::map<SetId, NamedPortSpec> np_specs;
  std::map<SetId, std::set<PortMember>> np_members;    // live named-port sets
  std::map<SetId, std::set<PortMember>> np_published;  // as last reported
  std::map<std::string, Policies> policies;

  model::Labels full_ns_labels(const std::string& ns) const {
    model::Labels l;
    if (auto it = ns_labels.find(ns); it != ns_labels.end()) l = it->second;
    l.insert_or_assign(kNamespaceNameLabel, ns);
    return l;
  }

  // The policy selects the endpoint (either direction).
  static bool selects(const CompiledPolicy& cp, const Ep& ep, const model::Labels& nsl) {
    if (cp.k8s) return cp.ns == ep.ns && cp.selector.matches(ep.labels);
    if (!cp.selector.matches(ep.labels)) return false;
    return !cp.ns_selector || (!ep.ns.empty() && cp.ns_selector->matches(nsl));
  }

  pol::EndpointPolicy build(const std::string& key, const Ep& ep, Direction d) const;

  // The steps of PolicyResolver::update, in order.
  // Namespaces as the snapshot declares them, into `index`; returns the changed names.
  std::set<std::string> update_namespaces(const model::Snapshot& snap, LabelIndex& index);
  // Endpoints, into `index`; adds to `dirty` those whose policy inputs changed (or are new) and
  // to `removed` those gone.
  void update_endpoints(const model::Snapshot& snap, LabelIndex& index,
                        std::set<std::string>& dirty, std::set<std::string>& removed);
  // True when every endpoint needs rebuilding for `now` (tiers or policies added, removed or
  // reordered); else adds to `dirty` the endpoints a changed policy selects, before or after.
  bool mark_dirty(const std::vector<CompiledTier>& now, std::set<std::string>& dirty) const;
  // Holds a reference on each of `sets` in `index`, then releases those no longer needed.
  void hold_sets(const std::map<SetId, SetSpec>& sets, LabelIndex& index);
  // The named-port sets and their members (endpoint IP, protocol, port).
  void update_named_ports(std::map<SetId, NamedPortSpec> specs);
  // Recomputes the endpoint's policies; true when they changed.
  bool rebuild(const std::string& key, const Ep& ep);
};

namespace {

// Same tiers with the same policies in the same order (contents may differ).
bool same_shape(const std::vector<CompiledTier>& a, const std::vector<CompiledTier>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].name != b[i].name || a[i].order != b[i].order ||
        a[i].default_action != b[i].default_action ||
        a[i].policies.size() != b[i].policies.size())
      return false;
    for (size_t j = 0; j < a[i].policies.size(); ++j)
      if (a[i].policies[j].name != b[i].policies[j].name) return false;
  }
  return true;
}

}  // namespace

pol::EndpointPolicy PolicyResolver::State::build(const std::string& /*key*/, const Ep& ep,
                                                 Direction d) const {
  size_t di = d == Direction::Ingress ? kIn : kOut;
  pol::EndpointPolicy out;
  out.direction = d;
  model::Labels nsl = full_ns_labels(ep.ns);
  for (const CompiledTier& ct : tiers) {
    pol::Tier tier;
    tier.name = ct.name;
    tier.default_action = ct.default_action;
    for (const CompiledPolicy& cp : ct.policies) {
      if (!(di == kIn ? cp.types.ingress : cp.types.egress)) continue;
      if (!selects(cp, ep, nsl)) continue;
      pol::Policy p;
      p.name = cp.name;
      for (const RuleTmpl& t : cp.rules[di]) {
        pol::Rule r;
        r.action = t.action;
        r.match = t.match;
        if (!t.own_named_ports.empty()) {
          for (const std::string& n : t.own_named_ports)
            for (const model::WorkloadPort& wp : ep.ports)
              if (wp.name == n && t.match.protocol == model::ip_proto(wp.protocol))
                r.match.dst_ports.push_back({wp.port, wp.port});
          if (r.match.dst_ports.empty()) continue;  // the pod has none of the named ports
          std::sort(r.match.dst_ports.begin(), r.match.dst_ports.end());
          r.match.dst_ports.erase(std::unique(r.match.dst_ports.begin(), r.match.dst_ports.end()),
                                  r.match.dst_ports.end());
        }
        r.description = describe(r.action, r.match, t.origins);
        r.id = rule_id(ct.name, cp.name, d, t.index, r.description);
        p.rules.push_back(std::move(r));
      }
      tier.policies.push_back(std::move(p));
    }
    if (!tier.policies.empty()) out.tiers.push_back(std::move(tier));
  }
  return out;
}

namespace {

// Global tiers in order (each with its policies in order; empty tiers dropped), then the
// "kubernetes" tier of the NetworkPolicies sorted by name. Selectors and named ports the rules
// need are collected in `refs`.
std::vector<CompiledTier> compile_tiers(const model::Snapshot& snap, Refs& refs) {
  std::vector<CompiledTier> tiers;
  std::map<std::string, CompiledTier> by_name;
  CompiledTier def;
  def.name = model::kDefaultTier;
  def.order = model::kDefaultTierOrder;
  by_name[def.name] = def;
  for (const model::Tier& t : snap.tiers) {
    CompiledTier ct;
    ct.name = t.meta.name;
    ct.order = t.order;
    ct.default_action = to_action(t.default_action);
    by_name[ct.name] = ct;
  }
  for (const model::GlobalNetworkPolicy& g : snap.global_network_policies) {
    auto it = by_name.find(g.tier);
    if (it == by_name.end()) continue;  // validate_snapshot rejects this
    it->second.policies.push_back(compile_gnp(g, refs));
  }
  for (auto& [name, ct] : by_name) {
    std::sort(ct.policies.begin(), ct.policies.end(), order_less<CompiledPolicy>);
    if (!ct.policies.empty()) tiers.push_back(std::move(ct));
  }
  std::sort(tiers.begin(), tiers.end(), order_less<CompiledTier>);
  CompiledTier k8s;
  k8s.name = kKubernetesTier;
  for (const model::NetworkPolicy& np : snap.network_policies)
    k8s.policies.push_back(compile_np(np, refs));
  std::sort(k8s.policies.begin(), k8s.policies.end(),
            [](const CompiledPolicy& a, const CompiledPolicy& b) { return a.name < b.name; });
  if (!k8s.policies.empty()) tiers.push_back(std::move(k8s));
  return tiers;
}

}  // namespace

std::set<std::string> PolicyResolver::State::update_namespaces(const model::Snapshot& snap,
                                                               LabelIndex& index) {
  std::map<std::string, model::Labels> fresh;
  for (const model::Namespace& n : snap.namespaces)
    fresh[n.meta.name] = model::Labels(n.meta.labels.begin(), n.meta.labels.end());
  std::set<std::string> changed;
  for (const auto& [name, labels] : ns_labels)
    if (!fresh.contains(name)) {
      (void)index.remove_namespace(name);
      changed.insert(name);
    }
  for (const auto& [name, labels] : fresh) {
    auto it = ns_labels.find(name);
    if (it == ns_labels.end() || it->second != labels) {
      index.update_namespace(name, labels);
      changed.insert(name);
    }
  }
  ns_labels = std::move(fresh);
  return changed;
}

void PolicyResolver::State::update_endpoints(const model::Snapshot& snap, LabelIndex& index,
                                             std::set<std::string>& dirty,
                                             std::set<std::string>& removed) {
  std::map<std::string, Ep> fresh;
  for (const model::WorkloadEndpoint& w : snap.workload_endpoints)
    fresh[w.key()] = Ep{w.meta.ns, model::Labels(w.meta.labels.begin(), w.meta.labels.end()),
                        w.ips, w.ports};
  for (const auto& [key, ep] : eps)
    if (!fresh.contains(key)) {
      (void)index.remove_endpoint(key);
      removed.insert(key);
    }
  for (const auto& [key, ep] : fresh) {
    auto it = eps.find(key);
    bool is_new = it == eps.end();
    if (is_new || it->second.ns != ep.ns || it->second.labels != ep.labels ||
        it->second.ips != ep.ips)
      index.update_endpoint(key, ep.labels, ep.ips, ep.ns);
    if (is_new || !it->second.same_policy_inputs(ep)) dirty.insert(key);
  }
  eps = std::move(fresh);
}

bool PolicyResolver::State::mark_dirty(const std::vector<CompiledTier>& now,
                                       std::set<std::string>& dirty) const {
  if (!compiled_once || !same_shape(now, tiers)) return true;
  for (size_t i = 0; i < now.size(); ++i)
    for (size_t j = 0; j < now[i].policies.size(); ++j) {
      const CompiledPolicy& after = now[i].policies[j];
      const CompiledPolicy& before = tiers[i].policies[j];
      if (after == before) continue;
      for (const auto& [key, ep] : eps) {
        model::Labels nsl = full_ns_labels(ep.ns);
        if (selects(after, ep, nsl) || selects(before, ep, nsl)) dirty.insert(key);
      }
    }
  return false;
}

void PolicyResolver::State::hold_sets(const std::map<SetId, SetSpec>& sets, LabelIndex& index) {
  for (const auto& [id, spec] : sets) {
    if (held.contains(id)) continue;
    if (index.add_set(spec).ok()) held.emplace(id, spec);
    // else: a 64-bit id collision with another set; the rule matches what that set holds.
  }
  for (auto it = held.begin(); it != held.end();) {
    if (sets.contains(it->first)) {
      ++it;
      continue;
    }
    (void)index.release_selector(it->first);
    it = held.erase(it);
  }
}

void PolicyResolver::State::update_named_ports(std::map<SetId, NamedPortSpec> specs) {
  np_specs = std::move(specs);
  np_members.clear();
  for (const auto& [id, spec] : np_specs) np_members[id];
  if (np_specs.empty()) return;
  for (const auto& [key, ep] : eps)
    for (const model::WorkloadPort& wp : ep.ports) {
      SetId id = named_port_set_id(wp.name, model::ip_proto(wp.protocol));
      auto it = np_members.find(id);
      if (it == np_members.end()) continue;
      for (model::Ipv4 ip : ep.ips)
        it->second.insert(PortMember{ip, model::ip_proto(wp.protocol), wp.port});
    }
}

bool PolicyResolver::State::rebuild(const std::string& key, const Ep& ep) {
  Policies p;
  p.dir[kIn] = build(key, ep, Direction::Ingress);
  p.dir[kOut] = build(key, ep, Direction::Egress);
  auto it = policies.find(key);
  if (it != policies.end() && it->second.dir[kIn] == p.dir[kIn] &&
      it->second.dir[kOut] == p.dir[kOut])
    return false;
  policies[key] = std::move(p);
  return true;
}

// ---------------------------------------------------------------- update

void PolicyResolver::update(const model::Snapshot& snap) {
  // Copies of a resolver share state_ until one of them changes it (value semantics).
  if (!state_)
    state_ = std::make_shared<State>();
  else if (state_.use_count() > 1)
    state_ = std::make_shared<State>(*state_);
  State& st = *state_;
  changed_.clear();

  // 1. Namespaces and endpoints, into the LabelIndex.
  std::set<std::string> ns_changed = st.update_namespaces(snap, index_);
  std::set<std::string> ep_dirty;  // endpoints whose policy inputs changed (or new)
  std::set<std::string> removed;
  st.update_endpoints(snap, index_, ep_dirty, removed);

  // 2. Compile. Which endpoints to rebuild: all when tiers or policies were added, removed or
  // reordered; else those selected (before or after) by a policy whose content changed.
  Refs refs;
  std::vector<CompiledTier> tiers = compile_tiers(snap, refs);
  bool all_dirty = st.mark_dirty(tiers, ep_dirty);
  st.tiers = std::move(tiers);
  st.compiled_once = true;
  // Sets: reference the new ones first, then release the old (no delete/re-create churn).
  st.hold_sets(refs.sets, index_);

  // 3. Named-port sets.
  st.update_named_ports(std::move(refs.named_ports));

  // 4. Endpoint policies.
  for (const std::string& key : removed) {
    st.policies.erase(key);
    changed_.push_back(key);
  }
  for (const auto& [key, ep] : st.eps) {
    bool dirty = all_dirty || ep_dirty.contains(key) || ns_changed.contains(ep.ns);
    if (dirty && st.rebuild(key, ep)) changed_.push_back(key);
  }
  std::sort(changed_.begin(), changed_.end());
}

// ---------------------------------------------------------------- queries

std::vector<std::string> PolicyResolver::endpoint_keys() const {
  std::vector<std::string> out;
  if (!state_) return out;
  for (const auto& [key, ep] : state_->eps) out.push_back(key);
  return out;
}

const pol::EndpointPolicy* PolicyResolver::policy(const std::string& wep_key,
                                                  pol::Direction d) const {
  if (!state_) return nullptr;
  auto it = state_->policies.find(wep_key);
  if (it == state_->policies.end()) return nullptr;
  return &it->second.dir[d == Direction::Ingress ? kIn : kOut];
}

std::vector<IpSetDelta> PolicyResolver::take_ipset_changes() {
  std::vector<IpSetDelta> out;
  for (const SetChange& c : index_.take_changes()) {
    IpSetDelta d;
    d.id = c.id;
    d.created = c.created;
    d.deleted = c.deleted;
    for (model::Ipv4 ip : c.added) d.add_nets.push_back(model::Cidr{ip, 32});
    for (model::Ipv4 ip : c.removed) d.del_nets.push_back(model::Cidr{ip, 32});
    out.push_back(std::move(d));
  }
  if (state_) {
    if (state_.use_count() > 1) state_ = std::make_shared<State>(*state_);
    State& st = *state_;
    std::set<SetId> ids;
    for (const auto& [id, m] : st.np_members) ids.insert(id);
    for (const auto& [id, m] : st.np_published) ids.insert(id);
    for (SetId id : ids) {
      auto live = st.np_members.find(id);
      auto pub = st.np_published.find(id);
      IpSetDelta d;
      d.id = id;
      if (live != st.np_members.end() && pub == st.np_published.end()) {
        d.created = true;
        d.add_ports.assign(live->second.begin(), live->second.end());
        st.np_published[id] = live->second;
      } else if (live == st.np_members.end()) {
        d.deleted = true;
        d.del_ports.assign(pub->second.begin(), pub->second.end());
        st.np_published.erase(pub);
      } else {
        std::set_difference(live->second.begin(), live->second.end(), pub->second.begin(),
                            pub->second.end(), std::back_inserter(d.add_ports));
        std::set_difference(pub->second.begin(), pub->second.end(), live->second.begin(),
                            live->second.end(), std::back_inserter(d.del_ports));
        if (d.add_ports.empty() && d.del_ports.empty()) continue;
        pub->second = live->second;
      }
      out.push_back(std::move(d));
    }
  }
  std::sort(out.begin(), out.end(),
            [](const IpSetDelta& a, const IpSetDelta& b) { return a.id < b.id; });
  return out;
}

pol::IpSetTable PolicyResolver::ipset_table() const {
  pol::IpSetTable t;
  for (SetId id : index_.set_ids()) {
    for (model::Ipv4 ip : index_.members(id)) t.add(id, model::Cidr{ip, 32});
  }
  if (state_)
    for (const auto& [id, members] : state_->np_members)
      for (const PortMember& m : members) t.add_port(id, m.addr, m.proto, m.port);
  return t;
}

std::string PolicyResolver::set_description(SetId id) const {
  if (auto spec = index_.spec(id)) return spec->str();
  if (state_) {
    auto it = state_->np_specs.find(id);
    if (it != state_->np_specs.end())
      return fmt::format("named port \"{}\"/{}", it->second.name, proto_name(it->second.proto));
  }
  return {};
}

}  // namespace weir::calc
