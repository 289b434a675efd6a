#include "dataplane/policy_manager.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "bpf/bpffs.h"
#include "dataplane/policy_info.h"
#include "weir/ifstate.h"
#include "weir/maps.h"
#include "weir/policy.h"

namespace weir::dataplane {

using calc::pol::Direction;

// ---------------------------------------------------------------- helpers

std::string policy_program_pattern(const std::string& iface, Direction d) {
  std::string tail = iface;
  for (char& c : tail)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') c = '_';
  return fmt::format("w{}{{}}_{}", d == Direction::Ingress ? 'i' : 'e', tail);
}

namespace {

void put_set_id(uint8_t (&out)[8], calc::SetId id) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(id >> (56 - 8 * i));
}

// A CIDR member shorter than /32 (weir_ipsets1, the LPM trie).
weir_ipset_key ipset_key(calc::SetId id, uint32_t addr_host, uint8_t prefix_len) {
  weir_ipset_key k{};
  k.prefixlen = WEIR_IPSET_PREFIX_BASE + prefix_len;
  put_set_id(k.set_id, id);
  k.addr = htonl(addr_host);
  return k;
}

// A /32 member (port 0, proto 0) or a named-port member (weir_ipsetx1, the exact hash).
weir_ipset_exact_key ipset_exact_key(calc::SetId id, uint32_t addr_host, uint16_t port, uint8_t proto) {
  weir_ipset_exact_key k{};
  put_set_id(k.set_id, id);
  k.addr = htonl(addr_host);
  k.port = htons(port);
  k.proto = proto;
  return k;
}

// Deletes every key of `t` for which keep(key) is false; returns how many. Keys are collected
// first (a dump), then deleted.
template <typename K, typename Keep>
Result<size_t> prune(maps::Table<K, __u32>& t, Keep keep) {
  auto all = t.dump();
  if (!all) return all.error();
  std::vector<K> doomed;
  for (const auto& [k, v] : *all)
    if (!keep(k)) doomed.push_back(k);
  return t.remove_batch(doomed.data(), doomed.size());
}

calc::SetId set_id_of(const uint8_t (&b)[8]) {
  calc::SetId id = 0;
  for (unsigned char i : b) id = (id << 8) | i;
  return id;
}

}  // namespace

// ---------------------------------------------------------------- PolicyManager

void PolicyManager::prune_stale_members(const calc::PolicyResolver& resolver) {
  // Members a previous agent wrote for sets or pods that are gone meanwhile: the resolver only
  // reports changes relative to what THIS agent wrote, so they would otherwise stay forever.
  const calc::pol::IpSetTable want = resolver.ipset_table();
  auto trie = prune(maps_.ipsets, [&](const weir_ipset_key& k) {
    auto it = want.nets().find(set_id_of(k.set_id));
    if (it == want.nets().end() || k.prefixlen < WEIR_IPSET_PREFIX_BASE) return false;
    model::Cidr c{model::Ipv4{ntohl(k.addr)},
                  static_cast<uint8_t>(k.prefixlen - WEIR_IPSET_PREFIX_BASE)};
    return c.prefix_len < 32 && it->second.contains(c);
  });
  auto exact = prune(maps_.ipset_exact, [&](const weir_ipset_exact_key& k) {
    calc::SetId id = set_id_of(k.set_id);
    uint32_t addr = ntohl(k.addr);
    if (k.port == 0 && k.proto == 0) {
      auto it = want.nets().find(id);
      return it != want.nets().end() && it->second.contains(model::Cidr{model::Ipv4{addr}, 32});
    }
    auto it = want.ports().find(id);
    return it != want.ports().end() &&
           it->second.contains({addr, k.proto, static_cast<uint16_t>(ntohs(k.port))});
  });
  for (const auto* r : {&trie, &exact})
    if (!*r) spdlog::warn("policy: pruning stale IP set members: {}", r->error().str());
  const size_t n = (trie ? *trie : 0) + (exact ? *exact : 0);
  if (n) {
    spdlog::info("policy: removed {} IP set members left by a previous agent for sets or "
                 "endpoints that no longer exist",
                 n);
  }
}

PolicyManager::PolicyManager(maps::PolicyTables maps, polprog::PolicyMapFds fds,
                             std::string state_dir, SetPolicySlot set_slot,
                             GetPolicySlot get_slot, PolicyLoader* loader)
    : maps_(maps), fds_(fds), state_dir_(std::move(state_dir)), set_slot_(std::move(set_slot)),
      get_slot_(std::move(get_slot)), loader_(loader ? loader : &default_loader_),
      slots_(maps.jump.max_entries()) {}

std::optional<uint32_t> PolicyManager::deny_all_slot(Direction d) const {
  const auto& da = deny_all_[static_cast<int>(d)];
  return da ? std::optional<uint32_t>(da->slot) : std::nullopt;
}

// The deny-all program of a direction, compiled, loaded and written into a slot of its own on
// first use; it stays for the agent's lifetime (a restarted agent adopts and frees it).
Result<const PolicyManager::DenyAll*> PolicyManager::deny_all(Direction d) {
  auto& da = deny_all_[static_cast<int>(d)];
  if (da) return &*da;
  const auto policy = calc::pol::fail_closed_policy(d);
  polprog::CompileOptions opts;
  opts.trace = fds_.trace_jump >= 0;
  auto compiled = polprog::compile(policy, opts);
  if (!compiled) return compiled.error().wrap("compiling the deny-all program");
  const std::string pattern = d == Direction::Ingress ? "wi{}_denyall" : "we{}_denyall";
  auto loaded = loader_->load(*compiled, fds_, pattern);
  if (!loaded) return loaded.error().wrap("loading the deny-all program");
  auto slot = slots_.take();
  if (!slot) return slot.error().wrap("a jump slot for the deny-all program");
  const int fd = loaded->chunks.front().get();
  if (auto st = install_program(maps_.jump, *slot, fd); !st) {
    slots_.release(*slot);
    return st.error().wrap("installing the deny-all program");
  }
  da = DenyAll{*slot, bpf::prog_id(fd), polprog::disassemble(*compiled),
               polprog::chunk_program_name(pattern, 0)};
  spdlog::info("policy: deny-all {} program in jump slot {} (for endpoints whose policy failed)",
               calc::pol::to_string(d), *slot);
  return &*da;
}

// `key`'s policy failed to compile or load. An endpoint that runs a program keeps it; one that
// runs none fails closed.
void PolicyManager::install_failed(const Key& key, const PolicyEndpoint& ep, const Error& err) {
  if (installed_.contains(key)) return;  // this agent's previous program stays in force
  if (!fail_closed_.contains(key)) {
    auto cur = get_slot_(ep.ifindex, key.second);
    if (!cur) {
      unprotected_[ep.iface] = cur.error().wrap("reading its policy slot").str();
      return;
    }
    if (*cur != WEIR_NO_POLICY_SLOT && *cur != deny_all_slot(key.second)) {
      return;  // a previous agent's program (adopted slot) stays in force
    }
  }
  if (auto st = fail_closed(key, ep, err); !st) unprotected_[ep.iface] = st.error().str();
}

Status PolicyManager::fail_closed(const Key& key, const PolicyEndpoint& ep, const Error& err) {
  const std::string what = fmt::format("{} policy of {} ({})", calc::pol::to_string(key.second),
                                       ep.wep_key, ep.iface);
  auto da = deny_all(key.second);
  if (!da) return da.error().wrap(what + ": failing closed");
  if (auto st = set_slot_(ep.ifindex, key.second, (*da)->slot); !st) {
    return st.error().wrap(what + ": pointing ifstate at the deny-all program");
  }
  if (!fail_closed_.contains(key) || fail_closed_[key] != ep.ifindex) {
    spdlog::error("policy: {} is not installed; new flows are denied until it is (fail closed): "
                  "{}",
                  what, err.str());
  }
  fail_closed_[key] = ep.ifindex;
  PolicyInfo info =
      policy_info_from(calc::pol::fail_closed_policy(key.second), ep.iface, ep.ifindex);
  info.entry_slot = (*da)->slot;
  info.entry_prog_id = (*da)->prog_id;
  info.chunk_slots = {(*da)->slot};
  info.program_names = {(*da)->name};
  info.asm_text = (*da)->asm_text;
  info.install_error = fmt::format(
      "policy not installed, every new flow is denied until it is (fail closed): {}", err.str());
  if (auto st = write_policy_info(state_dir_, info); !st) {
    spdlog::warn("{}: policy dump info not written: {}", what, st.error().str());
  }
  return {};
}

// `key` no longer runs deny-all: its policy is installed (the install rewrote ifstate and the
// info file), or it needs none or is gone (`point_at_nothing`: ifstate to no policy, info file
// removed).
void PolicyManager::forget_fail_closed(const Key& key, bool point_at_nothing) {
  auto it = fail_closed_.find(key);
  if (it == fail_closed_.end()) return;
  if (point_at_nothing) {
    auto st = set_slot_(it->second, key.second, WEIR_NO_POLICY_SLOT);
    if (!st && st.error().err != ENOENT) spdlog::warn("policy: {}", st.error().wrap(key.first).str());
    (void)remove_policy_info(state_dir_, key.first,
                                   std::string(calc::pol::to_string(key.second)));
  }
  fail_closed_.erase(it);
}

Status PolicyManager::adopt() {
  // Every occupied policy slot belongs to the previous agent's programs.
  auto occupied = occupied_policy_slots(maps_.jump);
  if (!occupied) return occupied.error();
  for (uint32_t s : *occupied)
    if (slots_.reserve(s)) adopted_.push_back(s);
  if (!adopted_.empty()) {
    spdlog::info("policy: {} jump slots hold a previous agent's programs; they serve until the "
                 "first sync replaces them",
                 adopted_.size());
  }
  return {};
}

Status PolicyManager::write_sets(const std::vector<calc::IpSetDelta>& changes, bool additions) {
  // /32 and named-port members go to the exact hash, shorter CIDRs to the trie (weir/policy.h).
  std::vector<std::string> errors;
  int first_err = 0;
  for (const auto& d : changes) {
    const auto& nets = additions ? d.add_nets : d.del_nets;
    const auto& ports = additions ? d.add_ports : d.del_ports;
    auto apply_key = [&](auto& table, const auto& k, const std::string& what) {
      Status st;
      if (additions) {
        st = table.update(k, 1u, BPF_ANY);
      } else if (auto r = table.remove(k); !r) {  // a member already absent is fine (false)
        st = r.error();
      }
      if (st) return;
      if (first_err == 0) first_err = st.error().err;
      errors.push_back(fmt::format("{}: {} {} in IP set {}: {}", table.name(),
                                   additions ? "adding" : "removing", what,
                                   model::format_set_id(d.id), std::strerror(st.error().err)));
    };
    for (const auto& n : nets) {
      if (n.prefix_len == 32) {
        apply_key(maps_.ipset_exact, ipset_exact_key(d.id, n.addr.value, 0, 0), n.str());
      } else {
        apply_key(maps_.ipsets, ipset_key(d.id, n.addr.value, static_cast<uint8_t>(n.prefix_len)),
                  n.str());
      }
    }
    for (const auto& p : ports) {
      apply_key(maps_.ipset_exact, ipset_exact_key(d.id, p.addr.value, p.port, p.proto),
                fmt::format("{}:{}/{}", p.addr.str(), p.port, p.proto));
    }
  }
  if (errors.empty()) return {};
  std::string msg = errors.front();
  if (errors.size() > 1) msg += fmt::format(" (and {} more)", errors.size() - 1);
  return Error{first_err, "IP sets: " + msg};
}

void PolicyManager::ref_rules(const calc::pol::EndpointPolicy& p, int delta) {
  for (const auto& t : p.tiers)
    for (const auto& pol : t.policies)
      for (const auto& r : pol.rules) {
        if (delta > 0) {
          ++rule_refs_[r.id];
          continue;
        }
        auto it = rule_refs_.find(r.id);
        if (it == rule_refs_.end()) continue;
        if (--it->second == 0) {
          rule_refs_.erase(it);
          (void)maps_.rule_cnt.remove(r.id);  // its count goes with the last user
        }
      }
}

void PolicyManager::retire(std::vector<uint32_t> slots) {
  retired_.insert(retired_.end(), slots.begin(), slots.end());
}

void PolicyManager::clear_retired() {
  for (uint32_t s : retired_) {
    if (auto st = clear_program(maps_.jump, s); !st) spdlog::warn("policy: {}", st.error().str());
    slots_.release(s);
  }
  retired_.clear();
}

// Writes chunks 1..N-1 into their jump slots (highest first: a chunk's continuations are in
// place before anything can jump to it), then the entry chunk into `entry`.
Status PolicyManager::install_entry_and_chunks(const polprog::LoadedPolicy& loaded, uint32_t entry) {
  for (size_t i = loaded.chunks.size(); i-- > 1;) {
    if (auto st = install_program(maps_.jump, loaded.chunk_slots.at(i), loaded.chunks[i].get()); !st)
      return st.error().wrap(fmt::format("installing chunk {}", i));
  }
  return install_program(maps_.jump, entry, loaded.chunks.front().get());
}

Status PolicyManager::install(const Key& key, const PolicyEndpoint& ep,
                              const calc::pol::EndpointPolicy& p) {
  const std::string what = fmt::format("{} policy of {} ({})", calc::pol::to_string(key.second),
                                       ep.wep_key, ep.iface);
  std::vector<uint32_t> taken;
  auto give_back = [&] {
    for (uint32_t s : taken) slots_.release(s);
  };
  auto entry = slots_.take();
  if (!entry) return entry.error().wrap(what);
  taken.push_back(*entry);

  polprog::CompileOptions opts;
  opts.trace = fds_.trace_jump >= 0;  // `weir bpf trace` follows packets through it
  bool out_of_slots = false;
  opts.slot_of_chunk = [&](size_t) -> uint32_t {
    auto s = slots_.take();
    if (!s.ok()) {
      out_of_slots = true;
      return 0;
    }
    taken.push_back(*s);
    return *s;
  };
  auto compiled = polprog::compile(p, opts);
  if (!compiled || out_of_slots) {
    give_back();
    if (out_of_slots) return Error{ENOSPC, what + ": not enough free slots in weir_jump1"};
    return compiled.error().wrap(what + ": compiling");
  }
  const std::string pattern = policy_program_pattern(ep.iface, key.second);
  auto loaded = loader_->load(*compiled, fds_, pattern);
  if (!loaded) {
    give_back();
    return loaded.error().wrap(what + ": loading");
  }
  if (auto st = install_entry_and_chunks(*loaded, *entry); !st) {
    retire(taken);  // some chunks may already sit in their slots
    return st.error().wrap(what);
  }
  const int entry_fd = loaded->chunks.front().get();
  // The flip: from here on new flows on this interface run the new program.
  if (auto st = set_slot_(ep.ifindex, key.second, *entry); !st) {
    retire(taken);
    return st.error().wrap(what + ": pointing ifstate at the new program");
  }

  PolicyInfo info = policy_info_from(p, ep.iface, ep.ifindex);
  info.entry_slot = *entry;
  info.entry_prog_id = bpf::prog_id(entry_fd);
  info.chunk_slots = taken;
  for (size_t i = 0; i < loaded->chunks.size(); i++)
    info.program_names.push_back(polprog::chunk_program_name(pattern, i));
  info.asm_text = polprog::disassemble(*compiled);
  if (auto st = write_policy_info(state_dir_, info); !st) {
    spdlog::warn("{}: policy dump info not written: {}", what, st.error().str());
  }

  auto old = installed_.find(key);
  if (old != installed_.end()) {
    retire(old->second.slots);
    ref_rules(old->second.policy, -1);
    installed_.erase(old);
  }
  ref_rules(p, +1);
  fail_closed_.erase(key);
  Installed inst{p, ep.ifindex, *entry, std::move(taken)};
  installed_.emplace(key, std::move(inst));
  spdlog::info("policy: installed {}: {} rules in {} program(s), entry slot {}", what,
               p.rule_count(), installed_.at(key).slots.size(), *entry);
  return {};
}

Status PolicyManager::uninstall(const Key& key) {
  auto it = installed_.find(key);
  if (it == installed_.end()) return {};
  Status st = set_slot_(it->second.ifindex, key.second, WEIR_NO_POLICY_SLOT);
  if (!st && st.error().err != ENOENT) return st.error().wrap("removing the policy of " + key.first);
  retire(it->second.slots);
  ref_rules(it->second.policy, -1);
  (void)remove_policy_info(state_dir_, key.first,
                                 std::string(calc::pol::to_string(key.second)));
  spdlog::info("policy: removed the {} policy of {}", calc::pol::to_string(key.second), key.first);
  installed_.erase(it);
  return {};
}

Status PolicyManager::apply(calc::PolicyResolver& resolver,
                            const std::vector<PolicyEndpoint>& endpoints) {
  clear_retired();  // programs replaced at the previous apply(): no packet can still need them
  unprotected_.clear();
  std::vector<Error> errors;
  auto changes = resolver.take_ipset_changes();
  if (auto st = write_sets(changes, true); !st) errors.push_back(st.error());

  std::set<Key> wanted;
  for (const auto& ep : endpoints) {
    for (Direction d : {Direction::Ingress, Direction::Egress}) {
      Key key{ep.iface, d};
      const calc::pol::EndpointPolicy* p = resolver.policy(ep.wep_key, d);
      if (p == nullptr || p->tiers.empty()) {
        // No policy: allow, no program. After a restart the interface may still point at a
        // previous agent's program for a policy deleted meanwhile: point it at nothing; so does
        // an endpoint that failed closed on a policy that no longer applies.
        forget_fail_closed(key, true);
        if (first_apply_ && !installed_.contains(key)) {
          if (auto st = set_slot_(ep.ifindex, d, WEIR_NO_POLICY_SLOT); !st) {
            errors.push_back(st.error().wrap(ep.iface));
          }
          // And its description, e.g. the previous agent's fail-closed one.
          (void)remove_policy_info(state_dir_, ep.iface, std::string(calc::pol::to_string(d)));
        }
        continue;
      }
      wanted.insert(key);
      auto it = installed_.find(key);
      if (it != installed_.end() && it->second.ifindex == ep.ifindex && it->second.policy == *p) {
        continue;
      }
      if (auto st = install(key, ep, *p); !st) {
        errors.push_back(st.error());
        // The previous program (if any) stays in force; keep it wanted. None: fail closed.
        install_failed(key, ep, st.error());
      }
    }
  }
  std::vector<Key> gone, gone_closed;
  for (const auto& [key, inst] : installed_) {
    if (!wanted.contains(key)) gone.push_back(key);
  }
  for (const auto& [key, ifindex] : fail_closed_) {
    if (!wanted.contains(key)) gone_closed.push_back(key);
  }
  for (const auto& key : gone_closed) forget_fail_closed(key, true);
  for (const auto& key : gone) {
    if (auto st = uninstall(key); !st) errors.push_back(st.error());
  }
  // A previous agent's slots may still be what an interface points at when its replacement
  // failed: free them only once every install succeeded.
  if (!adopted_.empty() && errors.empty()) {
    retire(std::move(adopted_));
    adopted_.clear();
  }
  if (auto st = write_sets(changes, false); !st) errors.push_back(st.error());
  if (first_apply_) prune_stale_members(resolver);
  first_apply_ = false;

  if (errors.size() <= 1) return errors.empty() ? Status{} : Status{errors.front()};
  std::string msg;
  for (const auto& e : errors) msg += (msg.empty() ? "" : "; ") + e.str();
  return Error{errors.front().err, msg};  // the first failure's errno, not a generic one
}

}  // namespace weir::dataplane
