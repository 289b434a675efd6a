#include "datastore/dir_datastore.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <system_error>
#include <utility>

namespace weir::datastore {

namespace fs = std::filesystem;

namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// The directory name Kubernetes swaps atomically in ConfigMap/Secret volumes.
constexpr std::string_view kConfigMapDataLink = "..data";

}  // namespace

bool is_resource_file_name(std::string_view name) {
  if (name.empty() || name[0] == '.' || name[0] == '#') return false;
  if (ends_with(name, "~")) return false;
  return ends_with(name, ".yaml") || ends_with(name, ".yml") || ends_with(name, ".json");
}

// ---------------------------------------------------------------- DirDatastore

DirDatastore::DirDatastore(fs::path dir) : dir_(std::move(dir)) {}

std::string DirDatastore::describe() const { return "dir:" + dir_.string(); }

Result<std::vector<fs::path>> DirDatastore::list_files() const {
  std::error_code ec;
  fs::directory_iterator it(dir_, ec);
  if (ec) return Error{ec.value(), fmt::format("reading directory {}", dir_.string())};
  std::vector<fs::path> out;
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) return Error{ec.value(), fmt::format("reading directory {}", dir_.string())};
    std::string name = it->path().filename().string();
    // Every entry with a resource file name, whatever its type: scan() reports those that are
    // not (symlinks to) regular files instead of skipping them.
    if (is_resource_file_name(name)) out.push_back(it->path());
  }
  if (ec) return Error{ec.value(), fmt::format("reading directory {}", dir_.string())};
  // By name as a string: the incremental load relies on this order (resources grouped by file).
  std::sort(out.begin(), out.end(), [](const fs::path& a, const fs::path& b) {
    return a.filename().string() < b.filename().string();
  });
  return out;
}

namespace {

int64_t realtime_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// A file's content may change without its mtime moving past a coarse clock tick: a file
// modified within this long before it was read is read again on the next load.
constexpr int64_t kRacyNs = 1000000000;

bool only_services(const model::Snapshot& part) {
  return part.workload_endpoints.empty() && part.namespaces.empty() &&
         part.network_policies.empty() && part.tiers.empty() &&
         part.global_network_policies.empty() && !part.config;
}

// In `v` (grouped by source file, files in name order), replaces the resources of `file` by
// `items`: only that range is touched, the rest is moved at most.
template <typename T>
void replace_file_range(std::vector<T>& v, const std::string& file, const std::vector<T>& items) {
  auto lo = std::lower_bound(v.begin(), v.end(), file,
                             [](const T& x, const std::string& f) { return x.source.file < f; });
  auto hi = std::upper_bound(lo, v.end(), file,
                             [](const std::string& f, const T& x) { return f < x.source.file; });
  size_t have = size_t(hi - lo), common = std::min(have, items.size());
  size_t at = size_t(lo - v.begin());
  std::copy(items.begin(), items.begin() + common, lo);
  if (items.size() < have) {
    v.erase(v.begin() + at + common, v.begin() + at + have);
  } else {
    v.insert(v.begin() + at + common, items.begin() + common, items.end());
  }
}

std::string service_key(const std::string& ns, const std::string& name) { return ns + "/" + name; }

// Calls f("Kind ns/name" or "Kind name", file) for every resource of `snap`.
template <typename F>
void for_each_resource(const model::Snapshot& snap, F f) {
  auto each = [&](std::string_view kind, const auto& v) {
    for (const auto& r : v) {
      std::string key = r.meta.ns.empty() ? fmt::format("{} {}", kind, r.meta.name)
                                          : fmt::format("{} {}/{}", kind, r.meta.ns, r.meta.name);
      f(std::move(key), r.source.file);
    }
  };
  each("Service", snap.services);
  each("EndpointSlice", snap.endpoint_slices);
  each("WorkloadEndpoint", snap.workload_endpoints);
  each("Namespace", snap.namespaces);
  each("NetworkPolicy", snap.network_policies);
  each("Tier", snap.tiers);
  each("GlobalNetworkPolicy", snap.global_network_policies);
  if (snap.config)
    f(fmt::format("DataplaneConfig {}", snap.config->meta.name), snap.config->source.file);
}

size_t resource_count(const model::Snapshot& s) {
  return s.services.size() + s.endpoint_slices.size() + s.workload_endpoints.size() +
         s.namespaces.size() + s.network_policies.size() + s.tiers.size() +
         s.global_network_policies.size() + (s.config ? 1 : 0);
}

bool is_link(const fs::path& p) {
  struct stat lst {};
  return ::lstat(p.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode);
}

// Why stat() of a resource file failed, for its read error.
std::string unreadable(const fs::path& p, int err) {
  if (err == ENOENT) {
    std::error_code ec;
    fs::path target = fs::read_symlink(p, ec);
    return fmt::format("cannot read: a dangling symlink (its target \"{}\" does not exist)",
                       model::clip(target.string()));
  }
  if (err == ELOOP) return "cannot read: a symlink loop (too many levels of symbolic links)";
  return Error{err, "cannot stat file"}.str();
}

// Empty for a regular file weir may read; else why not. Nothing but a regular file is ever
// opened: a FIFO would block the reader, a device could be endless.
std::string check_file(const struct stat& st) {
  const char* what = nullptr;
  switch (st.st_mode & S_IFMT) {
    case S_IFREG:
      if (uint64_t(st.st_size) > model::kMaxFileBytes)
        return model::file_too_large(uint64_t(st.st_size));
      return "";
    case S_IFDIR: return "cannot read: a directory, not a file (subdirectories are not read)";
    case S_IFIFO: what = "a FIFO (named pipe)"; break;
    case S_IFSOCK: what = "a socket"; break;
    case S_IFCHR: what = "a character device"; break;
    case S_IFBLK: what = "a block device"; break;
    default: what = "not a regular file"; break;
  }
  return fmt::format("cannot read: {}, not a regular file (only regular files and symlinks to "
                     "them are read)",
                     what);
}

DirDatastore::FileId file_id(const struct stat& st) {
  return {uint64_t(st.st_dev), uint64_t(st.st_ino), uint64_t(st.st_size),
          int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec,
          int64_t(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec};
}

// read_regular_file()'s result for a file removed since it was listed (not an error: its
// DELETE event follows).
constexpr std::string_view kGone = "gone";

// Reads a file that stat() showed regular. Opened with O_NONBLOCK, so that a FIFO swapped in
// meanwhile cannot block the agent, then checked again on the open descriptor; never more than
// kMaxFileBytes are read. Empty on success (text and id set), else the error message.
std::string read_regular_file(const fs::path& p, std::string& text, DirDatastore::FileId& id) {
  Fd fd(::open(p.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
  if (!fd) return errno == ENOENT ? std::string(kGone) : Error{errno, "cannot open file"}.str();
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Error{errno, "cannot stat file"}.str();
  if (auto why = check_file(st); !why.empty()) return why;
  id = file_id(st);
  text.resize(size_t(st.st_size));
  size_t got = 0;
  for (;;) {
    if (got == text.size()) text.resize(std::min(model::kMaxFileBytes + 1, got + 65536));
    if (got == text.size()) break;  // over the limit: it grew after fstat()
    ssize_t n = ::read(fd.get(), text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error{errno, "cannot read file"}.str();
    if (n == 0) break;
    got += size_t(n);
  }
  if (got > model::kMaxFileBytes) return model::file_too_large(got);
  text.resize(got);
  return "";
}

}  // namespace

DirDatastore::Scan DirDatastore::scan() {
  Scan s;
  auto files = list_files();
  if (!files.ok()) {
    s.read_errors.push_back({dir_.string(), "", "", files.error().str(), 0, 0});
    return s;
  }
  for (const fs::path& p : *files) {
    std::string name = p.filename().string();
    auto cached = cache_.find(name);
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) {
      if (errno == ENOENT && !is_link(p)) continue;  // removed since listing: an event follows
      s.read_errors.push_back({name, "", "", unreadable(p, errno), 0, 0});
      continue;
    }
    if (auto why = check_file(st); !why.empty()) {
      s.read_errors.push_back({name, "", "", std::move(why), 0, 0});
      continue;
    }
    FileId id = file_id(st);
    if (cached != cache_.end() && cached->second.id == id &&
        id.mtime_ns + kRacyNs < cached->second.read_at_ns) {
      s.files.emplace(name, std::move(cached->second));
      continue;
    }
    int64_t read_at = realtime_ns();
    std::string text;
    if (auto err = read_regular_file(p, text, id); !err.empty()) {
      if (err != kGone) s.read_errors.push_back({name, "", "", std::move(err), 0, 0});
      continue;
    }
    ++files_read_;
    if (cached != cache_.end() && cached->second.content == text) {
      Parsed& p2 = s.files.emplace(name, std::move(cached->second)).first->second;
      p2.id = id;
      p2.read_at_ns = read_at;
      continue;
    }
    Parsed parsed;
    model::parse_text(model::SourceText{name, text}, parsed.part, parsed.errors);
    parsed.content = std::move(text);
    parsed.id = id;
    parsed.read_at_ns = read_at;
    ++files_parsed_;
    s.changed.push_back(name);
    if (cached != cache_.end()) s.old.emplace(name, std::move(cached->second));
    s.files.emplace(name, std::move(parsed));
  }
  // Files that are gone.
  for (auto& [name, parsed] : cache_) {
    if (s.files.contains(name) || s.old.contains(name)) continue;
    s.changed.push_back(name);
    s.old.emplace(name, std::move(parsed));
  }
  std::sort(s.changed.begin(), s.changed.end());
  return s;
}

// Merges every file's parse in file order into `into` and validates the whole, exactly as
// build_snapshot() does; keeps the parses as the cache. Read errors come first.
void DirDatastore::merge_all(Scan& s, model::Snapshot& into, model::ValidationErrors& errors) {
  for (auto& [name, parsed] : s.files) {
    errors.insert(errors.end(), parsed.errors.begin(), parsed.errors.end());
    model::merge_parsed(into, parsed.part, errors);
  }
  cache_ = std::move(s.files);
  model::validate_snapshot(into, errors);
  errors.insert(errors.begin(), s.read_errors.begin(), s.read_errors.end());
}

model::SnapshotResult DirDatastore::load_detailed() {
  Scan s = scan();
  merged_ok_ = false;  // the next load_incremental() cannot tell what changed since its last
  model::SnapshotResult r;
  model::Snapshot snap;
  merge_all(s, snap, r.errors);
  r.warnings = snap.warnings;
  if (r.errors.empty()) r.snapshot = std::move(snap);
  return r;
}

Load DirDatastore::full_load(Scan s) {
  ++full_loads_;
  Load l;
  merged_ = model::Snapshot();
  merged_ok_ = false;
  rules_.clear();
  merge_all(s, merged_, l.errors);
  l.warnings = merged_.warnings;
  if (!l.errors.empty()) {
    merged_ = model::Snapshot();
    rejected_ = true;
    return l;
  }
  rules_.add(merged_, +1);
  cluster_ips_ = model::ClusterIPRules(merged_);
  merged_ok_ = true;
  l.snapshot = &merged_;
  track_removals(l, nullptr, cache_);
  return l;
}

void DirDatastore::track_removals(Load& l, const Scan* changed,
                                  const std::map<std::string, Parsed>& files) {
  l.valid_again = std::exchange(rejected_, false);
  std::map<std::string, std::vector<std::string>> gone;  // file -> resources
  if (!changed) {
    std::unordered_map<std::string, std::string> now;
    for_each_resource(merged_, [&](std::string key, const std::string& file) {
      now.emplace(std::move(key), file);
    });
    for (const auto& [key, file] : accepted_)
      if (!now.contains(key)) gone[file].push_back(key);
    accepted_ = std::move(now);
  } else {
    // Only the changed files differ from the last accepted state (the fast path follows an
    // accepted load): what their old parses had and their new ones have not is gone.
    std::unordered_map<std::string, std::string> now;
    for (const auto& name : changed->changed)
      if (auto it = changed->files.find(name); it != changed->files.end())
        for_each_resource(it->second.part, [&](std::string key, const std::string& file) {
          now.emplace(std::move(key), file);
        });
    for (const auto& [name, old] : changed->old)
      for_each_resource(old.part, [&](std::string key, const std::string& file) {
        if (!now.contains(key)) {
          accepted_.erase(key);
          gone[file].push_back(std::move(key));
        }
      });
    for (auto& [key, file] : now) accepted_[key] = file;
  }
  for (auto& [file, keys] : gone) {
    std::sort(keys.begin(), keys.end());
    auto it = files.find(file);
    auto state = it == files.end()                  ? RemovedFrom::Now::Gone
                 : resource_count(it->second.part) == 0 ? RemovedFrom::Now::Empty
                                                        : RemovedFrom::Now::HasOthers;
    l.removed.push_back({file, state, std::move(keys)});
  }
}

// The fast path: every changed file held, and holds, only Services and EndpointSlices, without
// errors, and the service rules still hold afterwards. Updates merged_ and `changes`; false
// (merged_ and rules_ may be half-updated: the caller takes the full path) otherwise.
bool DirDatastore::apply_service_changes(const Scan& s, Changes& changes) {
  static const model::Snapshot kEmpty;
  auto part_of = [](const std::map<std::string, Parsed>& m, const std::string& name) {
    auto it = m.find(name);
    return it == m.end() ? static_cast<const Parsed*>(nullptr) : &it->second;
  };
  for (const auto& name : s.changed) {
    const Parsed* before = part_of(s.old, name);
    const Parsed* after = part_of(s.files, name);
    if (before && (!before->errors.empty() || !only_services(before->part))) return false;
    if (after && (!after->errors.empty() || !only_services(after->part))) return false;
  }
  std::vector<std::string> keys;
  for (const auto& name : s.changed) {
    for (const Parsed* p : {part_of(s.old, name), part_of(s.files, name)}) {
      if (!p) continue;
      for (const auto& svc : p->part.services) keys.push_back(service_key(svc.meta.ns, svc.meta.name));
      for (const auto& es : p->part.endpoint_slices)
        keys.push_back(service_key(es.meta.ns, es.service_name));
    }
    if (const Parsed* p = part_of(s.old, name)) rules_.add(p->part, -1);
    if (const Parsed* p = part_of(s.files, name)) rules_.add(p->part, +1);
  }
  if (rules_.violations() > 0) return false;
  // The cluster IP rules against the unchanged config and workloads; any violation takes the
  // full path, which reports it as load_detailed() does.
  model::ValidationErrors cip_errors;
  for (const auto& name : s.changed)
    if (const Parsed* p = part_of(s.files, name))
      for (const auto& svc : p->part.services) cluster_ips_.check(svc, cip_errors);
  if (!cip_errors.empty()) return false;
  for (const auto& name : s.changed) {
    const Parsed* after = part_of(s.files, name);
    const model::Snapshot& part = after ? after->part : kEmpty;
    replace_file_range(merged_.services, name, part.services);
    replace_file_range(merged_.endpoint_slices, name, part.endpoint_slices);
  }
  merged_.files.clear();
  merged_.warnings.clear();
  for (const auto& [name, parsed] : s.files) {
    merged_.files.insert(merged_.files.end(), parsed.part.files.begin(), parsed.part.files.end());
    merged_.warnings.insert(merged_.warnings.end(), parsed.part.warnings.begin(),
                            parsed.part.warnings.end());
  }
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  changes.full = false;
  changes.services = std::move(keys);
  return true;
}

Load DirDatastore::load_incremental() {
  Scan s = scan();
  if (!merged_ok_ || !s.read_errors.empty()) return full_load(std::move(s));
  Changes changes;
  if (!apply_service_changes(s, changes)) return full_load(std::move(s));
  Load l;
  l.snapshot = &merged_;
  l.warnings = merged_.warnings;
  l.changes = std::move(changes);
  track_removals(l, &s, s.files);
  cache_ = std::move(s.files);
  return l;
}

void DirDatastore::ServiceRules::count(std::unordered_map<std::string, int>& m,
                                       const std::string& k, int sign) {
  int& c = m[k];
  if (sign > 0 && ++c == 2) ++dup_;
  if (sign < 0 && c-- == 2) --dup_;
  if (c == 0) m.erase(k);
}

void DirDatastore::ServiceRules::add(const model::Snapshot& part, int sign) {
  for (const auto& svc : part.services) {
    std::string k = service_key(svc.meta.ns, svc.meta.name);
    count(services_, k, sign);
    // A slice without its service counts as dangling while the service has no definition.
    auto refs = slices_of_.find(k);
    size_t n = refs == slices_of_.end() ? 0 : size_t(refs->second);
    auto it = services_.find(k);
    int now = it == services_.end() ? 0 : it->second;
    if (sign > 0 && now == 1) dangling_ -= n;
    if (sign < 0 && now == 0) dangling_ += n;
    if (svc.cluster_ip && !svc.headless) {
      for (const auto& p : svc.ports)
        count(frontends_, fmt::format("{}:{}/{}", svc.cluster_ip->value, p.port, int(p.protocol)), sign);
    }
  }
  for (const auto& es : part.endpoint_slices) {
    count(slices_, service_key(es.meta.ns, es.meta.name), sign);
    std::string k = service_key(es.meta.ns, es.service_name);
    int& refs = slices_of_[k];
    refs += sign;
    if (refs == 0) slices_of_.erase(k);
    if (!services_.contains(k)) {
      if (sign > 0) ++dangling_;
      else --dangling_;
    }
  }
}

Result<std::unique_ptr<Watcher>> DirDatastore::watch() {
  auto w = InotifyWatcher::create(dir_);
  if (w.ok()) return std::unique_ptr<Watcher>(std::move(*w));
  spdlog::warn("{}: inotify unavailable ({}); polling for changes every second", describe(),
               w.error().str());
  return std::unique_ptr<Watcher>(std::make_unique<MtimeWatcher>(dir_));
}

// ---------------------------------------------------------------- InotifyWatcher

namespace {

constexpr uint32_t kDirMask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM | IN_CREATE |
                              IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;

}  // namespace

Result<std::unique_ptr<InotifyWatcher>> InotifyWatcher::create(const fs::path& dir) {
  Fd fd(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!fd) return errno_error("inotify_init1");
  if (::inotify_add_watch(fd.get(), dir.c_str(), kDirMask) < 0)
    return errno_error(fmt::format("inotify_add_watch {}", dir.string()));
  return std::unique_ptr<InotifyWatcher>(new InotifyWatcher(std::move(fd), dir));
}

Result<bool> InotifyWatcher::drain() {
  bool changed = false;
  if (lost_watch_) {
    // The directory was removed or moved away: try to watch it again (it may be back).
    if (::inotify_add_watch(fd_.get(), dir_.c_str(), kDirMask) >= 0) {
      lost_watch_ = false;
      changed = true;
    }
  }
  alignas(struct inotify_event) char buf[16 * 1024];
  while (true) {
    ssize_t n = ::read(fd_.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      return errno_error(fmt::format("reading inotify events for {}", dir_.string()));
    }
    if (n == 0) break;
    for (char* p = buf; p < buf + n;) {
      auto* ev = reinterpret_cast<struct inotify_event*>(p);
      p += sizeof(struct inotify_event) + ev->len;
      if (ev->mask & IN_Q_OVERFLOW) {
        changed = true;
        continue;
      }
      if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) {
        changed = true;
        lost_watch_ = (ev->mask & (IN_DELETE_SELF | IN_IGNORED)) != 0 || lost_watch_;
        continue;
      }
      std::string_view name = ev->len > 0 ? std::string_view(ev->name) : std::string_view();
      if (is_resource_file_name(name) || name == kConfigMapDataLink) changed = true;
    }
  }
  return changed;
}

// ---------------------------------------------------------------- MtimeWatcher

MtimeWatcher::MtimeWatcher(fs::path dir, std::chrono::milliseconds interval)
    : dir_(std::move(dir)), interval_(interval), last_(fingerprint()) {}

std::string MtimeWatcher::fingerprint() const {
  DirDatastore ds(dir_);
  auto files = ds.list_files();
  if (!files.ok()) return "error: " + files.error().str();
  std::string fp;
  for (const auto& p : *files) {
    std::error_code ec;
    auto size = fs::file_size(p, ec);
    auto mtime = fs::last_write_time(p, ec);
    fp += fmt::format("{}\t{}\t{}\n", p.filename().string(), ec ? 0 : size,
                      ec ? 0 : mtime.time_since_epoch().count());
  }
  return fp;
}

Result<bool> MtimeWatcher::drain() {
  std::string fp = fingerprint();
  if (fp == last_) return false;
  last_ = std::move(fp);
  return true;
}

// ---------------------------------------------------------------- accepted_load_messages

std::vector<std::string> accepted_load_messages(const Load& l, const std::string& where,
                                                size_t max_names, size_t max_files) {
  std::vector<std::string> out;
  if (l.valid_again)
    out.push_back(fmt::format("{}: datastore valid again (the previous load was rejected); "
                              "applying it",
                              where));
  size_t rest_files = 0, rest_resources = 0;
  for (const auto& r : l.removed) {
    if (out.size() >= max_files + (l.valid_again ? 1 : 0)) {
      ++rest_files;
      rest_resources += r.resources.size();
      continue;
    }
    std::string names;
    for (size_t i = 0; i < r.resources.size() && i < max_names; ++i)
      names += (i ? ", " : "") + r.resources[i];
    if (r.resources.size() > max_names)
      names += fmt::format(" and {} more", r.resources.size() - max_names);
    const char* state = r.now == RemovedFrom::Now::Gone    ? " (the file is gone)"
                        : r.now == RemovedFrom::Now::Empty ? " (the file holds no resources now)"
                                                           : "";
    out.push_back(fmt::format("{}: {}{}: {} resource{} removed: {}", where, r.file, state,
                              r.resources.size(), r.resources.size() == 1 ? "" : "s", names));
  }
  if (rest_files > 0)
    out.push_back(fmt::format("{}: and {} resources removed from {} more files", where,
                              rest_resources, rest_files));
  return out;
}

// ---------------------------------------------------------------- open_datastore

Result<std::unique_ptr<Datastore>> open_datastore(const std::string& spec) {
  if (spec.rfind("dir:", 0) == 0) {
    fs::path dir = spec.substr(4);
    if (dir.empty()) return make_error("datastore \"{}\": dir: needs a path (dir:PATH)", spec);
    std::error_code ec;
    auto st = fs::status(dir, ec);
    if (ec) return Error{ec.value(), fmt::format("datastore \"{}\": {}", spec, dir.string())};
    if (!fs::is_directory(st))
      return Error{ENOTDIR,
                   fmt::format("datastore \"{}\": {} is not a directory", spec, dir.string())};
    return std::unique_ptr<Datastore>(std::make_unique<DirDatastore>(dir));
  }
  if (spec == "etcd" || spec.rfind("etcd:", 0) == 0 || spec.rfind("etcd+", 0) == 0)
    return make_error("datastore \"{}\": etcd: not supported yet", spec);
  return make_error("datastore \"{}\": unknown kind of datastore: expected dir:PATH", spec);
}

}  // namespace weir::datastore
