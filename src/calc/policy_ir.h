// The policy IR: what applies to one endpoint in one direction, after selectors have been
// turned into IP sets and named ports resolved. calc/policy.* builds it from the resources
// (NetworkPolicy, Tier, GlobalNetworkPolicy, Namespace, WorkloadEndpoint); polprog/compiler.*
// turns it into eBPF; evaluate() below is the reference semantics both are tested against
// (the differential test runs random IR + packets through the compiled program and through
// evaluate() and requires the same verdict and deciding rule).
//
// Semantics (after Calico's tiered model):
//   - Tiers run in order. A tier is present only when at least one of its policies applies to
//     the endpoint in this direction (calc drops the others).
//   - Within a tier, policies run in order, rules in order. The first rule whose match holds
//     decides: Allow -> allow (done); Deny -> deny (done); Pass -> skip to the next tier;
//     Log -> count the rule and go on with the next rule.
//   - A tier whose rules all fail to match ends with its default action (Deny).
//   - After the last tier (every tier passed): allow. No tiers at all: allow (the dataplane does
//     not even run a program then).
//   - Kubernetes NetworkPolicies form a tier of their own after the global tiers, with the
//     isolation rule expressed the same way: a selected pod has the tier, whose default is deny.
//
// Pure: no syscalls.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "calc/labelindex.h"  // SetId
#include "model/net.h"

namespace weir::calc::pol {

enum class Action : uint8_t { Allow, Deny, Pass, Log };
// The endpoint's point of view: Ingress = traffic to the endpoint (runs in weir_to_wl),
// Egress = traffic from it (runs in weir_from_wl).
enum class Direction : uint8_t { Ingress, Egress };

std::string_view to_string(Action a);     // "allow", "deny", "pass", "log"
std::string_view to_string(Direction d);  // "ingress", "egress"

struct PortRange {
  uint16_t first = 0;  // inclusive, host order
  uint16_t last = 0;   // inclusive, first <= last
  auto operator<=>(const PortRange&) const = default;
};

// Every present criterion must hold (AND); within a list, any element may match (OR) unless
// the comment says otherwise. An empty Match matches every packet.
struct Match {
  std::optional<uint8_t> protocol;      // IP protocol number
  std::optional<uint8_t> not_protocol;  // the protocol must differ

  std::vector<model::Cidr> src_nets;      // source in any of them (empty: any source)
  std::vector<model::Cidr> src_not_nets;  // source in none of them
  std::vector<SetId> src_sets;            // source address in EVERY listed set
  std::vector<SetId> src_not_sets;        // source address in none of them
  std::vector<PortRange> src_ports;       // source port in any (empty: any); TCP/UDP only

  std::vector<model::Cidr> dst_nets;
  std::vector<model::Cidr> dst_not_nets;
  std::vector<SetId> dst_sets;
  std::vector<SetId> dst_not_sets;
  // Destination port: when dst_ports or dst_named_port_sets is non-empty, the packet must be TCP
  // or UDP and its destination port in any of dst_ports, OR (address, protocol, port) a member of
  // any of dst_named_port_sets.
  std::vector<PortRange> dst_ports;
  std::vector<SetId> dst_named_port_sets;
  std::vector<PortRange> dst_not_ports;  // destination port in none of them (TCP/UDP only)

  std::optional<uint8_t> icmp_type;  // only with protocol == 1; the packet must be ICMP
  std::optional<uint8_t> icmp_code;  // only together with icmp_type

  bool operator==(const Match&) const = default;
};

struct Rule {
  uint64_t id = 0;          // non-zero; key of the rule counters map; unique per endpoint program
  Action action = Action::Deny;
  Match match;
  std::string description;  // `action:"allow" protocol:{name:"tcp"} dst_ports:{...} ...` for
                            // `weir bpf policy dump`; free text, not parsed back
  bool operator==(const Rule&) const = default;
};

struct Policy {
  std::string name;  // "default/knp.default.allow-web" or "global-name"
  std::vector<Rule> rules;
  bool operator==(const Policy&) const = default;
};

struct Tier {
  std::string name;  // the Tier resource's name; Kubernetes NetworkPolicies: "kubernetes"
  std::vector<Policy> policies;
  Action default_action = Action::Deny;  // what ends a tier whose rules all failed
  bool operator==(const Tier&) const = default;
};

struct EndpointPolicy {
  Direction direction = Direction::Ingress;
  std::vector<Tier> tiers;  // empty: no policy applies (allow, no program)
  bool operator==(const EndpointPolicy&) const = default;
  size_t rule_count() const;
};

// What an endpoint runs while its own policy cannot be installed (it failed to compile or to
// load): one tier, "weir-fail-closed", with one policy without rules, so the tier's default
// denies every packet (fail closed). The policy manager loads it once per direction.
EndpointPolicy fail_closed_policy(Direction d);

// "29vMYcPWr7reSxxN": a rule id as `policy dump` prints it (16 base62 characters).
std::string format_rule_id(uint64_t id);

// The rule id a policy program reports when tier `index`'s default decided (no rule of the tier
// did): WEIR_RULE_ID_TIER_DEFAULT of weir/policy.h, ~0 - index. Rule ids stay below
// kTierDefaultRuleIdMin.
inline constexpr uint64_t kTierDefaultRuleIdMin = ~uint64_t{0} - 0xffff;
constexpr uint64_t tier_default_rule_id(size_t index) { return ~uint64_t{0} - index; }
// The tier index of a tier default's rule id, or nullopt for a rule's id (or 0).
constexpr std::optional<size_t> tier_of_default_rule_id(uint64_t id) {
  if (id < kTierDefaultRuleIdMin) return std::nullopt;
  return static_cast<size_t>(~uint64_t{0} - id);
}

// The members of IP sets as the reference evaluator sees them (the dataplane has the same in
// weir_ipsetx1 + weir_ipsets1). CIDR members match any port; named-port members only their (proto, port).
class IpSetTable {
 public:
  void add(SetId id, model::Cidr net);
  void add_port(SetId id, model::Ipv4 addr, uint8_t proto, uint16_t port);
  // Address in a CIDR member of the set.
  bool contains(SetId id, model::Ipv4 addr) const;
  // Address in a CIDR member, or (addr, proto, port) a named-port member.
  bool contains(SetId id, model::Ipv4 addr, uint8_t proto, uint16_t port) const;

  const std::map<SetId, std::set<model::Cidr>>& nets() const { return nets_; }
  const std::map<SetId, std::set<std::tuple<uint32_t, uint8_t, uint16_t>>>& ports() const {
    return ports_;
  }

 private:
  std::map<SetId, std::set<model::Cidr>> nets_;
  std::map<SetId, std::set<std::tuple<uint32_t, uint8_t, uint16_t>>> ports_;  // (ip, proto, port)
};

// What the policy program sees of a packet (weir_pol_state inputs), host order.
struct Packet {
  uint8_t proto = 6;
  model::Ipv4 saddr, daddr;
  uint16_t sport = 0, dport = 0;   // TCP/UDP only (0 otherwise)
  uint8_t icmp_type = 0, icmp_code = 0;  // ICMP only
};

struct Decision {
  bool allow = true;
  uint64_t rule_id = 0;            // the deciding rule; tier_default_rule_id(i) when tier i's
                                   // default decided; 0 when the end of the tiers did
  std::vector<uint64_t> logged;    // Log rules passed on the way, in order
  bool operator==(const Decision&) const = default;
};

// Where a rule id of `policy` comes from: the tier, policy and rule that carry it, or the tier
// whose default it names (rule_index -1, action the default's, and as policy the names of the
// tier's policies that apply, ", "-separated: they made the default apply, as a Kubernetes
// NetworkPolicy isolates the pods it selects). nullopt for an id the policy does not have (0, or
// another program's).
struct RuleRef {
  std::string tier;
  std::string policy;   // a tier default: its policies' names
  int rule_index = -1;  // index in the policy's rules; -1 for a tier default
  Action action = Action::Deny;
  // Hubble's policy_match_type: 0 none (a tier default), 1 L3 only, 2 L3 and L4, 3 L4 only,
  // 4 all (the rule names neither peers nor protocol nor ports).
  uint32_t match_type = 0;
  bool operator==(const RuleRef&) const = default;
};
std::optional<RuleRef> find_rule(const EndpointPolicy& policy, uint64_t rule_id);

// The reference semantics (see the top of this file).
bool matches(const Match& m, const Packet& p, const IpSetTable& sets);
Decision evaluate(const EndpointPolicy& policy, const Packet& p, const IpSetTable& sets);

}  // namespace weir::calc::pol
