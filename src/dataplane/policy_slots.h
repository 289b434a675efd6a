// Jump slots and the ifstate policy pointers: the small API the policy manager uses to put a
// compiled policy in front of an endpoint (see bpf/include/weir/policy.h).
//
//   JumpSlotAllocator slots(WEIR_MAP_JUMP_SIZE);
//   uint32_t s = *slots.take();                         // a free slot >= WEIR_JUMP_FIRST_POLICY_SLOT
//   install_program(policy_maps.jump, s, prog_fd);      // the policy's entry chunk
//   set_policy_slot(maps.ifstate, ifindex, Direction::Egress, s);   // one atomic flip
//   ... later, a new version in slot s2: install s2, set_policy_slot(..., s2), then
//   clear_program(jump, s) and slots.release(s) (packets already in s finish there).
//   No policy any more: set_policy_slot(..., WEIR_NO_POLICY_SLOT) first, then clear and release.
//
// Direction is the endpoint's: Ingress = traffic TO the workload (run by weir_to_wl, ifstate
// ingress_slot), Egress = traffic FROM it (weir_from_wl, egress_slot).
#pragma once

#include <cstdint>
#include <set>
#include <vector>

#include "calc/policy_ir.h"
#include "maps/table.h"
#include "util/result.h"

namespace weir::dataplane {

// Which jump slots are in use. Slots 0..WEIR_JUMP_FIRST_POLICY_SLOT-1 are the continuations and
// are never handed out. Not thread-safe (the policy manager owns it).
class JumpSlotAllocator {
 public:
  explicit JumpSlotAllocator(uint32_t size);

  // The lowest free slot; Error{ENOSPC} naming the map size when every slot is taken.
  Result<uint32_t> take();
  // Mark `slot` used (e.g. slots an ifstate entry of a previous agent points at). Error when it
  // is out of range, a continuation slot, or already taken.
  Status reserve(uint32_t slot);
  // Give `slot` back; releasing a free or reserved-range slot is ignored.
  void release(uint32_t slot);

  bool in_use(uint32_t slot) const { return used_.contains(slot); }
  size_t used() const { return used_.size(); }
  uint32_t size() const { return size_; }

 private:
  uint32_t size_;
  uint32_t next_{WEIR_JUMP_FIRST_POLICY_SLOT};  // search hint: no free slot below it
  std::set<uint32_t> used_;
};

// Points the ifstate entry of `ifindex` at `slot` (or WEIR_NO_POLICY_SLOT) for `dir`, keeping
// everything else of the entry: one map update, so a packet sees the old or the new slot, never
// a mix. Error{ENOENT} when the interface has no ifstate entry (not managed by weir).
Status set_policy_slot(maps::IfstateTable& ifstate, uint32_t ifindex, calc::pol::Direction dir,
                       uint32_t slot);
// The slot ifstate[ifindex] names for `dir`; Error{ENOENT} when there is no entry.
Result<uint32_t> get_policy_slot(maps::IfstateTable& ifstate, uint32_t ifindex,
                                 calc::pol::Direction dir);
// Both directions in one update.
Status set_policy_slots(maps::IfstateTable& ifstate, uint32_t ifindex, uint32_t ingress_slot,
                        uint32_t egress_slot);

// Policy slots (>= WEIR_JUMP_FIRST_POLICY_SLOT) that hold a program, ascending: after a restart
// the pinned jump map still holds the previous agent's policy programs and their chunks;
// reserve() them so that new policies never overwrite a slot still in use, then clear the ones
// no longer referenced once the new policies are installed.
Result<std::vector<uint32_t>> occupied_policy_slots(const maps::JumpTable& jump);

// Writes program `prog_fd` into jump slot `slot` (atomic replacement of what was there).
Status install_program(maps::JumpTable& jump, uint32_t slot, int prog_fd);
// Empties jump slot `slot` (a tail call into it then fails: DROP_TAIL_CALL). Absent is fine.
Status clear_program(maps::JumpTable& jump, uint32_t slot);

}  // namespace weir::dataplane
