// Reference semantics of the policy IR (see policy_ir.h). Deliberately plain: it is what the
// compiled eBPF is checked against.
#include "calc/policy_ir.h"

#include <algorithm>

namespace weir::calc::pol {

std::string_view to_string(Action a) {
  switch (a) {
    case Action::Allow: return "allow";
    case Action::Deny: return "deny";
    case Action::Pass: return "pass";
    case Action::Log: return "log";
  }
  return "?";
}

std::string_view to_string(Direction d) { return d == Direction::Ingress ? "ingress" : "egress"; }

EndpointPolicy fail_closed_policy(Direction d) {
  EndpointPolicy p;
  p.direction = d;
  Tier t;
  t.name = "weir-fail-closed";
  t.default_action = Action::Deny;
  t.policies.push_back(Policy{"weir-fail-closed.deny-all", {}});
  p.tiers.push_back(std::move(t));
  return p;
}

size_t EndpointPolicy::rule_count() const {
  size_t n = 0;
  for (const Tier& t : tiers)
    for (const Policy& p : t.policies) n += p.rules.size();
  return n;
}

std::string format_rule_id(uint64_t id) {
  static constexpr char kDigits[] =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::string s(16, '0');
  for (int i = 15; i >= 0; --i) {
    s[static_cast<size_t>(i)] = kDigits[id % 62];
    id /= 62;
  }
  return s;
}

namespace {

bool in_net(model::Cidr n, model::Ipv4 a) { return n.contains(a); }

bool in_any_net(const std::vector<model::Cidr>& nets, model::Ipv4 a) {
  return std::any_of(nets.begin(), nets.end(), [&](model::Cidr n) { return in_net(n, a); });
}

bool in_any_range(const std::vector<PortRange>& r, uint16_t port) {
  return std::any_of(r.begin(), r.end(),
                     [&](PortRange pr) { return pr.first <= port && port <= pr.last; });
}

bool has_ports(uint8_t proto) { return proto == 6 || proto == 17; }

}  // namespace

void IpSetTable::add(SetId id, model::Cidr net) { nets_[id].insert(net); }

void IpSetTable::add_port(SetId id, model::Ipv4 addr, uint8_t proto, uint16_t port) {
  ports_[id].insert({addr.value, proto, port});
}

bool IpSetTable::contains(SetId id, model::Ipv4 addr) const {
  auto it = nets_.find(id);
  if (it == nets_.end()) return false;
  return std::any_of(it->second.begin(), it->second.end(),
                     [&](model::Cidr n) { return in_net(n, addr); });
}

bool IpSetTable::contains(SetId id, model::Ipv4 addr, uint8_t proto, uint16_t port) const {
  if (contains(id, addr)) return true;
  auto it = ports_.find(id);
  return it != ports_.end() && it->second.contains({addr.value, proto, port});
}

bool matches(const Match& m, const Packet& p, const IpSetTable& sets) {
  if (m.protocol && *m.protocol != p.proto) return false;
  if (m.not_protocol && *m.not_protocol == p.proto) return false;

  if (!m.src_nets.empty() && !in_any_net(m.src_nets, p.saddr)) return false;
  if (in_any_net(m.src_not_nets, p.saddr)) return false;
  for (SetId s : m.src_sets)
    if (!sets.contains(s, p.saddr)) return false;
  for (SetId s : m.src_not_sets)
    if (sets.contains(s, p.saddr)) return false;
  if (!m.src_ports.empty() && (!has_ports(p.proto) || !in_any_range(m.src_ports, p.sport)))
    return false;

  if (!m.dst_nets.empty() && !in_any_net(m.dst_nets, p.daddr)) return false;
  if (in_any_net(m.dst_not_nets, p.daddr)) return false;
  for (SetId s : m.dst_sets)
    if (!sets.contains(s, p.daddr)) return false;
  for (SetId s : m.dst_not_sets)
    if (sets.contains(s, p.daddr)) return false;
  if (!m.dst_ports.empty() || !m.dst_named_port_sets.empty()) {
    if (!has_ports(p.proto)) return false;
    bool hit = in_any_range(m.dst_ports, p.dport) ||
               std::any_of(m.dst_named_port_sets.begin(), m.dst_named_port_sets.end(),
                           [&](SetId s) { return sets.contains(s, p.daddr, p.proto, p.dport); });
    if (!hit) return false;
  }
  if (!m.dst_not_ports.empty() && (!has_ports(p.proto) || in_any_range(m.dst_not_ports, p.dport)))
    return false;

  if (m.icmp_type) {
    if (p.proto != 1 || p.icmp_type != *m.icmp_type) return false;
    if (m.icmp_code && p.icmp_code != *m.icmp_code) return false;
  }
  return true;
}

Decision evaluate(const EndpointPolicy& policy, const Packet& p, const IpSetTable& sets) {
  Decision d;
  for (size_t ti = 0; ti < policy.tiers.size(); ti++) {
    const Tier& tier = policy.tiers[ti];
    bool passed = false;
    for (const Policy& pol : tier.policies) {
      for (const Rule& r : pol.rules) {
        if (!matches(r.match, p, sets)) continue;
        switch (r.action) {
          case Action::Log:
            d.logged.push_back(r.id);
            continue;
          case Action::Allow:
            d.allow = true;
            d.rule_id = r.id;
            return d;
          case Action::Deny:
            d.allow = false;
            d.rule_id = r.id;
            return d;
          case Action::Pass:
            passed = true;
            break;
        }
        break;  // Pass: leave the rule loop
      }
      if (passed) break;
    }
    if (passed) continue;
    // No rule decided: the tier's default.
    d.allow = tier.default_action == Action::Allow;
    if (tier.default_action == Action::Pass) continue;
    d.rule_id = tier_default_rule_id(ti);
    return d;
  }
  d.allow = true;
  d.rule_id = 0;
  return d;
}

namespace {

uint32_t match_type(const Match& m) {
  const bool l3 = !m.src_nets.empty() || !m.src_not_nets.empty() || !m.src_sets.empty() ||
                  !m.src_not_sets.empty() || !m.dst_nets.empty() || !m.dst_not_nets.empty() ||
                  !m.dst_sets.empty() || !m.dst_not_sets.empty();
  const bool l4 = m.protocol || m.not_protocol || !m.src_ports.empty() || !m.dst_ports.empty() ||
                  !m.dst_named_port_sets.empty() || !m.dst_not_ports.empty() || m.icmp_type;
  if (l3 && l4) return 2;
  if (l3) return 1;
  if (l4) return 3;
  return 4;
}

}  // namespace

std::optional<RuleRef> find_rule(const EndpointPolicy& policy, uint64_t rule_id) {
  if (rule_id == 0) return std::nullopt;
  if (auto t = tier_of_default_rule_id(rule_id)) {
    if (*t >= policy.tiers.size()) return std::nullopt;
    const Tier& tier = policy.tiers[*t];
    std::string names;  // the tier's policies that apply here: what isolated the endpoint
    for (const Policy& pol : tier.policies) names += (names.empty() ? "" : ", ") + pol.name;
    return RuleRef{tier.name, names, -1, tier.default_action, 0};
  }
  for (const Tier& tier : policy.tiers)
    for (const Policy& pol : tier.policies)
      for (size_t i = 0; i < pol.rules.size(); i++)
        if (pol.rules[i].id == rule_id)
          return RuleRef{tier.name, pol.name, static_cast<int>(i), pol.rules[i].action,
                         match_type(pol.rules[i].match)};
  return std::nullopt;
}

}  // namespace weir::calc::pol
