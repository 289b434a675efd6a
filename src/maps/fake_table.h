// In-memory maps.h Tables for unit tests of the dataplane managers (no kernel, no root), with
// the kernel's semantics where the managers depend on them:
//   - update flags: BPF_NOEXIST on a present key -> EEXIST, BPF_EXIST on an absent key ->
//     ENOENT, any other flag -> EINVAL;
//   - capacity: a new key in a full Hash -> E2BIG, in a full LpmTrie -> ENOSPC; a full LruHash
//     evicts its least recently used entry (lookups and updates count as uses); a ProgArray
//     key >= max_entries -> E2BIG, and BPF_NOEXIST -> EEXIST even on an empty slot (arrays are
//     preallocated);
//   - lookup of an absent key -> nullopt, delete of an absent key -> false;
//   - for_each_chunk walks in key order, chunk after chunk, and sees deletions made by fn.
// LPM tries match exactly (the managers look up the prefixes they wrote), not longest-prefix.
// Errors carry the errno and name the map as the kernel views do.
//
// Tests also get: every operation counted (updates(), deletes()), failure injection
// (fail_updates(errno): every later update fails until fail_updates(0)), set_max_entries().
#pragma once

#include <linux/bpf.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "maps/table.h"

namespace weir::maps {

enum class FakeKind { Hash, LruHash, LpmTrie, ProgArray };

namespace detail {
// Orders trivially copyable keys by their bytes, as the kernel compares them.
template <typename K>
struct BytesLess {
  bool operator()(const K& a, const K& b) const { return std::memcmp(&a, &b, sizeof(K)) < 0; }
};
}  // namespace detail

template <typename K, typename V>
class FakeTable final : public Table<K, V> {
 public:
  FakeTable(std::string name, uint32_t max_entries, FakeKind kind = FakeKind::Hash)
      : name_(std::move(name)), max_(max_entries), kind_(kind) {}

  const std::string& name() const override { return name_; }
  uint32_t max_entries() const override { return max_; }

  Result<std::optional<V>> lookup(const K& key) const override {
    auto it = m_.find(key);
    if (it == m_.end()) return std::optional<V>{};
    it->second.used = ++clock_;
    return std::optional<V>{it->second.v};
  }

  Status update(const K& key, const V& value, uint64_t flags = BPF_ANY) override {
    updates_++;
    if (fail_err_ != 0) return fail("update of map", fail_err_);
    if (flags > BPF_EXIST) return fail("update of map", EINVAL);
    auto it = m_.find(key);
    if (kind_ == FakeKind::ProgArray) {
      if (index_of(key) >= max_) return fail("update of map", E2BIG);
      if (flags == BPF_NOEXIST) return fail("update of map", EEXIST);
    } else if (it != m_.end() && flags == BPF_NOEXIST) {
      return fail("update of map", EEXIST);
    }
    if (it == m_.end() && flags == BPF_EXIST && kind_ != FakeKind::ProgArray)
      return fail("update of map", ENOENT);
    if (it == m_.end() && kind_ != FakeKind::ProgArray && m_.size() >= max_) {
      if (kind_ == FakeKind::Hash) return fail("update of map", E2BIG);
      if (kind_ == FakeKind::LpmTrie) return fail("update of map", ENOSPC);
      evict_lru();
    }
    m_[key] = Entry{value, ++clock_};
    return {};
  }

  Result<bool> remove(const K& key) override {
    deletes_++;
    return m_.erase(key) != 0;
  }

  Result<size_t> remove_batch(const K* keys, size_t n) override {
    size_t gone = 0;
    for (size_t i = 0; i < n; i++) {
      auto r = remove(keys[i]);
      if (!r) return r.error();
      gone += *r ? 1 : 0;
    }
    return gone;
  }

  Result<std::vector<std::pair<K, V>>> dump() const override {
    std::vector<std::pair<K, V>> out;
    out.reserve(m_.size());
    for (const auto& [k, e] : m_) out.emplace_back(k, e.v);
    return out;
  }

  Status for_each_chunk(const typename Table<K, V>::ChunkFn& fn, uint32_t chunk) const override {
    std::vector<K> keys;
    std::vector<V> vals;
    auto it = m_.begin();
    while (it != m_.end()) {
      keys.clear();
      vals.clear();
      for (; it != m_.end() && keys.size() < chunk; ++it) {
        keys.push_back(it->first);
        vals.push_back(it->second.v);
      }
      WEIR_TRY(fn(keys.data(), vals.data(), keys.size()));
      it = m_.upper_bound(keys.back());  // fn may have deleted entries, the next one included
    }
    return {};
  }

  // Test controls and observations.
  void set_max_entries(uint32_t n) { max_ = n; }
  void fail_updates(int err) { fail_err_ = err; }
  size_t updates() const { return updates_; }
  size_t deletes() const { return deletes_; }
  size_t size() const { return m_.size(); }
  bool contains(const K& key) const { return m_.count(key) != 0; }
  // The value without counting as a use (LRU) and without Result: nullopt when absent.
  std::optional<V> peek(const K& key) const {
    auto it = m_.find(key);
    return it == m_.end() ? std::nullopt : std::optional<V>(it->second.v);
  }
  void clear() { m_.clear(); }

 private:
  struct Entry {
    V v;
    mutable uint64_t used = 0;
  };
  Error fail(const char* what, int err) const { return Error{err, std::string(what) + " " + name_}; }
  static uint64_t index_of(const K& key) {
    uint64_t i = 0;
    std::memcpy(&i, &key, std::min(sizeof(K), sizeof(i)));
    return i;
  }
  void evict_lru() {
    auto victim = m_.begin();
    for (auto it = m_.begin(); it != m_.end(); ++it)
      if (it->second.used < victim->second.used) victim = it;
    if (victim != m_.end()) m_.erase(victim);
  }

  std::string name_;
  uint32_t max_;
  FakeKind kind_;
  std::map<K, Entry, detail::BytesLess<K>> m_;
  mutable uint64_t clock_ = 0;
  size_t updates_ = 0, deletes_ = 0;
  int fail_err_ = 0;
};

template <typename K, typename V>
class FakePerCpuTable final : public PerCpuTable<K, V> {
 public:
  FakePerCpuTable(std::string name, uint32_t max_entries, int ncpus = 2)
      : name_(std::move(name)), max_(max_entries), ncpus_(ncpus) {}
  const std::string& name() const override { return name_; }
  int ncpus() const override { return ncpus_; }
  Result<std::optional<std::vector<V>>> lookup(const K& key) const override {
    auto it = m_.find(key);
    if (it == m_.end()) return std::optional<std::vector<V>>{};
    return std::optional<std::vector<V>>{it->second};
  }
  Status update(const K& key, const std::vector<V>& values, uint64_t flags = BPF_ANY) override {
    if (values.size() != static_cast<size_t>(ncpus_) || flags > BPF_EXIST)
      return Error{EINVAL, "update of map " + name_};
    const bool present = m_.count(key) != 0;
    if (present && flags == BPF_NOEXIST) return Error{EEXIST, "update of map " + name_};
    if (!present && flags == BPF_EXIST) return Error{ENOENT, "update of map " + name_};
    if (!present && m_.size() >= max_) return Error{E2BIG, "update of map " + name_};
    m_[key] = values;
    return {};
  }
  Result<bool> remove(const K& key) override { return m_.erase(key) != 0; }

  bool contains(const K& key) const { return m_.count(key) != 0; }
  size_t size() const { return m_.size(); }

 private:
  std::string name_;
  uint32_t max_;
  int ncpus_;
  std::map<K, std::vector<V>, detail::BytesLess<K>> m_;
};

// Fakes of every map, sized like the defaults that matter to tests (small: capacity is easy to
// reach). core()/policy() hand them to the managers as the kernel views would be.
struct FakeTables {
  FakeTable<weir_nat_fe_key, weir_nat_fe_val> nat_fe{"weir_nat_fe", 1024};
  FakeTable<weir_nat_be_key, weir_nat_be_val> nat_be{"weir_nat_be", 4096};
  FakeTable<weir_ct_key, weir_ct_val> ct{"weir_ct", 65536, FakeKind::LruHash};
  FakeTable<weir_route_key, weir_route_val> routes{"weir_routes", 1024, FakeKind::LpmTrie};
  FakeTable<__u32, weir_ifstate_val> ifstate{"weir_ifstate", 1024};
  FakePerCpuTable<weir_counters_key, weir_counters_val> counters{"weir_counters", 1024};
  FakePerCpuTable<__u32, weir_ct_stats> ct_stats{"weir_ct_stats", 2};
  FakeTable<__u32, __u32> jump{"weir_jump", 256, FakeKind::ProgArray};
  FakeTable<weir_ipset_key, __u32> ipsets{"weir_ipsets", 4096, FakeKind::LpmTrie};
  FakeTable<weir_ipset_exact_key, __u32> ipset_exact{"weir_ipsetx", 4096};
  FakePerCpuTable<weir_rule_cnt_key, weir_rule_cnt_val> rule_cnt{"weir_rule_cnt", 1024};

  FakeTables() {
    // The BPF object creates both ct_stats indexes (an array): so does the fake.
    (void)ct_stats.update(WEIR_CT_STATS_DATAPATH, std::vector<weir_ct_stats>(2));
    (void)ct_stats.update(WEIR_CT_STATS_AGENT, std::vector<weir_ct_stats>(2));
  }
  CoreTables core() { return {nat_fe, nat_be, ct, routes, ifstate, counters, ct_stats}; }
  PolicyTables policy() { return {jump, ipsets, ipset_exact, rule_cnt}; }
};

}  // namespace weir::maps
