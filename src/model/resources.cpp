#include "model/resources.h"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

namespace weir::model {

std::string Source::str() const {
  if (item >= 0) return fmt::format("{} (document {} items[{}])", file, document, item);
  return fmt::format("{} (document {})", file, document);
}

std::string_view to_string(ServiceType t) {
  switch (t) {
    case ServiceType::ClusterIP:
      return "ClusterIP";
    case ServiceType::NodePort:
      return "NodePort";
    case ServiceType::LoadBalancer:
      return "LoadBalancer";
    case ServiceType::ExternalName:
      return "ExternalName";
  }
  return "?";
}

std::string TargetPort::str() const { return is_named() ? name : std::to_string(number); }

const Service* Snapshot::find_service(std::string_view ns, std::string_view name) const {
  for (const Service& s : services)
    if (s.meta.ns == ns && s.meta.name == name) return &s;
  return nullptr;
}

std::string_view to_string(BpfLogLevel l) {
  switch (l) {
    case BpfLogLevel::Info: return "Info";
    case BpfLogLevel::Debug: return "Debug";
    case BpfLogLevel::Off: break;
  }
  return "Off";
}

std::optional<BpfLogLevel> parse_bpf_log_level(std::string_view s) {
  for (BpfLogLevel l : {BpfLogLevel::Off, BpfLogLevel::Info, BpfLogLevel::Debug}) {
    std::string_view name = to_string(l);
    if (s.size() == name.size() &&
        std::equal(s.begin(), s.end(), name.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
        }))
      return l;
  }
  return std::nullopt;
}

uint32_t pod_mtu(const DataplaneConfig& c) {
  return c.vxlan_enabled ? c.underlay_mtu - kVxlanOverhead : c.underlay_mtu;
}

DataplaneConfig Snapshot::effective_config() const {
  if (config) return *config;
  DataplaneConfig c;
  c.meta.name = "default";
  return c;
}

}  // namespace weir::model
