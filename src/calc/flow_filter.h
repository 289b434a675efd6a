// The filters of `weir observe` and the request it sends to the agent (docs/observe.md). Pure:
// parsing of the command line's strings, matching a Flow, and the request's JSON.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "model/flow.h"
#include "model/net.h"
#include "util/result.h"

namespace weir::calc {

// A namespace and a name ("default/pod1").
struct NsName {
  std::string ns, name;
  bool operator==(const NsName&) const = default;
};

// Every field given must match (AND); an empty filter matches every flow.
struct FlowFilter {
  std::optional<NsName> pod;          // source or destination is this pod
  std::optional<model::Cidr> from_ip;  // source address in this prefix
  std::optional<model::Cidr> to_ip;    // destination (or the translated backend) in this prefix
  std::optional<uint16_t> port;       // source, destination or translated port
  std::optional<uint8_t> proto;       // IPPROTO_TCP, IPPROTO_UDP or IPPROTO_ICMP
  std::optional<model::FlowVerdict> verdict;
  std::optional<NsName> service;      // the destination is this service's frontend

  bool matches(const model::Flow& f) const;
  bool operator==(const FlowFilter&) const = default;
};

// The command line's strings, "" when an option was not given.
struct FlowFilterArgs {
  std::string pod;      // NS/NAME
  std::string from_ip;  // a.b.c.d or a.b.c.d/n
  std::string to_ip;
  std::string port;     // 1..65535
  std::string proto;    // tcp, udp, icmp (any case)
  std::string verdict;  // forwarded, dropped (any case)
  std::string service;  // NS/NAME
};

// An Error naming the option and the value when one is malformed ("--port 0: a port is
// 1..65535").
Result<FlowFilter> parse_flow_filter(const FlowFilterArgs& a);

// What `weir observe` asks the agent for: the last `last` stored flows that match (oldest
// first), then, with `follow`, every new one that matches until the client goes away.
struct ObserveRequest {
  FlowFilter filter;
  size_t last = 0;
  bool follow = false;
  bool operator==(const ObserveRequest&) const = default;
};

nlohmann::json to_json(const ObserveRequest& r);
// An Error naming what is malformed (the agent answers it to the client).
Result<ObserveRequest> observe_request_from_json(const nlohmann::json& j);

}  // namespace weir::calc
