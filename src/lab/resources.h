// YAML for the resources the lab writes into its datastore directory (Kubernetes-shaped, as
// the agent's dir datastore reads them: see docs/resources.md).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace weir::lab {

struct ServicePortDef {
  std::string name;              // "http"
  std::string protocol = "TCP";  // TCP | UDP
  uint16_t port = 0;             // the VIP port
  uint16_t target_port = 0;      // the backends' port
};

struct ServiceDef {
  std::string name = "web";
  std::string ns = "default";
  std::string cluster_ip;  // "10.96.0.10"
  std::vector<ServicePortDef> ports;
};

struct BackendDef {
  std::string ip;
  bool ready = true;
  std::string node;  // nodeName, omitted when empty
  std::string pod;   // targetRef Pod name, omitted when empty
};

// apiVersion v1, kind Service, type ClusterIP.
std::string service_yaml(const ServiceDef& svc);
// apiVersion discovery.k8s.io/v1 EndpointSlice "<svc.name>-lab" for the service: one port per
// service port (named like it, port = target_port), one endpoint per backend.
std::string endpoint_slice_yaml(const ServiceDef& svc, const std::vector<BackendDef>& backends);
// service_yaml + "---" + endpoint_slice_yaml: a single file keeps the pair consistent.
std::string service_with_slice_yaml(const ServiceDef& svc, const std::vector<BackendDef>& backends);

// weir.dev/v1 WorkloadEndpoint for a pod.
std::string workload_endpoint_yaml(const std::string& pod_name, const std::string& node,
                                   const std::string& host_if, const std::string& ip,
                                   const std::string& mac);

// weir.dev/v1 DataplaneConfig "default" (vxlanEnabled and underlayMTU only when not the
// defaults).
std::string dataplane_config_yaml(std::chrono::milliseconds min_sync_period,
                                  std::chrono::milliseconds conntrack_scan_period,
                                  const std::string& log_level, bool vxlan_enabled = false,
                                  int underlay_mtu = 1500);

// weir.dev/v1 Node.
std::string node_yaml(const std::string& name, const std::string& underlay_address,
                      const std::string& pod_cidr);

}  // namespace weir::lab
