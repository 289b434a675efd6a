// Network policy resources, after parsing and validation: Namespace (v1), NetworkPolicy
// (networking.k8s.io/v1), Tier and GlobalNetworkPolicy (weir.dev/v1, after Calico).
// docs/resources.md describes every field, default and validation rule.
//
// Selectors are kept as validated text (GlobalNetworkPolicy, Calico syntax) or as raw
// Kubernetes LabelSelectors; calc/ turns them into model::Selector (model/selector.h). The resource
// structs themselves are in resources.h.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "model/net.h"
#include "model/selector.h"

namespace weir::model {

// ---------------------------------------------------------------- shared

// A Kubernetes LabelSelector (metav1.LabelSelector). Empty = selects everything.
// LabelSelectorRequirement (a matchExpressions entry) is in model/selector.h.
struct LabelSelector {
  std::map<std::string, std::string> match_labels;
  std::vector<LabelSelectorRequirement> match_expressions;
  bool empty() const { return match_labels.empty() && match_expressions.empty(); }
  bool operator==(const LabelSelector&) const = default;
};

// Which traffic a policy governs, from the selected endpoint's point of view.
struct PolicyTypes {
  bool ingress = false;
  bool egress = false;
  bool operator==(const PolicyTypes&) const = default;
};

// ---------------------------------------------------------------- NetworkPolicy

// spec.{ingress,egress}[].ports[]: protocol + a number (optionally a range up to end_port) or
// a named port; neither = every port of the protocol.
struct NetworkPolicyPort {
  Protocol protocol = Protocol::TCP;
  std::optional<uint16_t> port;      // numeric port
  std::string name;                  // named port (IANA_SVC_NAME); exclusive with port
  std::optional<uint16_t> end_port;  // only with a numeric port; >= port
  bool operator==(const NetworkPolicyPort&) const = default;
};

struct IpBlock {
  Cidr cidr;
  std::vector<Cidr> except;  // each inside cidr
  bool operator==(const IpBlock&) const = default;
};

// One from[]/to[] entry. Either ip_block, or at least one of the two selectors:
//   pod_selector only                 pods matching it in the policy's namespace
//   namespace_selector only           every pod of the matching namespaces
//   both                              pods matching pod_selector in matching namespaces
// ipv6_only: an IPv6 ipBlock (kept so that the rule does not widen to "any peer"; it matches
// no IPv4 traffic).
struct NetworkPolicyPeer {
  std::optional<LabelSelector> pod_selector;
  std::optional<LabelSelector> namespace_selector;
  std::optional<IpBlock> ip_block;
  bool ipv6_only = false;
  bool operator==(const NetworkPolicyPeer&) const = default;
};

// One ingress (from) or egress (to) rule. No peers: any peer; no ports: any port.
struct NetworkPolicyRule {
  std::vector<NetworkPolicyPeer> peers;
  std::vector<NetworkPolicyPort> ports;
  bool operator==(const NetworkPolicyRule&) const = default;
};

// ---------------------------------------------------------------- GlobalNetworkPolicy

enum class PolicyAction : uint8_t { Allow, Deny, Pass, Log };
// "Allow", "Deny", "Pass", "Log".
std::string_view to_string(PolicyAction a);

// A port match: a range (a single port is first == last), or a named port.
struct PortSpec {
  uint16_t first = 0;
  uint16_t last = 0;
  std::string name;  // non-empty: named port (first/last unused)
  bool operator==(const PortSpec&) const = default;
};

// source / destination of a GlobalNetworkPolicy rule. Every present criterion must hold.
struct EntityRule {
  std::vector<Cidr> nets;       // address in any
  std::vector<Cidr> not_nets;   // address in none
  std::string selector;         // endpoints matching it ("" = not set)
  std::string not_selector;     // address of no endpoint matching it
  std::optional<std::string> namespace_selector;  // scopes `selector` to matching namespaces
  std::vector<PortSpec> ports;      // port in any
  std::vector<PortSpec> not_ports;  // port in none (destination only)
  bool operator==(const EntityRule&) const = default;
};

struct GnpRule {
  PolicyAction action = PolicyAction::Deny;
  std::optional<uint8_t> protocol;      // IP protocol number
  std::optional<uint8_t> not_protocol;
  std::optional<uint8_t> icmp_type;     // with protocol ICMP
  std::optional<uint8_t> icmp_code;     // with icmp_type
  EntityRule source;
  EntityRule destination;
  bool operator==(const GnpRule&) const = default;
};

// The tier a GlobalNetworkPolicy without spec.tier belongs to; it exists without a Tier
// resource (order 1000000, default action Deny) and may be redefined by one.
inline constexpr const char* kDefaultTier = "default";
inline constexpr double kDefaultTierOrder = 1000000;
// Reserved: the tier of the Kubernetes NetworkPolicies (after every global tier).
inline constexpr const char* kKubernetesTierName = "kubernetes";

}  // namespace weir::model
