// PolicyManager: keeps each local workload interface's policy programs in step with the
// PolicyResolver (calc/policy.h).
//
// For every (interface, direction) whose EndpointPolicy changed: compile (polprog), load through
// the verifier, write the chunks into fresh weir_jump1 slots, then point the interface's ifstate
// at the new entry slot in one map update: new flows see the new policy at once, in-flight
// packets finish on the old program, established flows never run policy (their decision lives
// in conntrack). The old slots are cleared and freed at the next apply().
//
// A policy that fails to compile or load is reported, and:
//   - an endpoint that already runs a program (installed by this agent, or a previous agent's
//     that its ifstate still names) keeps it;
//   - an endpoint that runs none (a new pod) fails closed: its ifstate is pointed at a deny-all
//     program (calc::pol::fail_closed_policy(), loaded once per direction into a jump slot of
//     its own), so its new flows are dropped and counted "Dropped by policy" until a later
//     apply() installs its policy; the policy dump says why on its Error line
//     (PolicyInfo::install_error). failing() tells the caller to retry.
// Only when even that is impossible (deny-all cannot be loaded, ifstate cannot be written) is
// the interface listed by unprotected(): the endpoint manager must not attach it.
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

// The jump slot ifstate[ifindex] names for one direction (WEIR_NO_POLICY_SLOT: none).
using GetPolicySlot = std::function<Result<uint32_t>(uint32_t ifindex, calc::pol::Direction dir)>;

// The name pattern (polprog::chunk_program_name) of an endpoint's policy programs: "wi{}_IFACE"
// for ingress, "we{}_IFACE" for egress, where {} is the chunk index and characters a BPF name
// may not hold become '_': `bpftool prog show` tells two pods' programs apart by the end of
// their interface names. `weir bpf policy dump` lists the names (PolicyInfo::program_names).
std::string policy_program_pattern(const std::string& iface, calc::pol::Direction d);

// Loads compiled policy programs through the verifier: polprog::load(). Tests replace it to make
// a load fail.
class PolicyLoader {
 public:
  virtual ~PolicyLoader() = default;
  virtual Result<polprog::LoadedPolicy> load(const polprog::CompiledPolicy& compiled,
                                             const polprog::PolicyMapFds& fds,
                                             const std::string& name_prefix) {
    return polprog::load(compiled, fds, name_prefix);
  }
};

class PolicyManager {
 public:
  // `maps`: the policy maps this manager writes (kernel views, or fakes in unit tests); the size
  // of maps.jump (weir_jump1) bounds the slots handed out. `fds`: the same maps' fds, for the
  // programs' relocations only (the loader's business). `loader`: nullptr for polprog::load();
  // else borrowed, must outlive this.
  PolicyManager(maps::PolicyTables maps, polprog::PolicyMapFds fds, std::string state_dir,
                SetPolicySlot set_slot, GetPolicySlot get_slot, PolicyLoader* loader = nullptr);

  // Reserves the jump slots a previous agent's programs occupy: they keep serving until this
  // agent's first apply() has installed its own programs, then they are cleared.
  Status adopt();

  // Writes IP set changes and (re)installs what changed for `endpoints` (the interfaces that
  // exist and carry weir's programs); removes the programs of interfaces no longer listed.
  Status apply(calc::PolicyResolver& resolver, const std::vector<PolicyEndpoint>& endpoints);

  size_t installed() const { return installed_.size(); }
  // (Interface, direction) pairs that run deny-all because their policy failed: apply() again.
  size_t failing() const { return fail_closed_.size(); }
  // Interfaces of the last apply() whose policy is not in force and not even denied (see above),
  // with the reason: not to be attached.
  const std::map<std::string, std::string>& unprotected() const { return unprotected_; }
  // The jump slot of the deny-all program of a direction, when loaded.
  std::optional<uint32_t> deny_all_slot(calc::pol::Direction d) const;
  // The policy installed on `iface` in direction `d` (what its rule ids mean), nullptr when none.
  const calc::pol::EndpointPolicy* installed_policy(const std::string& iface, calc::pol::Direction d) const {
    auto it = installed_.find(Key{iface, d});
    return it == installed_.end() ? nullptr : &it->second.policy;
  }

 private:
  struct Installed {
    calc::pol::EndpointPolicy policy;  // the programs themselves are held by weir_jump1
    uint32_t ifindex = 0;
    uint32_t entry_slot = 0;
    std::vector<uint32_t> slots;  // every slot, entry first
  };
  using Key = std::pair<std::string, calc::pol::Direction>;  // (iface, direction)

  struct DenyAll {
    uint32_t slot = 0;
    uint32_t prog_id = 0;
    std::string asm_text;
    std::string name;  // the program's kernel name
  };

  Status install_entry_and_chunks(const polprog::LoadedPolicy& loaded, uint32_t entry);
  Status install(const Key& key, const PolicyEndpoint& ep, const calc::pol::EndpointPolicy& p);
  void install_failed(const Key& key, const PolicyEndpoint& ep, const Error& err);
  Status fail_closed(const Key& key, const PolicyEndpoint& ep, const Error& err);
  Result<const DenyAll*> deny_all(calc::pol::Direction d);
  void forget_fail_closed(const Key& key, bool point_at_nothing);
  Status uninstall(const Key& key);
  void retire(std::vector<uint32_t> slots);
  void clear_retired();
  Status write_sets(const std::vector<calc::IpSetDelta>& changes, bool additions);
  void ref_rules(const calc::pol::EndpointPolicy& p, int delta);
  void prune_stale_members(const calc::PolicyResolver& resolver);

  maps::PolicyTables maps_;
  polprog::PolicyMapFds fds_;
  std::string state_dir_;
  SetPolicySlot set_slot_;
  GetPolicySlot get_slot_;
  PolicyLoader default_loader_;
  PolicyLoader* loader_;
  JumpSlotAllocator slots_;
  std::map<Key, Installed> installed_;
  std::map<Key, uint32_t> fail_closed_;   // (iface, dir) running deny-all -> ifindex
  std::optional<DenyAll> deny_all_[2];    // by Direction; loaded on first need, kept
  std::map<std::string, std::string> unprotected_;  // iface -> why (last apply())
  std::vector<uint32_t> retired_;    // cleared and freed at the next apply()
  std::vector<uint32_t> adopted_;    // a previous agent's slots, cleared after the first apply()
  std::map<uint64_t, uint32_t> rule_refs_;  // rule id -> installed programs using it
  bool first_apply_ = true;
};

}  // namespace weir::dataplane
