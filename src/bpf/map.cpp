#include "bpf/map.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <unordered_set>

#include <spdlog/spdlog.h>

namespace weir::bpf {

std::string map_type_name(uint32_t type) {
  const char* n = libbpf_bpf_map_type_str(static_cast<enum bpf_map_type>(type));
  if (n != nullptr) return n;
  return fmt::format("type{}", type);
}

Result<int> num_possible_cpus() {
  int n = libbpf_num_possible_cpus();
  if (n <= 0) return sys_error(n, "reading the number of possible CPUs");
  return n;
}

Result<MapFd> MapFd::from_fd(Fd fd) {
  if (!fd.valid()) return make_error("invalid map fd");
  struct bpf_map_info info {};
  __u32 len = sizeof(info);
  int err = bpf_obj_get_info_by_fd(fd.get(), &info, &len);
  if (err != 0) return sys_error(errno, fmt::format("reading info of map fd {}", fd.get()));
  MapInfo mi;
  mi.name = info.name;
  mi.type = info.type;
  mi.key_size = info.key_size;
  mi.value_size = info.value_size;
  mi.max_entries = info.max_entries;
  mi.map_flags = info.map_flags;
  mi.id = info.id;
  return MapFd(std::move(fd), std::move(mi));
}

Result<MapFd> MapFd::dup_of(int borrowed_fd) {
  if (borrowed_fd < 0) return make_error("invalid map fd {}", borrowed_fd);
  int fd = fcntl(borrowed_fd, F_DUPFD_CLOEXEC, 3);
  if (fd < 0) return errno_error(fmt::format("duplicating map fd {}", borrowed_fd));
  return from_fd(Fd(fd));
}

Result<MapFd> MapFd::open_pinned(const std::string& path) {
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT) return Error{ENOENT, path + ": no such pinned map"};
    return Error{e, "opening pinned map " + path};
  }
  auto m = from_fd(Fd(fd));
  if (!m) return m.error().wrap(path);
  return m;
}

Result<MapFd> MapFd::from_id(uint32_t id) {
  int fd = bpf_map_get_fd_by_id(id);
  if (fd < 0) return errno_error(fmt::format("opening map id {}", id));
  return from_fd(Fd(fd));
}

Result<MapFd> MapFd::create(uint32_t type, const std::string& name, uint32_t key_size,
                            uint32_t value_size, uint32_t max_entries, uint32_t map_flags) {
  LIBBPF_OPTS(bpf_map_create_opts, o);
  o.map_flags = map_flags;
  int fd = bpf_map_create(static_cast<enum bpf_map_type>(type), name.c_str(), key_size, value_size,
                          max_entries, &o);
  if (fd < 0)
    return errno_error(fmt::format("creating {} map {} ({}/{} bytes, {} entries)", map_type_name(type), name,
                                   key_size, value_size, max_entries));
  return from_fd(Fd(fd));
}

Status MapFd::pin(const std::string& path) const {
  if (bpf_obj_pin(fd(), path.c_str()) != 0)
    return errno_error(fmt::format("pinning map {} at {}", name(), path));
  return {};
}

namespace detail {

Result<bool> raw_lookup(const MapFd& m, const void* key, void* value) {
  if (bpf_map_lookup_elem(m.fd(), key, value) == 0) return true;
  if (errno == ENOENT) return false;
  return errno_error("lookup in map " + m.name());
}

Status raw_update(const MapFd& m, const void* key, const void* value, uint64_t flags) {
  if (bpf_map_update_elem(m.fd(), key, value, flags) == 0) return {};
  return errno_error("update of map " + m.name());
}

Result<bool> raw_delete(const MapFd& m, const void* key) {
  if (bpf_map_delete_elem(m.fd(), key) == 0) return true;
  if (errno == ENOENT) return false;
  return errno_error("delete from map " + m.name());
}

Status check_sizes(const MapFd& m, size_t key_size, size_t value_size, bool percpu) {
  if (!m.valid()) return make_error("map is not open");
  const MapInfo& i = m.info();
  if (i.key_size != key_size || i.value_size != value_size)
    return make_error(
        "map {} (id {}): kernel key/value size {}/{} does not match this binary's {}/{} (map "
        "layout changed? WEIR_MAPS_VERSION must be bumped)",
        i.name, i.id, i.key_size, i.value_size, key_size, value_size);
  if (is_percpu_map_type(i.type) != percpu)
    return make_error("map {} (id {}) is of type {}, expected a {}per-CPU map", i.name, i.id,
                      map_type_name(i.type), percpu ? "" : "non-");
  return {};
}

Result<std::vector<std::string>> raw_keys(const MapFd& m) {
  const size_t ks = m.info().key_size;
  std::vector<std::string> keys;
  std::unordered_set<std::string> seen;
  std::string cur(ks, '\0'), next(ks, '\0');
  bool first = true;
  // The kernel restarts from the first key when the current key was deleted meanwhile: with
  // `seen` no key is returned twice, and the bound stops a walk racing constant churn.
  const uint64_t bound = 4ull * (m.info().max_entries + 1) + 1024;
  uint64_t steps = 0;
  for (;;) {
    if (++steps > bound) {
      spdlog::warn("map {}: key walk stopped after {} steps (map changing too fast); {} keys",
                   m.name(), bound, keys.size());
      break;
    }
    int err = bpf_map_get_next_key(m.fd(), first ? nullptr : cur.data(), next.data());
    if (err != 0) {
      if (errno == ENOENT) break;
      return errno_error("iterating map " + m.name());
    }
    first = false;
    if (seen.insert(next).second) keys.push_back(next);
    cur.swap(next);
  }
  return keys;
}

namespace {
Result<size_t> delete_one_by_one(const MapFd& m, const uint8_t* keys, size_t n) {
  size_t done = 0;
  for (size_t i = 0; i < n; i++) {
    auto r = raw_delete(m, keys + i * m.info().key_size);
    if (!r) return r.error();
    done += *r ? 1 : 0;
  }
  return done;
}
}  // namespace

Result<size_t> raw_delete_batch(const MapFd& m, const void* keys, size_t n) {
  const auto* k = static_cast<const uint8_t*>(keys);
  const size_t ks = m.info().key_size;
  size_t done = 0, i = 0;
  while (i < n) {
    uint32_t count = static_cast<uint32_t>(std::min<size_t>(n - i, UINT32_MAX));
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    int err = bpf_map_delete_batch(m.fd(), k + i * ks, &count, &opts);
    int e = err != 0 ? errno : 0;
    // The kernel stops at the first key it cannot delete; `count` says how many went before.
    done += count;
    i += count;
    if (e == 0) continue;
    if (e == ENOENT) {  // that key was gone already: skip it
      i++;
      continue;
    }
    constexpr int kENOTSUPP = 524;
    if (e == EINVAL || e == EOPNOTSUPP || e == kENOTSUPP) {
      auto rest = delete_one_by_one(m, k + i * ks, n - i);
      if (!rest) return rest.error();
      return done + *rest;
    }
    return Error{e, "batch delete from map " + m.name()};
  }
  return done;
}

Result<BatchStep> raw_batch_step(const MapFd& m, BatchCursor& c, void* keys, void* values,
                                 uint32_t& count) {
  switch (m.info().type) {
    case BPF_MAP_TYPE_HASH:
    case BPF_MAP_TYPE_LRU_HASH:
    case BPF_MAP_TYPE_PERCPU_HASH:
    case BPF_MAP_TYPE_LRU_PERCPU_HASH:
    case BPF_MAP_TYPE_ARRAY:
    case BPF_MAP_TYPE_PERCPU_ARRAY:
      break;
    default:
      return BatchStep::Unsupported;
  }
  // The batch token is opaque (a bucket index for hash maps, a key for arrays).
  const size_t tok = std::max<size_t>(m.info().key_size, 8);
  c.in.resize(tok);
  c.out.resize(tok);
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  int err = bpf_map_lookup_batch(m.fd(), c.first ? nullptr : c.in.data(), c.out.data(), keys, values,
                                 &count, &opts);
  int e = err != 0 ? errno : 0;
  if (e == ENOENT) return BatchStep::Last;
  if (e == ENOSPC) {  // nothing was copied
    count = 0;
    return BatchStep::NoSpace;
  }
  constexpr int kENOTSUPP = 524;  // kernel-internal, may leak to userspace
  if (e != 0 && c.first && (e == EINVAL || e == EOPNOTSUPP || e == kENOTSUPP)) return BatchStep::Unsupported;
  if (e != 0) return Error{e, "batch lookup in map " + m.name()};
  c.in.swap(c.out);
  c.first = false;
  return BatchStep::More;
}

Result<bool> raw_dump_batch(const MapFd& m, size_t value_stride, std::vector<uint8_t>& keys,
                            std::vector<uint8_t>& values, size_t& n) {
  n = 0;
  const size_t ks = m.info().key_size;
  uint32_t chunk = 1024;
  BatchCursor cur;
  for (;;) {
    keys.resize((n + chunk) * ks);
    values.resize((n + chunk) * value_stride);
    uint32_t count = chunk;
    auto step = raw_batch_step(m, cur, keys.data() + n * ks, values.data() + n * value_stride, count);
    if (!step) return step.error();
    if (*step == BatchStep::Unsupported) {
      n = 0;
      return false;
    }
    if (*step == BatchStep::NoSpace) {
      if (chunk >= (1u << 20)) return Error{ENOSPC, "batch lookup in map " + m.name()};
      chunk *= 2;
      continue;
    }
    n += count;
    if (*step == BatchStep::Last) break;
  }
  keys.resize(n * ks);
  values.resize(n * value_stride);
  return true;
}

}  // namespace detail
}  // namespace weir::bpf
