// PolicyResolver: from the resources (NetworkPolicy, Namespace, Tier, GlobalNetworkPolicy,
// WorkloadEndpoint) to what the dataplane programs: for each workload endpoint and direction
// the ordered tiers, policies and rules that apply to it (calc::pol::EndpointPolicy), and the
// IP sets those rules reference, kept up to date incrementally through a LabelIndex.
//
//   PolicyResolver r;
//   r.update(snapshot);                       // after every good snapshot
//   for (auto& d : r.take_ipset_changes())    // write/delete weir_ipsetx1/weir_ipsets1 entries
//   for (auto& key : r.endpoint_keys())       // compile r.policy(key, dir) where it changed
//
// Kubernetes NetworkPolicies form the tier "kubernetes" after every global tier (see
// policy_ir.h for the evaluation semantics). A pod selected by no policy for a direction has no
// tiers for it (allow, no program).
//
// IR produced (docs/resources.md has the resource semantics):
//   - policy names: GlobalNetworkPolicy: its name; NetworkPolicy: "<ns>/knp.default.<name>";
//   - a NetworkPolicy rule becomes one Allow rule per (peer, protocol of its ports); ingress
//     named ports are resolved to the pod's own port numbers (a rule none of whose ports
//     resolves is dropped), egress named ports use named-port sets,
//     id fnv1a64("named-port:<name>/<TCP|UDP|SCTP>");
//   - Rule::id = fnv1a64(tier NUL policy NUL direction NUL rule index NUL description), never 0:
//     stable while the rule is the same; Rule::description reads
//     `action:"allow" protocol:{name:"tcp"} dst_ports:{first:80 last:80}
//      src_ip_set_ids:"0x..." original_src_selector:"app == \"client\"" ...`.
//
// Pure: no syscalls.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "calc/labelindex.h"
#include "calc/policy_ir.h"
#include "model/resources.h"

namespace weir::calc {

inline constexpr const char* kKubernetesTier = "kubernetes";

// A named-port set member: (address, protocol, port), host order.
struct PortMember {
  model::Ipv4 addr;
  uint8_t proto = 6;
  uint16_t port = 0;
  auto operator<=>(const PortMember&) const = default;
};

// Changes to one IP set since the previous take_ipset_changes().
struct IpSetDelta {
  SetId id = 0;
  std::vector<model::Cidr> add_nets, del_nets;   // CIDR members (selector sets: /32s)
  std::vector<PortMember> add_ports, del_ports;  // named-port members
  bool created = false;
  bool deleted = false;
};

class PolicyResolver {
 public:
  // Applies a full, validated snapshot: endpoints, namespaces, policies. Only what changed is
  // recomputed; the LabelIndex is updated incrementally (a pod's label change touches only the
  // sets whose selectors it changes).
  void update(const model::Snapshot& snap);

  // Workload endpoint keys ("ns/name") known, sorted.
  std::vector<std::string> endpoint_keys() const;
  // The endpoint's policy in one direction; nullptr for an unknown key.
  const pol::EndpointPolicy* policy(const std::string& wep_key, pol::Direction d) const;
  // Endpoint keys whose policy (either direction) changed in the last update(), sorted: new
  // endpoints, removed ones (policy() is then nullptr) and those whose rules changed.
  const std::vector<std::string>& changed_endpoints() const { return changed_; }

  // IP set changes since the previous call (created sets carry all members), sorted by id.
  std::vector<IpSetDelta> take_ipset_changes();
  // The current members of every live set, for the reference evaluator and tests.
  pol::IpSetTable ipset_table() const;
  // What a set selects, for dumps: `app == "web"`, `app == "web" [namespace: team == "a"]`,
  // `named port "http"/TCP`. Empty for an unknown id.
  std::string set_description(SetId id) const;

  const LabelIndex& label_index() const { return index_; }

 private:
  LabelIndex index_;
  std::vector<std::string> changed_;
  // Implementation state is private to policy.cpp's author; add members as needed.
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace weir::calc
