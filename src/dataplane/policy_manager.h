// PolicyManager: keeps each local workload interface's policy programs in step with the
// PolicyResolver (calc/policy.h).
//
// For every (interface, direction) whose EndpointPolicy changed: compile (polprog), load through
// the verifier, write the chunks into fresh weir_jump1 slots, then point the interface's ifstate
// at the new entry slot in one map update: new flows see the new policy at once, in-flight
// packets finish on the old program, established flows never run policy (their decision lives
// in conntrack). The old slots are cleared and freed at the next apply(). A policy that fails
// to compile or load leaves the previous program in force and is reported.
//
// IP sets: additions are written before programs flip, deletions after, so that a program never
// sees a set emptier than the policy it implements expects.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "calc/policy.h"
#include "dataplane/policy_slots.h"
#include "polprog/compiler.h"
#include "util/result.h"

namespace weir::dataplane {

struct PolicyEndpoint {
  std::string wep_key;  // "ns/name" of the WorkloadEndpoint
  std::string iface;    // host-side interface
  uint32_t ifindex = 0;
};

// Points ifstate[ifindex] at `slot` for one direction (WEIR_NO_POLICY_SLOT: no policy), in one
// map update that keeps the rest of the entry.
using SetPolicySlot =
    std::function<Status(uint32_t ifindex, calc::pol::Direction dir, uint32_t slot)>;

class PolicyManager {
 public:
  // `jump` is weir_jump1 (also in fds.jump, for the programs' relocations); its size bounds the
  // slots handed out.
  PolicyManager(maps::JumpMap& jump, polprog::PolicyMapFds fds, std::string state_dir,
                SetPolicySlot set_slot);

  // Reserves the jump slots a previous agent's programs occupy: they keep serving until this
  // agent's first apply() has installed its own programs, then they are cleared.
  Status adopt();

  // Writes IP set changes and (re)installs what changed for `endpoints` (the interfaces that
  // exist and carry weir's programs); removes the programs of interfaces no longer listed.
  Status apply(calc::PolicyResolver& resolver, const std::vector<PolicyEndpoint>& endpoints);

  size_t installed() const { return installed_.size(); }

 private:
  struct Installed {
    calc::pol::EndpointPolicy policy;  // the programs themselves are held by weir_jump1
    uint32_t ifindex = 0;
    uint32_t entry_slot = 0;
    std::vector<uint32_t> slots;  // every slot, entry first
  };
  using Key = std::pair<std::string, calc::pol::Direction>;  // (iface, direction)

  Status install(const Key& key, const PolicyEndpoint& ep, const calc::pol::EndpointPolicy& p);
  Status uninstall(const Key& key);
  void retire(std::vector<uint32_t> slots);
  void clear_retired();
  Status write_sets(const std::vector<calc::IpSetDelta>& changes, bool additions);
  void ref_rules(const calc::pol::EndpointPolicy& p, int delta);
  void prune_stale_members(const calc::PolicyResolver& resolver);

  maps::JumpMap& jump_;
  polprog::PolicyMapFds fds_;
  std::string state_dir_;
  SetPolicySlot set_slot_;
  JumpSlotAllocator slots_;
  std::map<Key, Installed> installed_;
  std::vector<uint32_t> retired_;    // cleared and freed at the next apply()
  std::vector<uint32_t> adopted_;    // a previous agent's slots, cleared after the first apply()
  std::map<uint64_t, uint32_t> rule_refs_;  // rule id -> installed programs using it
  bool first_apply_ = true;
};

}  // namespace weir::dataplane
