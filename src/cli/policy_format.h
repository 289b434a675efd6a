// Text of `weir bpf policy dump`, in the seed's format:
//   IfaceName: weirab12p2
//   Hook: tc egress
//   Error:
//   Policy Info:
//   // Start of tier kubernetes
//   // Start of policy default/allow-client
//   // Start of rule action:"allow" ... rule_id:"29vMYcPWr7reSxxN"
//   // IPSets src_ip_set_ids:<0x303904ae5eae5418>
//   // count = 9
//   // End of rule 29vMYcPWr7reSxxN
//   // End of policy default/allow-client
//   // End of tier kubernetes: deny
// Pure: the caller reads the info file and the rule counters.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "dataplane/policy_info.h"

namespace weir::cli {

// `error` goes on the "Error:" line (empty when all is well, e.g. a stale info file is named
// there). `counts`: rule id -> packets (summed over CPUs); a missing id counts 0.
std::string format_policy_dump(const dataplane::PolicyInfo& info,
                               const std::map<uint64_t, uint64_t>& counts, bool with_asm,
                               const std::string& error);
// "IfaceName: X\nHook: tc ingress\nError: <error>\nPolicy Info:\n// No policy applies: every new
// flow is allowed (no program runs)"
std::string format_no_policy(const std::string& iface, const std::string& direction,
                             const std::string& error = "");

// The Error line of the dump of an interface whose ifstate names jump slot `slot`, holding
// program `live_id` (0: empty), described by `info`: the slot could not be read (`jump_error`),
// the description is stale, the slot is empty, or the agent could not install the endpoint's
// policy (info.install_error: deny-all or the previous program runs). "" when all is well.
std::string policy_dump_error(uint32_t slot, uint32_t live_id, const std::string& jump_error,
                              const dataplane::PolicyInfo& info);

nlohmann::json policy_dump_json(const dataplane::PolicyInfo& info,
                                const std::map<uint64_t, uint64_t>& counts, bool with_asm,
                                const std::string& error);

}  // namespace weir::cli
