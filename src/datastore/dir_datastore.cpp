#include "datastore/dir_datastore.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>

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
    if (!is_resource_file_name(name)) continue;
    std::error_code ec2;
    if (!it->is_regular_file(ec2)) continue;  // follows symlinks; skips directories, dangling links
    out.push_back(it->path());
  }
  if (ec) return Error{ec.value(), fmt::format("reading directory {}", dir_.string())};
  std::sort(out.begin(), out.end(),
            [](const fs::path& a, const fs::path& b) { return a.filename() < b.filename(); });
  return out;
}

model::SnapshotResult DirDatastore::load_detailed() {
  auto files = list_files();
  if (!files.ok()) {
    model::SnapshotResult r;
    r.errors.push_back({dir_.string(), "", "", files.error().str(), 0, 0});
    return r;
  }
  std::vector<model::SourceText> sources;
  model::ValidationErrors read_errors;
  for (const fs::path& p : *files) {
    std::string name = p.filename().string();
    std::ifstream in(p, std::ios::binary);
    if (!in) {
      int err = errno;
      if (err == ENOENT) continue;  // removed since listing: its DELETE event follows
      read_errors.push_back({name, "", "", Error{err, "cannot open file"}.str(), 0, 0});
      continue;
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in.bad()) {
      read_errors.push_back({name, "", "", Error{errno, "cannot read file"}.str(), 0, 0});
      continue;
    }
    sources.push_back({name, ss.str()});
  }
  // Parse what changed; reuse the rest. Then merge in file order and validate the whole, exactly
  // as build_snapshot() does.
  std::map<std::string, Parsed> next;
  model::SnapshotResult r;
  model::Snapshot snap;
  for (auto& src : sources) {
    auto it = cache_.find(src.file);
    if (it == cache_.end() || it->second.content != src.text) {
      Parsed p;
      model::parse_text(src, p.part, p.errors);
      p.content = std::move(src.text);
      ++files_parsed_;
      it = next.emplace(src.file, std::move(p)).first;
    } else {
      it = next.emplace(src.file, std::move(it->second)).first;
    }
    r.errors.insert(r.errors.end(), it->second.errors.begin(), it->second.errors.end());
    model::merge_parsed(snap, it->second.part, r.errors);
  }
  cache_ = std::move(next);
  model::validate_snapshot(snap, r.errors);
  r.warnings = snap.warnings;
  if (r.errors.empty()) r.snapshot = std::move(snap);
  if (!read_errors.empty()) {
    r.errors.insert(r.errors.begin(), read_errors.begin(), read_errors.end());
    r.snapshot.reset();
  }
  return r;
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
