#include "dataplane/policy_slots.h"

#include <algorithm>
#include <cerrno>
#include <string>

#include "weir/ifstate.h"
#include "weir/policy.h"

namespace weir::dataplane {

JumpSlotAllocator::JumpSlotAllocator(uint32_t size)
    : size_(size) {}

Result<uint32_t> JumpSlotAllocator::take() {
  for (uint32_t s = next_; s < size_; s++) {
    if (used_.contains(s)) continue;
    used_.insert(s);
    next_ = s + 1;
    return s;
  }
  return Error{ENOSPC, fmt::format("jump map {}: all {} policy slots are in use (map size {})",
                                   WEIR_MAP_JUMP, size_ > WEIR_JUMP_FIRST_POLICY_SLOT
                                                      ? size_ - WEIR_JUMP_FIRST_POLICY_SLOT
                                                      : 0,
                                   size_)};
}

Status JumpSlotAllocator::reserve(uint32_t slot) {
  if (slot < WEIR_JUMP_FIRST_POLICY_SLOT || slot >= size_)
    return Error{EINVAL, fmt::format("jump slot {} is not a policy slot (policy slots are {}..{})",
                                     slot, WEIR_JUMP_FIRST_POLICY_SLOT, size_ - 1)};
  if (!used_.insert(slot).second)
    return Error{EEXIST, fmt::format("jump slot {} is already in use", slot)};
  return {};
}

void JumpSlotAllocator::release(uint32_t slot) {
  if (used_.erase(slot) != 0 && slot < next_) next_ = slot;
}

namespace {

// One lookup and one update of the ifstate entry, the slots changed by `set`.
template <typename Set>
Status update_slots(maps::IfstateTable& ifstate, uint32_t ifindex, const std::string& what, Set set) {
  auto cur = ifstate.lookup(ifindex);
  if (!cur) return cur.error().wrap(fmt::format("setting the {} of ifindex {}", what, ifindex));
  if (!*cur)
    return Error{ENOENT, fmt::format("setting the {} of ifindex {}: no ifstate entry (the "
                                     "interface is not managed by weir)",
                                     what, ifindex)};
  weir_ifstate_val v = **cur;
  set(v);
  // BPF_EXIST: never resurrect an entry the endpoint manager removed meanwhile.
  auto st = ifstate.update(ifindex, v, BPF_EXIST);
  if (!st) return st.error().wrap(fmt::format("setting the {} of ifindex {}", what, ifindex));
  return {};
}

}  // namespace

Status set_policy_slots(maps::IfstateTable& ifstate, uint32_t ifindex, uint32_t ingress_slot,
                        uint32_t egress_slot) {
  return update_slots(ifstate, ifindex, "policy slots", [&](weir_ifstate_val& v) {
    v.ingress_slot = ingress_slot;
    v.egress_slot = egress_slot;
  });
}

Status set_policy_slot(maps::IfstateTable& ifstate, uint32_t ifindex, calc::pol::Direction dir,
                       uint32_t slot) {
  const bool in = dir == calc::pol::Direction::Ingress;
  return update_slots(ifstate, ifindex, fmt::format("{} policy slot", calc::pol::to_string(dir)),
                      [&](weir_ifstate_val& v) { (in ? v.ingress_slot : v.egress_slot) = slot; });
}

Result<uint32_t> get_policy_slot(maps::IfstateTable& ifstate, uint32_t ifindex,
                                 calc::pol::Direction dir) {
  auto cur = ifstate.lookup(ifindex);
  if (!cur) return cur.error().wrap(fmt::format("reading the ifstate entry of ifindex {}", ifindex));
  if (!*cur) return Error{ENOENT, fmt::format("ifindex {} has no ifstate entry", ifindex)};
  return dir == calc::pol::Direction::Ingress ? (*cur)->ingress_slot : (*cur)->egress_slot;
}

Result<std::vector<uint32_t>> occupied_policy_slots(const maps::JumpTable& jump) {
  // Walks every index of the array; empty slots read back as absent and are skipped.
  auto d = jump.dump();
  if (!d) return d.error().wrap("listing the occupied jump slots");
  std::vector<uint32_t> out;
  for (const auto& [slot, prog_id] : *d)
    if (slot >= WEIR_JUMP_FIRST_POLICY_SLOT) out.push_back(slot);
  std::sort(out.begin(), out.end());
  return out;
}

Status install_program(maps::JumpTable& jump, uint32_t slot, int prog_fd) {
  if (prog_fd < 0) return Error{EBADF, fmt::format("installing into jump slot {}: no program", slot)};
  auto st = jump.update(slot, static_cast<__u32>(prog_fd));
  if (!st) return st.error().wrap(fmt::format("installing a program into jump slot {}", slot));
  return {};
}

Status clear_program(maps::JumpTable& jump, uint32_t slot) {
  auto r = jump.remove(slot);
  if (!r) return r.error().wrap(fmt::format("clearing jump slot {}", slot));
  return {};
}

}  // namespace weir::dataplane
