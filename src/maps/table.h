// Typed map views the dataplane managers work through, over either a kernel map or an in-memory
// fake (maps/fake_table.h), so that their logic is unit-tested without root.
//
//   Table<K,V>          one value per key (hash, LRU hash, LPM trie, prog array): the subset of
//                       bpf::Map the managers use, with the kernel's flag semantics (BPF_ANY,
//                       BPF_NOEXIST -> EEXIST, BPF_EXIST -> ENOENT) and its errors (E2BIG when
//                       a hash is full, ...), each an Error carrying the real errno.
//   PerCpuTable<K,V>    a per-CPU map: one V per possible CPU per key.
//   KernelTable<K,V>    Table over a bpf::Map (borrowed): one virtual call per operation, one per
//                       4,096-entry chunk when streaming, so the kernel path costs what it did.
//   KernelTables        the views of every map of WeirMaps (and of PolicyMaps and TunnelMaps
//                       when given), for the agent, the benchmarks and the BPF tests.
//   CoreTables / PolicyTables / TunnelTables   the references the managers take.
#pragma once

#include <linux/bpf.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bpf/map.h"
#include "maps/weir_maps.h"
#include "util/result.h"

namespace weir::maps {

template <typename K, typename V>
class Table {
 public:
  // fn(keys, values, n) for each non-empty chunk; an error of fn stops the walk.
  using ChunkFn = std::function<Status(const K* keys, const V* values, size_t n)>;

  virtual ~Table() = default;
  virtual const std::string& name() const = 0;
  virtual uint32_t max_entries() const = 0;

  // The value for `key`, std::nullopt when absent.
  virtual Result<std::optional<V>> lookup(const K& key) const = 0;
  // Insert or replace; flags BPF_ANY, BPF_NOEXIST (EEXIST when present), BPF_EXIST (ENOENT
  // when absent). A new key in a full table: E2BIG (hash), ENOSPC (LPM trie), or the least
  // recently used entry is evicted (LRU hash).
  virtual Status update(const K& key, const V& value, uint64_t flags = BPF_ANY) = 0;
  // Delete `key`; false when it was not present.
  virtual Result<bool> remove(const K& key) = 0;
  // Delete n keys, absent ones skipped; returns how many were deleted.
  virtual Result<size_t> remove_batch(const K* keys, size_t n) = 0;
  // Every (key, value) pair (see bpf::Map::dump).
  virtual Result<std::vector<std::pair<K, V>>> dump() const = 0;
  // Streams every pair in chunks of at most `chunk` (see bpf::Map::for_each_chunk): fn may
  // delete entries; a later chunk then lacks them.
  virtual Status for_each_chunk(const ChunkFn& fn, uint32_t chunk) const = 0;
};

template <typename K, typename V>
class PerCpuTable {
 public:
  virtual ~PerCpuTable() = default;
  virtual const std::string& name() const = 0;
  virtual int ncpus() const = 0;
  virtual Result<std::optional<std::vector<V>>> lookup(const K& key) const = 0;
  // values.size() must equal ncpus().
  virtual Status update(const K& key, const std::vector<V>& values, uint64_t flags = BPF_ANY) = 0;
  virtual Result<bool> remove(const K& key) = 0;
};

template <typename K, typename V>
class KernelTable final : public Table<K, V> {
 public:
  explicit KernelTable(bpf::Map<K, V>& m) : m_(&m) {}
  const std::string& name() const override { return m_->name(); }
  uint32_t max_entries() const override { return m_->info().max_entries; }
  Result<std::optional<V>> lookup(const K& key) const override { return m_->lookup(key); }
  Status update(const K& key, const V& value, uint64_t flags = BPF_ANY) override {
    return m_->update(key, value, flags);
  }
  Result<bool> remove(const K& key) override { return m_->remove(key); }
  Result<size_t> remove_batch(const K* keys, size_t n) override { return m_->remove_batch(keys, n); }
  Result<std::vector<std::pair<K, V>>> dump() const override { return m_->dump(); }
  Status for_each_chunk(const typename Table<K, V>::ChunkFn& fn, uint32_t chunk) const override {
    return m_->for_each_chunk(fn, chunk);
  }
  bpf::Map<K, V>& map() { return *m_; }

 private:
  bpf::Map<K, V>* m_;
};

template <typename K, typename V>
class KernelPerCpuTable final : public PerCpuTable<K, V> {
 public:
  explicit KernelPerCpuTable(bpf::PerCpuMap<K, V>& m) : m_(&m) {}
  const std::string& name() const override { return m_->name(); }
  int ncpus() const override { return m_->ncpus(); }
  Result<std::optional<std::vector<V>>> lookup(const K& key) const override { return m_->lookup(key); }
  Status update(const K& key, const std::vector<V>& values, uint64_t flags = BPF_ANY) override {
    return m_->update(key, values, flags);
  }
  Result<bool> remove(const K& key) override { return m_->remove(key); }

 private:
  bpf::PerCpuMap<K, V>* m_;
};

using NatFrontendTable = Table<weir_nat_fe_key, weir_nat_fe_val>;
using NatBackendTable = Table<weir_nat_be_key, weir_nat_be_val>;
using ConntrackTable = Table<weir_ct_key, weir_ct_val>;
using RoutesTable = Table<weir_route_key, weir_route_val>;
using IfstateTable = Table<__u32, weir_ifstate_val>;
using CountersTable = PerCpuTable<weir_counters_key, weir_counters_val>;
using CtStatsTable = PerCpuTable<__u32, weir_ct_stats>;
// weir_jump1, a PROG_ARRAY: an update takes a program fd, a lookup returns the program id.
using JumpTable = Table<__u32, __u32>;
using IpsetsTable = Table<weir_ipset_key, __u32>;
using IpsetExactTable = Table<weir_ipset_exact_key, __u32>;
using RuleCountersTable = PerCpuTable<weir_rule_cnt_key, weir_rule_cnt_val>;
// weir_tunnel1 (an array of one entry, key 0) and weir_vteps1 (weir/tunnel.h).
using TunnelTable = Table<__u32, weir_tunnel_val>;
using VtepsTable = Table<__u32, __u32>;

// The core maps (WeirMaps) as the managers see them.
struct CoreTables {
  NatFrontendTable& nat_fe;
  NatBackendTable& nat_be;
  ConntrackTable& ct;
  RoutesTable& routes;
  IfstateTable& ifstate;
  CountersTable& counters;
  CtStatsTable& ct_stats;
};

// The policy maps (PolicyMaps) the policy manager writes from userspace.
struct PolicyTables {
  JumpTable& jump;
  IpsetsTable& ipsets;
  IpsetExactTable& ipset_exact;
  RuleCountersTable& rule_cnt;
};

// The tunnel maps (TunnelMaps) the agent writes (dataplane/tunnel.h).
struct TunnelTables {
  TunnelTable& tunnel;
  VtepsTable& vteps;
};

// Kernel views of WeirMaps' maps (and PolicyMaps' and TunnelMaps' when given); the maps are
// borrowed and must outlive this.
class KernelTables {
 public:
  explicit KernelTables(WeirMaps& m, PolicyMaps* p = nullptr, TunnelMaps* t = nullptr)
      : nat_fe_(m.nat_fe), nat_be_(m.nat_be), ct_(m.ct), routes_(m.routes), ifstate_(m.ifstate),
        counters_(m.counters), ct_stats_(m.ct_stats) {
    if (p) policy_.emplace(*p);
    if (t) tunnel_.emplace(*t);
  }
  KernelTables(const KernelTables&) = delete;
  KernelTables& operator=(const KernelTables&) = delete;

  CoreTables core() {
    return {nat_fe_, nat_be_, ct_, routes_, ifstate_, counters_, ct_stats_};
  }
  // Only when constructed with PolicyMaps (else std::bad_optional_access).
  PolicyTables policy() {
    Policy& p = policy_.value();
    return {p.jump, p.ipsets, p.ipset_exact, p.rule_cnt};
  }
  // Only when constructed with TunnelMaps (else std::bad_optional_access).
  TunnelTables tunnel() {
    Tunnel& t = tunnel_.value();
    return {t.tunnel, t.vteps};
  }

 private:
  struct Policy {
    explicit Policy(PolicyMaps& p)
        : jump(p.jump), ipsets(p.ipsets), ipset_exact(p.ipset_exact), rule_cnt(p.rule_cnt) {}
    KernelTable<__u32, __u32> jump;
    KernelTable<weir_ipset_key, __u32> ipsets;
    KernelTable<weir_ipset_exact_key, __u32> ipset_exact;
    KernelPerCpuTable<weir_rule_cnt_key, weir_rule_cnt_val> rule_cnt;
  };
  struct Tunnel {
    explicit Tunnel(TunnelMaps& t) : tunnel(t.tunnel), vteps(t.vteps) {}
    KernelTable<__u32, weir_tunnel_val> tunnel;
    KernelTable<__u32, __u32> vteps;
  };
  KernelTable<weir_nat_fe_key, weir_nat_fe_val> nat_fe_;
  KernelTable<weir_nat_be_key, weir_nat_be_val> nat_be_;
  KernelTable<weir_ct_key, weir_ct_val> ct_;
  KernelTable<weir_route_key, weir_route_val> routes_;
  KernelTable<__u32, weir_ifstate_val> ifstate_;
  KernelPerCpuTable<weir_counters_key, weir_counters_val> counters_;
  KernelPerCpuTable<__u32, weir_ct_stats> ct_stats_;
  std::optional<Policy> policy_;
  std::optional<Tunnel> tunnel_;
};

}  // namespace weir::maps
