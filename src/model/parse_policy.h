// Internal to src/model: parsers of the policy kinds (parse_policy.cpp), called from parse.cpp.
#pragma once

#include <optional>

#include "model/parse_ctx.h"
#include "model/resources.h"

namespace weir::model::parse_detail {

std::optional<Namespace> parse_namespace(Ctx& c, const YAML::Node& root, const Source& src);
std::optional<NetworkPolicy> parse_network_policy(Ctx& c, const YAML::Node& root,
                                                  const Source& src);
std::optional<Tier> parse_tier(Ctx& c, const YAML::Node& root, const Source& src);
std::optional<GlobalNetworkPolicy> parse_global_network_policy(Ctx& c, const YAML::Node& root,
                                                               const Source& src);
// Cross-resource rules of the policy kinds: a GlobalNetworkPolicy's tier exists.
void validate_policy_refs(const Snapshot& snap, ValidationErrors& errors);

}  // namespace weir::model::parse_detail
