// DataplaneConfig.spec.mapSizes (model/) defaults to the sizes the BPF side declares
// (weir/maps.h). Checked here, where both are known: model/ does not depend on BPF headers.
#include "model/resources.h"
#include "weir/maps.h"

namespace weir::dataplane {

static_assert(model::MapSizes{}.nat_frontend == WEIR_MAP_NAT_FE_SIZE);
static_assert(model::MapSizes{}.nat_backend == WEIR_MAP_NAT_BE_SIZE);
static_assert(model::MapSizes{}.conntrack == WEIR_MAP_CT_SIZE);
static_assert(model::MapSizes{}.routes == WEIR_MAP_ROUTES_SIZE);
static_assert(model::MapSizes{}.ifstate == WEIR_MAP_IFSTATE_SIZE);
static_assert(model::MapSizes{}.counters == WEIR_MAP_COUNTERS_SIZE);
static_assert(model::MapSizes{}.ipsets == WEIR_MAP_IPSETS_SIZE);
static_assert(model::MapSizes{}.ipsets == WEIR_MAP_IPSET_X_SIZE);  // sizes both IP set maps
static_assert(model::MapSizes{}.rule_counters == WEIR_MAP_RULE_CNT_SIZE);

}  // namespace weir::dataplane
