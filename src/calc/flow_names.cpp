#include "calc/flow_names.h"

namespace weir::calc {

std::pair<std::string, std::string> split_ns_name(const std::string& s) {
  const size_t slash = s.find('/');
  if (slash == std::string::npos) return {"", s};
  return {s.substr(0, slash), s.substr(slash + 1)};
}

void FlowNamer::update(const Output& out) {
  pods_.clear();
  services_.clear();
  for (const Route& r : out.routes) {
    if (r.workload.empty() || r.cidr.prefix_len != 32) continue;
    pods_[r.cidr.addr] = split_ns_name(r.workload);
  }
  for (const Frontend& fe : out.frontends) {
    // "ns/name:portname": the service is what comes before the port's name.
    std::string svc = fe.service;
    const size_t colon = svc.find(':');
    if (colon != std::string::npos) svc.resize(colon);
    services_[fe.key] = split_ns_name(svc);
  }
}

void FlowNamer::name(model::Flow& f) const {
  auto pod = [&](model::FlowPeer& p) {
    auto it = pods_.find(p.ip);
    if (it == pods_.end()) return;
    p.ns = it->second.first;
    p.pod = it->second.second;
  };
  pod(f.source);
  pod(f.destination);
  if (f.translated) pod(*f.translated);
  auto svc = services_.find(FrontendKey{f.destination.ip, f.destination.port, f.proto});
  if (svc != services_.end()) {
    f.destination.service_ns = svc->second.first;
    f.destination.service = svc->second.second;
  }
}

}  // namespace weir::calc
