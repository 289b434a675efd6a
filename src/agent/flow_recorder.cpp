#include "agent/flow_recorder.h"

#include <utility>

namespace weir::agent {

FlowRecorder::FlowRecorder(size_t capacity, std::string node, PolicyOf policy_of, IfName if_name)
    : store_(capacity),
      node_(std::move(node)),
      policy_of_(std::move(policy_of)),
      if_name_(std::move(if_name)),
      clock_offset_ns_(dataplane::unix_minus_monotonic_ns()) {}

void FlowRecorder::update_names(const calc::Output& out) {
  names_.update(out);
  ifnames_.clear();
}

void FlowRecorder::sync_clock() { clock_offset_ns_ = dataplane::unix_minus_monotonic_ns(); }

const std::string& FlowRecorder::if_name(uint32_t ifindex) {
  auto it = ifnames_.find(ifindex);
  if (it == ifnames_.end()) it = ifnames_.emplace(ifindex, if_name_(ifindex)).first;
  return it->second;
}

void FlowRecorder::on_event(const weir_flow_event& ev) {
  model::Flow f = dataplane::flow_from_event(ev, clock_offset_ns_);
  if (f.ifindex) f.interface = if_name(f.ifindex);
  if (ev.type == WEIR_FLOW_EV_DROP && ev.reason == WEIR_CNT_DROP_BY_POLICY && !f.interface.empty()) {
    // from_wl (tc ingress) runs the workload's egress policy; to_wl its ingress policy.
    const auto dir = ev.hook == WEIR_HOOK_INGRESS ? calc::pol::Direction::Egress : calc::pol::Direction::Ingress;
    const calc::pol::EndpointPolicy* p = policy_of_ ? policy_of_(f.interface, dir) : nullptr;
    if (auto r = p ? calc::pol::find_rule(*p, ev.rule_id) : std::nullopt) {
      f.policy.tier = r->tier;
      f.policy.name = r->policy;
      f.policy.rule_index = r->rule_index;
      f.policy.action = std::string(calc::pol::to_string(r->action));
      f.policy.match_type = r->match_type;
    } else if (ev.rule_id != 0) {
      // A policy replaced since the packet (or a rule id of no policy this agent installed).
      f.policy.name = "rule " + calc::pol::format_rule_id(ev.rule_id);
    }
  }
  record(std::move(f));
}

void FlowRecorder::on_flow_end(const dataplane::CtRemoved& r) {
  model::Flow f = dataplane::flow_end_of(r, clock_offset_ns_);
  if (f.ifindex) f.interface = if_name(f.ifindex);
  record(std::move(f));
}

void FlowRecorder::record(model::Flow f) {
  f.node = node_;
  names_.name(f);
  if (server_) server_->publish(f);
  store_.add(std::move(f));
}

}  // namespace weir::agent
