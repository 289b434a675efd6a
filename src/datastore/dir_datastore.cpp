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

#include "datastore/snapshot_cache.h"

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

SnapshotCache::Scan DirDatastore::scan() {
  SnapshotCache::Scan s;
  auto files = list_files();
  if (!files.ok()) {
    s.read_errors.push_back({dir_.string(), "", "", files.error().str(), 0, 0});
    cache_.finish(s);
    return s;
  }
  for (const fs::path& p : *files) {
    std::string name = p.filename().string();
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
    auto stat = stats_.find(name);
    if (stat != stats_.end() && stat->second.id == id &&
        id.mtime_ns + kRacyNs < stat->second.read_at_ns && cache_.keep(s, name))
      continue;
    int64_t read_at = realtime_ns();
    std::string text;
    if (auto err = read_regular_file(p, text, id); !err.empty()) {
      if (err != kGone) s.read_errors.push_back({name, "", "", std::move(err), 0, 0});
      continue;
    }
    ++files_read_;
    stats_[name] = Stat{id, read_at};
    cache_.put(s, name, std::move(text));
  }
  cache_.finish(s);
  std::erase_if(stats_, [&](const auto& kv) { return !s.files.contains(kv.first); });
  return s;
}

model::SnapshotResult DirDatastore::load_detailed() { return cache_.load_detailed(scan()); }

Load DirDatastore::load_incremental() { return cache_.load_incremental(scan()); }

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

}  // namespace weir::datastore
