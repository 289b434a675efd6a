// Flow records: what `weir observe` shows (docs/observe.md). The agent turns the datapath's
// ring-buffer events (new flow, drop) and its conntrack scanner's removals (flow end) into
// Flows, names their addresses (pods, services, policies) as it knows them at that moment, keeps
// the last N and serves them on a unix socket. Pure values: no I/O here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "model/net.h"
#include "util/result.h"

namespace weir::model {

// What happened.
enum class FlowEvent : uint8_t {
  Start,  // a new flow was allowed and tracked (its first packet): "flow_start"
  End,    // its conntrack entries were removed: "flow_end"
  Drop,   // a packet was dropped: "drop"
};

enum class FlowVerdict : uint8_t { Forwarded, Dropped };

// Hubble's traffic_direction, from the workload's point of view: EGRESS for what a pod sends
// (weir_from_wl, the host veth's TC ingress), INGRESS for what it receives (weir_to_wl).
enum class TrafficDirection : uint8_t { Unknown, Ingress, Egress };

// One side of a flow: an address and port, and the names this node knows for them.
struct FlowPeer {
  Ipv4 ip;
  uint16_t port = 0;          // host order; 0 for ICMP
  std::string ns, pod;        // the workload with this address, when known
  std::string service_ns, service;  // the service whose frontend is ip:port, when it is one

  bool operator==(const FlowPeer&) const = default;
};

// The policy that decided (a drop by policy; "" fields when none applies).
struct FlowPolicy {
  std::string tier;
  std::string name;      // the policy's name as `weir bpf policy dump` shows it ("ns/name" or "name")
  int rule_index = -1;   // index of the rule in the policy; -1: the tier's default decided
  std::string action;    // allow, deny, pass ("deny" for a tier default that denies)
  // Hubble's policy_match_type: 0 none (no rule: a tier default), 1 L3 only, 2 L3 and L4,
  // 3 L4 only, 4 all (the rule names neither peers nor ports).
  uint32_t match_type = 0;

  bool empty() const { return tier.empty() && name.empty(); }
  bool operator==(const FlowPolicy&) const = default;
};

struct Flow {
  int64_t time_unix_ns = 0;  // wall clock of the event
  FlowEvent event = FlowEvent::Start;
  FlowVerdict verdict = FlowVerdict::Forwarded;
  uint8_t proto = 0;         // IP protocol number (6 TCP, 17 UDP, 1 ICMP, ...)
  uint8_t icmp_type = 0, icmp_code = 0;  // ICMP only
  uint8_t tcp_flags = 0;     // TCP flags of the packet behind a start or drop (FIN 0x01 .. ACK 0x10)
  FlowPeer source;
  FlowPeer destination;      // as the sender addressed it (a service's VIP and port)
  std::optional<FlowPeer> translated;  // the backend service NAT chose (a start through a service)
  std::string node;          // the node that saw it
  std::string interface;     // the interface the event was seen on ("" when unknown)
  uint32_t ifindex = 0;
  TrafficDirection direction = TrafficDirection::Unknown;
  // Drops: the datapath's counter (`weir bpf counters dump`'s row): its snake_case name
  // ("dropped_by_policy") and description ("by policy").
  std::string drop_reason;
  std::string drop_reason_text;
  FlowPolicy policy;
  // Flow end: packets and bytes each way (client to server, server to client), how long the
  // flow lived, and why it ended ("fin", "rst", "idle timeout", "backend removed", ...).
  uint64_t packets_sent = 0, bytes_sent = 0, packets_received = 0, bytes_received = 0;
  uint64_t duration_ns = 0;
  std::string close_reason;

  bool operator==(const Flow&) const = default;
};

// The flow as JSON, with Hubble's field names where Hubble has the field (docs/observe.md):
// time, verdict ("FORWARDED"/"DROPPED"), drop_reason_desc, IP{source,destination,ipVersion},
// l4{TCP|UDP{source_port,destination_port}|ICMPv4{type,code}}, source/destination{namespace,
// pod_name}, destination_service{namespace,name}, traffic_direction ("INGRESS"/"EGRESS"),
// policy_match_type, interface{index,name}, node_name, egress_denied_by/ingress_denied_by; and
// what Hubble has no field for under "weir" (event, translated backend, drop reason, policy
// tier/rule, flow-end counts, duration and close reason). One line of `weir observe -o jsonl`.
nlohmann::json to_json(const Flow& f);
// The inverse of to_json (what `weir observe` reads from the agent's socket): an Error naming
// the field that is missing or malformed.
Result<Flow> flow_from_json(const nlohmann::json& j);

// "flow_start", "flow_end", "drop" / "FORWARDED", "DROPPED" / "INGRESS", "EGRESS", "".
const char* to_string(FlowEvent e);
const char* to_string(FlowVerdict v);
const char* to_string(TrafficDirection d);

}  // namespace weir::model
