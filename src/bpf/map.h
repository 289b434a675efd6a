// Typed access to BPF maps.
//
//   MapFd          move-only owner of a map file descriptor plus the map's kernel info.
//   Map<K,V>       typed view of a map with one value per key (hash, LRU hash, LPM trie, array).
//   PerCpuMap<K,V> typed view of a per-CPU map: one V per possible CPU per key.
//
// Both views check on construction that sizeof(K)/sizeof(V) match the key/value size the
// kernel reports, so a layout mismatch between userspace and a pinned map is an Error, never
// silent corruption. Errors carry errno and the map's name.
#pragma once

#include <linux/bpf.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "util/fd.h"
#include "util/result.h"

namespace weir::bpf {

// What the kernel says about a map (bpf_obj_get_info_by_fd).
struct MapInfo {
  std::string name;          // object name (at most 15 characters)
  uint32_t type = 0;         // enum bpf_map_type
  uint32_t key_size = 0;
  uint32_t value_size = 0;   // per CPU for per-CPU maps
  uint32_t max_entries = 0;
  uint32_t map_flags = 0;
  uint32_t id = 0;
};

// True for the per-CPU map types (value is one slot per possible CPU).
constexpr bool is_percpu_map_type(uint32_t type) {
  return type == BPF_MAP_TYPE_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_ARRAY ||
         type == BPF_MAP_TYPE_LRU_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

// Human-readable map type ("hash", "lru_hash", "lpm_trie", ...), for messages and the CLI.
std::string map_type_name(uint32_t type);

// Number of possible CPUs (libbpf_num_possible_cpus), the length of per-CPU value arrays.
Result<int> num_possible_cpus();

// Move-only owner of a map fd and its info.
class MapFd {
 public:
  MapFd() = default;
  MapFd(MapFd&&) noexcept = default;
  MapFd& operator=(MapFd&&) noexcept = default;
  MapFd(const MapFd&) = delete;
  MapFd& operator=(const MapFd&) = delete;

  // Take ownership of `fd` and read its info. Fails if fd is not a BPF map.
  static Result<MapFd> from_fd(Fd fd);
  // Duplicate a borrowed fd (e.g. bpf_map__fd() of a skeleton) so the MapFd owns its own
  // reference: the skeleton and the MapFd can then be destroyed in any order.
  static Result<MapFd> dup_of(int borrowed_fd);
  // Open a map pinned in bpffs. The error names the path; a missing pin is reported as
  // "<path>: no such pinned map" with err = ENOENT.
  static Result<MapFd> open_pinned(const std::string& path);
  // Open a map by kernel id (bpf_map_get_fd_by_id).
  static Result<MapFd> from_id(uint32_t id);
  // Create a new map (bpf_map_create), e.g. for tests or agent-side scratch maps. `map_flags`
  // e.g. BPF_F_NO_PREALLOC (required for LPM tries).
  static Result<MapFd> create(uint32_t type, const std::string& name, uint32_t key_size,
                              uint32_t value_size, uint32_t max_entries, uint32_t map_flags = 0);

  int fd() const { return fd_.get(); }
  bool valid() const { return fd_.valid(); }
  const MapInfo& info() const { return info_; }
  const std::string& name() const { return info_.name; }

  // Pin this map at `path` (bpf_obj_pin). The parent directory must exist on a bpffs.
  Status pin(const std::string& path) const;

 private:
  MapFd(Fd fd, MapInfo info) : fd_(std::move(fd)), info_(std::move(info)) {}
  Fd fd_;
  MapInfo info_;
};

namespace detail {
// Untyped primitives shared by the templates (map.cpp). Keys/values are raw buffers of the
// map's sizes. All return errors naming the map.
Result<bool> raw_lookup(const MapFd& m, const void* key, void* value);      // false: absent
Status raw_update(const MapFd& m, const void* key, const void* value, uint64_t flags);
Result<bool> raw_delete(const MapFd& m, const void* key);                   // false: absent
// Fails unless the map's key/value sizes equal the given ones and its per-CPU-ness matches.
Status check_sizes(const MapFd& m, size_t key_size, size_t value_size, bool percpu);
// Every key in the map as raw bytes, walked with BPF_MAP_GET_NEXT_KEY. Keys deleted
// concurrently are simply missed by the caller's lookup; when the kernel restarts the walk
// (the current key was deleted) already seen keys are skipped, so no key appears twice, and
// the walk is bounded.
Result<std::vector<std::string>> raw_keys(const MapFd& m);
// Every (key, value) with BPF_MAP_LOOKUP_BATCH (hash, LRU hash, per-CPU hash, arrays): one
// syscall per chunk instead of two per entry, and bucket-based, so concurrent deletion never
// restarts the walk. `value_stride` is the size of one element's value as the kernel copies it
// (value_size, or round_up(value_size, 8) * ncpus for per-CPU maps). Keys/values are packed
// into `keys`/`values`; returns false (nothing done) when the map type has no batch ops, so the
// caller falls back to raw_keys + lookups.
Result<bool> raw_dump_batch(const MapFd& m, size_t value_stride, std::vector<uint8_t>& keys,
                            std::vector<uint8_t>& values, size_t& n);

// Deletes n keys (key_size bytes each, packed) with BPF_MAP_DELETE_BATCH, one syscall for many
// keys; keys already absent are skipped. Falls back to one delete per key for map types
// without batch ops. Returns how many were deleted.
Result<size_t> raw_delete_batch(const MapFd& m, const void* keys, size_t n);

// One step of a BPF_MAP_LOOKUP_BATCH walk, for callers that stream a map chunk by chunk into
// buffers of their own (memory O(chunk) whatever the map's size).
struct BatchCursor {
  std::vector<uint8_t> in, out;  // the kernel's opaque position (a bucket index for hashes)
  bool first = true;
};
enum class BatchStep {
  More,         // `count` elements copied; call again
  Last,         // `count` elements copied (maybe 0); the walk is over
  NoSpace,      // one bucket holds more than `count` elements: nothing copied, retry bigger
  Unsupported,  // the map type has no batch ops (only ever on the first call)
};
// Copies at most `count` elements into keys/values (value_stride bytes per value) and sets
// `count` to the number copied.
Result<BatchStep> raw_batch_step(const MapFd& m, BatchCursor& c, void* keys, void* values,
                                 uint32_t& count);
}  // namespace detail

// Typed view of a map with one value per key.
template <typename K, typename V>
class Map {
  static_assert(std::is_trivially_copyable_v<K> && std::is_trivially_copyable_v<V>,
                "BPF map keys and values must be trivially copyable");

 public:
  Map() = default;
  Map(Map&&) noexcept = default;
  Map& operator=(Map&&) noexcept = default;

  // Wrap `m`, checking key/value sizes and that the map is not per-CPU.
  static Result<Map> create(MapFd m) {
    WEIR_TRY(detail::check_sizes(m, sizeof(K), sizeof(V), false));
    return Map(std::move(m));
  }
  // open_pinned + create.
  static Result<Map> open_pinned(const std::string& path) {
    auto m = MapFd::open_pinned(path);
    if (!m) return m.error();
    return create(std::move(*m));
  }

  // The value for `key`, std::nullopt when absent.
  Result<std::optional<V>> lookup(const K& key) const {
    V v{};
    auto r = detail::raw_lookup(m_, &key, &v);
    if (!r) return r.error();
    if (!*r) return std::optional<V>{};
    return std::optional<V>{v};
  }
  // Insert or replace (flags: BPF_ANY, BPF_NOEXIST, BPF_EXIST).
  Status update(const K& key, const V& value, uint64_t flags = BPF_ANY) {
    return detail::raw_update(m_, &key, &value, flags);
  }
  // Delete `key`; false when it was not present.
  Result<bool> remove(const K& key) { return detail::raw_delete(m_, &key); }
  // Delete n keys in as few syscalls as the kernel allows; absent keys are skipped. Returns
  // how many were deleted.
  Result<size_t> remove_batch(const K* keys, size_t n) { return detail::raw_delete_batch(m_, keys, n); }
  // Every (key, value) pair. Entries deleted while the dump runs are skipped; no key is
  // returned twice. Not a snapshot: entries added during the walk may or may not appear.
  Result<std::vector<std::pair<K, V>>> dump() const {
    {
      std::vector<uint8_t> kb, vb;
      size_t n = 0;
      auto batched = detail::raw_dump_batch(m_, sizeof(V), kb, vb, n);
      if (!batched) return batched.error();
      if (*batched) {
        std::vector<std::pair<K, V>> out(n);
        for (size_t i = 0; i < n; i++) {
          std::memcpy(&out[i].first, kb.data() + i * sizeof(K), sizeof(K));
          std::memcpy(&out[i].second, vb.data() + i * sizeof(V), sizeof(V));
        }
        return out;
      }
    }
    auto keys = detail::raw_keys(m_);
    if (!keys) return keys.error();
    std::vector<std::pair<K, V>> out;
    out.reserve(keys->size());
    for (const auto& kb : *keys) {
      K k;
      std::memcpy(&k, kb.data(), sizeof(K));
      V v{};
      auto r = detail::raw_lookup(m_, &k, &v);
      if (!r) return r.error();
      if (*r) out.emplace_back(k, v);
    }
    return out;
  }
  // Streams every (key, value) pair chunk by chunk: fn(const K* keys, const V* values, size_t n)
  // -> Status is called for each non-empty chunk of at most `chunk` elements, in buffers reused
  // from one chunk to the next, so memory stays O(chunk) whatever the map's size. fn may
  // delete entries (those of the chunk it holds, or any other: a later chunk then lacks them).
  // BPF_MAP_LOOKUP_BATCH where the map type has it (bucket by bucket: concurrent deletion never
  // restarts the walk), else the whole dump() handed out in chunks. An error of fn stops the
  // walk and is returned.
  template <typename F>
  Status for_each_chunk(F&& fn, uint32_t chunk = kDefaultChunk) const {
    auto batched = stream_batches(fn, chunk);
    if (!batched) return batched.error();
    if (*batched) return {};
    return chunks_of_dump(fn, chunk);
  }
  // Number of entries: streamed in batches (nothing kept), or a key walk for map types without
  // batch ops. Not a snapshot under concurrent changes.
  Result<size_t> count() const {
    size_t n = 0;
    auto add = [&n](const K*, const V*, size_t c) -> Status {
      n += c;
      return {};
    };
    auto batched = stream_batches(add, kDefaultChunk);
    if (!batched) return batched.error();
    if (*batched) return n;
    auto keys = detail::raw_keys(m_);
    if (!keys) return keys.error();
    return keys->size();
  }
  // Delete every entry; returns how many were deleted.
  Result<size_t> clear() {
    auto keys = detail::raw_keys(m_);
    if (!keys) return keys.error();
    size_t n = 0;
    for (const auto& kb : *keys) {
      auto r = detail::raw_delete(m_, kb.data());
      if (!r) return r.error();
      n += *r ? 1 : 0;
    }
    return n;
  }

  const MapFd& fd() const { return m_; }
  const MapInfo& info() const { return m_.info(); }
  const std::string& name() const { return m_.name(); }

  static constexpr uint32_t kDefaultChunk = 4096;

 private:
  explicit Map(MapFd m) : m_(std::move(m)) {}
  // for_each_chunk with BPF_MAP_LOOKUP_BATCH; false (nothing done) when the map type has no
  // batch ops.
  template <typename F>
  Result<bool> stream_batches(F& fn, uint32_t chunk) const {
    std::vector<K> keys(chunk);
    std::vector<V> vals(chunk);
    detail::BatchCursor cur;
    for (;;) {
      auto n = static_cast<uint32_t>(keys.size());
      auto step = detail::raw_batch_step(m_, cur, keys.data(), vals.data(), n);
      if (!step) return step.error();
      if (*step == detail::BatchStep::Unsupported) return false;
      if (*step == detail::BatchStep::NoSpace) {
        if (keys.size() >= (1u << 20)) return Error{ENOSPC, "batch lookup in map " + name()};
        keys.resize(keys.size() * 2);
        vals.resize(vals.size() * 2);
        continue;
      }
      if (n > 0) WEIR_TRY(fn(static_cast<const K*>(keys.data()), static_cast<const V*>(vals.data()), size_t{n}));
      if (*step == detail::BatchStep::Last) return true;
    }
  }
  template <typename F>
  Status chunks_of_dump(F& fn, uint32_t chunk) const {
    auto all = dump();
    if (!all) return all.error();
    std::vector<K> keys;
    std::vector<V> vals;
    for (size_t i = 0; i < all->size(); i += chunk) {
      keys.clear();
      vals.clear();
      for (size_t j = i; j < std::min(all->size(), i + chunk); j++) {
        keys.push_back((*all)[j].first);
        vals.push_back((*all)[j].second);
      }
      WEIR_TRY(fn(static_cast<const K*>(keys.data()), static_cast<const V*>(vals.data()), keys.size()));
    }
    return {};
  }
  MapFd m_;
};

// Typed view of a per-CPU map. The kernel copies per-CPU values in slots rounded up to 8
// bytes; this class packs/unpacks that layout, so callers only see std::vector<V> with one
// element per possible CPU.
template <typename K, typename V>
class PerCpuMap {
  static_assert(std::is_trivially_copyable_v<K> && std::is_trivially_copyable_v<V>,
                "BPF map keys and values must be trivially copyable");

 public:
  static constexpr size_t kSlot = (sizeof(V) + 7) / 8 * 8;  // per-CPU stride

  PerCpuMap() = default;
  PerCpuMap(PerCpuMap&&) noexcept = default;
  PerCpuMap& operator=(PerCpuMap&&) noexcept = default;

  // Wrap `m`, checking key/value sizes and that the map is per-CPU.
  static Result<PerCpuMap> create(MapFd m) {
    WEIR_TRY(detail::check_sizes(m, sizeof(K), sizeof(V), true));
    auto n = num_possible_cpus();
    if (!n) return n.error();
    return PerCpuMap(std::move(m), *n);
  }
  static Result<PerCpuMap> open_pinned(const std::string& path) {
    auto m = MapFd::open_pinned(path);
    if (!m) return m.error();
    return create(std::move(*m));
  }

  int ncpus() const { return ncpus_; }

  // One value per possible CPU, std::nullopt when the key is absent.
  Result<std::optional<std::vector<V>>> lookup(const K& key) const {
    std::vector<uint8_t> buf(kSlot * ncpus_);
    auto r = detail::raw_lookup(m_, &key, buf.data());
    if (!r) return r.error();
    if (!*r) return std::optional<std::vector<V>>{};
    return std::optional<std::vector<V>>{unpack(buf)};
  }
  // Set the per-CPU values; `values.size()` must equal ncpus().
  Status update(const K& key, const std::vector<V>& values, uint64_t flags = BPF_ANY) {
    if (values.size() != static_cast<size_t>(ncpus_))
      return make_error("map {}: update with {} per-CPU values, the kernel has {} possible CPUs",
                        m_.name(), values.size(), ncpus_);
    std::vector<uint8_t> buf(kSlot * ncpus_, 0);
    for (int i = 0; i < ncpus_; i++) std::memcpy(buf.data() + kSlot * i, &values[i], sizeof(V));
    return detail::raw_update(m_, &key, buf.data(), flags);
  }
  // Set every CPU's slot to `value` (e.g. a zero value to flush counters).
  Status update_all(const K& key, const V& value, uint64_t flags = BPF_ANY) {
    return update(key, std::vector<V>(ncpus_, value), flags);
  }
  Result<bool> remove(const K& key) { return detail::raw_delete(m_, &key); }
  // Every (key, per-CPU values) pair; same guarantees as Map::dump.
  Result<std::vector<std::pair<K, std::vector<V>>>> dump() const {
    {
      std::vector<uint8_t> kb, vb;
      size_t n = 0;
      const size_t stride = kSlot * ncpus_;
      auto batched = detail::raw_dump_batch(m_, stride, kb, vb, n);
      if (!batched) return batched.error();
      if (*batched) {
        std::vector<std::pair<K, std::vector<V>>> out;
        out.reserve(n);
        std::vector<uint8_t> one(stride);
        for (size_t i = 0; i < n; i++) {
          K k;
          std::memcpy(&k, kb.data() + i * sizeof(K), sizeof(K));
          std::memcpy(one.data(), vb.data() + i * stride, stride);
          out.emplace_back(k, unpack(one));
        }
        return out;
      }
    }
    auto keys = detail::raw_keys(m_);
    if (!keys) return keys.error();
    std::vector<std::pair<K, std::vector<V>>> out;
    out.reserve(keys->size());
    std::vector<uint8_t> buf(kSlot * ncpus_);
    for (const auto& kb : *keys) {
      K k;
      std::memcpy(&k, kb.data(), sizeof(K));
      auto r = detail::raw_lookup(m_, &k, buf.data());
      if (!r) return r.error();
      if (*r) out.emplace_back(k, unpack(buf));
    }
    return out;
  }
  Result<size_t> count() const {
    auto keys = detail::raw_keys(m_);
    if (!keys) return keys.error();
    return keys->size();
  }

  const MapFd& fd() const { return m_; }
  const MapInfo& info() const { return m_.info(); }
  const std::string& name() const { return m_.name(); }

 private:
  PerCpuMap(MapFd m, int ncpus) : m_(std::move(m)), ncpus_(ncpus) {}
  std::vector<V> unpack(const std::vector<uint8_t>& buf) const {
    std::vector<V> out(ncpus_);
    for (int i = 0; i < ncpus_; i++) std::memcpy(&out[i], buf.data() + kSlot * i, sizeof(V));
    return out;
  }
  MapFd m_;
  int ncpus_ = 0;
};

// Sum per-CPU values with `add(acc, v)`; the accumulator starts value-initialised.
template <typename V, typename Add>
V sum_percpu(const std::vector<V>& values, Add add) {
  V acc{};
  for (const auto& v : values) add(acc, v);
  return acc;
}

// Sum per-CPU arrays of uint64_t counters element-wise (V is e.g. struct { __u64 c[N]; }).
template <typename V>
V sum_percpu_u64(const std::vector<V>& values) {
  static_assert(sizeof(V) % sizeof(uint64_t) == 0, "V must be an array of u64 counters");
  return sum_percpu(values, [](V& acc, const V& v) {
    uint64_t a[sizeof(V) / 8], b[sizeof(V) / 8];
    std::memcpy(a, &acc, sizeof(V));
    std::memcpy(b, &v, sizeof(V));
    for (size_t i = 0; i < sizeof(V) / 8; i++) a[i] += b[i];
    std::memcpy(&acc, a, sizeof(V));
  });
}

}  // namespace weir::bpf
