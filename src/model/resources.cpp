#include "model/resources.h"

#include <fmt/format.h>

#include "weir/maps.h"

namespace weir::model {

// The defaults of DataplaneConfig.spec.mapSizes are the sizes the BPF side declares.
static_assert(MapSizes{}.nat_frontend == WEIR_MAP_NAT_FE_SIZE);
static_assert(MapSizes{}.nat_backend == WEIR_MAP_NAT_BE_SIZE);
static_assert(MapSizes{}.conntrack == WEIR_MAP_CT_SIZE);
static_assert(MapSizes{}.routes == WEIR_MAP_ROUTES_SIZE);
static_assert(MapSizes{}.ifstate == WEIR_MAP_IFSTATE_SIZE);
static_assert(MapSizes{}.counters == WEIR_MAP_COUNTERS_SIZE);
static_assert(MapSizes{}.ipsets == WEIR_MAP_IPSETS_SIZE);
static_assert(MapSizes{}.ipsets == WEIR_MAP_IPSET_X_SIZE);  // sizes both IP set maps
static_assert(MapSizes{}.rule_counters == WEIR_MAP_RULE_CNT_SIZE);

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

DataplaneConfig Snapshot::effective_config() const {
  if (config) return *config;
  DataplaneConfig c;
  c.meta.name = "default";
  return c;
}

}  // namespace weir::model
