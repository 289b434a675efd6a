#include "lab/resources.h"

#include <fmt/format.h>

namespace weir::lab {

namespace {
std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
}  // namespace

std::string service_yaml(const ServiceDef& svc) {
  std::string y = fmt::format(
      "apiVersion: v1\n"
      "kind: Service\n"
      "metadata:\n"
      "  name: {}\n"
      "  namespace: {}\n"
      "spec:\n"
      "  type: ClusterIP\n"
      "  clusterIP: {}\n"
      "  ports:\n",
      svc.name, svc.ns, svc.cluster_ip);
  for (const auto& p : svc.ports)
    y += fmt::format("  - {{name: {}, protocol: {}, port: {}, targetPort: {}}}\n", p.name,
                     p.protocol, p.port, p.target_port);
  return y;
}

std::string endpoint_slice_yaml(const ServiceDef& svc, const std::vector<BackendDef>& backends) {
  std::string y = fmt::format(
      "apiVersion: discovery.k8s.io/v1\n"
      "kind: EndpointSlice\n"
      "metadata:\n"
      "  name: {}-lab\n"
      "  namespace: {}\n"
      "  labels:\n"
      "    kubernetes.io/service-name: {}\n"
      "addressType: IPv4\n"
      "ports:\n",
      svc.name, svc.ns, svc.name);
  for (const auto& p : svc.ports)
    y += fmt::format("- {{name: {}, protocol: {}, port: {}}}\n", p.name, p.protocol, p.target_port);
  if (backends.empty()) {
    y += "endpoints: []\n";
    return y;
  }
  y += "endpoints:\n";
  for (const auto& b : backends) {
    y += fmt::format("- addresses: [\"{}\"]\n  conditions: {{ready: {}}}\n", b.ip,
                     b.ready ? "true" : "false");
    if (!b.node.empty()) y += fmt::format("  nodeName: {}\n", b.node);
    if (!b.pod.empty())
      y += fmt::format("  targetRef: {{kind: Pod, namespace: {}, name: {}}}\n", svc.ns, b.pod);
  }
  return y;
}

std::string service_with_slice_yaml(const ServiceDef& svc,
                                    const std::vector<BackendDef>& backends) {
  return service_yaml(svc) + "---\n" + endpoint_slice_yaml(svc, backends);
}

std::string workload_endpoint_yaml(const std::string& pod_name, const std::string& node,
                                   const std::string& host_if, const std::string& ip,
                                   const std::string& mac) {
  return fmt::format(
      "apiVersion: weir.dev/v1\n"
      "kind: WorkloadEndpoint\n"
      "metadata:\n"
      "  name: {0}\n"
      "  namespace: default\n"
      "  labels: {{app: {0}}}\n"
      "spec:\n"
      "  node: {1}\n"
      "  interface: {2}\n"
      "  ips: [\"{3}\"]\n"
      "  mac: \"{4}\"\n",
      pod_name, node, host_if, ip, lower(mac));
}

std::string dataplane_config_yaml(std::chrono::milliseconds min_sync_period,
                                  std::chrono::milliseconds conntrack_scan_period,
                                  const std::string& log_level, bool vxlan_enabled,
                                  int underlay_mtu) {
  std::string y = fmt::format(
      "apiVersion: weir.dev/v1\n"
      "kind: DataplaneConfig\n"
      "metadata:\n"
      "  name: default\n"
      "spec:\n"
      "  minSyncPeriod: {}ms\n"
      "  conntrackScanPeriod: {}ms\n",
      min_sync_period.count(), conntrack_scan_period.count());
  if (!log_level.empty()) y += fmt::format("  logLevel: {}\n", log_level);
  if (vxlan_enabled) y += "  vxlanEnabled: true\n";
  if (underlay_mtu != 1500) y += fmt::format("  underlayMTU: {}\n", underlay_mtu);
  return y;
}

std::string node_yaml(const std::string& name, const std::string& underlay_address,
                      const std::string& pod_cidr) {
  return fmt::format(
      "apiVersion: weir.dev/v1\n"
      "kind: Node\n"
      "metadata:\n"
      "  name: {}\n"
      "spec:\n"
      "  underlayAddress: {}\n"
      "  podCIDR: {}\n",
      name, underlay_address, pod_cidr);
}

}  // namespace weir::lab
