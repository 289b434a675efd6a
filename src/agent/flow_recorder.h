// The agent's flow records (docs/observe.md): it turns the datapath's events and the conntrack
// scanner's flow ends into named model::Flows, keeps the last N (FlowStore) and hands each new
// one to the `weir observe` clients that follow (ObserveServer).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "agent/observe_server.h"
#include "calc/flow_names.h"
#include "calc/policy_ir.h"
#include "dataplane/flow_events.h"

namespace weir::agent {

class FlowRecorder {
 public:
  // The policy installed on an interface in a direction (what a drop's rule id means), or null.
  using PolicyOf = std::function<const calc::pol::EndpointPolicy*(const std::string& iface, calc::pol::Direction)>;
  // An interface's name from its index ("" when it has none).
  using IfName = std::function<std::string(uint32_t ifindex)>;

  FlowRecorder(size_t capacity, std::string node, PolicyOf policy_of, IfName if_name);

  // After a sync that applied a new state: the names of pods and services as they are now.
  void update_names(const calc::Output& out);
  // Re-reads CLOCK_REALTIME - CLOCK_MONOTONIC (events carry monotonic times; the wall clock may
  // be stepped).
  void sync_clock();
  // Where new flows also go (null: nowhere but the store). Borrowed.
  void set_observers(ObserveServer* server) { server_ = server; }

  void on_event(const weir_flow_event& ev);
  void on_flow_end(const dataplane::CtRemoved& r);

  const FlowStore& store() const { return store_; }

 private:
  void record(model::Flow f);
  const std::string& if_name(uint32_t ifindex);

  FlowStore store_;
  std::string node_;
  PolicyOf policy_of_;
  IfName if_name_;
  calc::FlowNamer names_;
  std::map<uint32_t, std::string> ifnames_;  // cleared at each update_names()
  ObserveServer* server_ = nullptr;
  int64_t clock_offset_ns_ = 0;  // CLOCK_REALTIME - CLOCK_MONOTONIC (sync_clock)
};

}  // namespace weir::agent
