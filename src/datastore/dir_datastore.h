// DirDatastore: resources in the files of one directory, watched with inotify.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "datastore/datastore.h"
#include "datastore/snapshot_cache.h"
#include "util/fd.h"

namespace weir::datastore {

// True for names DirDatastore reads: *.yaml, *.yml, *.json, except dotfiles and editor
// leftovers (*~, *.swp, *.swx, *.tmp, #*#).
bool is_resource_file_name(std::string_view name);

class DirDatastore : public Datastore {
 public:
  explicit DirDatastore(std::filesystem::path dir);

  // What identifies a file's content without reading it (stat).
  struct FileId {
    uint64_t dev = 0, ino = 0, size = 0;
    int64_t mtime_ns = 0, ctime_ns = 0;
    bool operator==(const FileId&) const = default;
  };

  std::string describe() const override;
  // Reads every resource file of the directory (non-recursive, sorted by name; symlinks to
  // regular files are followed), parses all documents and validates the whole. A missing or
  // unreadable directory or file is an error like any other (the load is rejected), and so is
  // an entry with a resource file name that is not (a symlink to) a regular file: a dangling
  // symlink, a symlink loop, a directory, a FIFO, a socket, a device. Such entries are never
  // opened (a FIFO would block); files are opened O_NONBLOCK and checked again on the
  // descriptor. A file over model::kMaxFileBytes is not read.
  model::SnapshotResult load_detailed() override;
  // load_detailed()'s validation, kept between calls: a change confined to the Services and
  // EndpointSlices of a few files updates the kept snapshot in place (the changed files' ranges)
  // and checks the cross-resource rules that concern them (duplicate names, slices without a
  // service, clusterIP:port collisions) through kept counts, without revisiting the other
  // resources; any other change, or any error, takes the full path. A file whose size, mtime,
  // ctime and inode are unchanged, and whose mtime is over a second older than when it was read,
  // is not read again.
  Load load_incremental() override;
  // An InotifyWatcher on the directory; falls back to an MtimeWatcher when inotify is not
  // available (e.g. out of inotify instances), with a warning.
  Result<std::unique_ptr<Watcher>> watch() override;

  // The entries load_detailed() would consider now (resource file names of any type), sorted
  // by name (full paths).
  Result<std::vector<std::filesystem::path>> list_files() const;
  const std::filesystem::path& dir() const { return dir_; }
  // Files parsed (not served from the cache) by load_detailed() so far: tests and logs.
  uint64_t files_parsed() const { return cache_.parsed(); }
  // Files read (opened) so far, and load_incremental() calls that took the full path.
  uint64_t files_read() const { return files_read_; }
  uint64_t full_loads() const { return cache_.full_loads(); }

 private:
  // What a file looked like when it was read.
  struct Stat {
    FileId id;
    int64_t read_at_ns = 0;  // CLOCK_REALTIME when its content was read
  };
  SnapshotCache::Scan scan();

  std::filesystem::path dir_;
  SnapshotCache cache_;
  std::map<std::string, Stat> stats_;  // by file name, of the files in cache_
  uint64_t files_read_ = 0;
};

// inotify on one directory: IN_CLOSE_WRITE, IN_MOVED_TO, IN_DELETE, IN_MOVED_FROM, IN_CREATE
// (plus IN_DELETE_SELF / IN_MOVE_SELF of the directory itself). An event counts as a change
// when it names a resource file (is_resource_file_name) or "..data" (the symlink Kubernetes
// swaps atomically in ConfigMap volumes), or concerns the directory itself. Non-blocking fd.
// When the directory itself is removed, drain() reports a change (the next load fails and the
// caller keeps its last good state) and each later drain() tries to watch it again; callers that
// want to notice a re-created directory should also call drain() periodically.
class InotifyWatcher : public Watcher {
 public:
  // Opens the inotify instance and adds the watch. Errors carry errno and the path.
  static Result<std::unique_ptr<InotifyWatcher>> create(const std::filesystem::path& dir);

  int fd() const override { return fd_.get(); }
  std::chrono::milliseconds poll_interval() const override { return std::chrono::milliseconds(0); }
  Result<bool> drain() override;

 private:
  InotifyWatcher(Fd fd, std::filesystem::path dir) : fd_(std::move(fd)), dir_(std::move(dir)) {}
  Fd fd_;
  std::filesystem::path dir_;
  bool lost_watch_ = false;  // the directory went away; drain() tries to watch it again
};

// Fallback without inotify: fd() is -1; drain() compares a fingerprint of the directory
// (resource file names, sizes, mtimes) with the previous one.
class MtimeWatcher : public Watcher {
 public:
  explicit MtimeWatcher(std::filesystem::path dir,
                        std::chrono::milliseconds interval = std::chrono::milliseconds(1000));

  int fd() const override { return -1; }
  std::chrono::milliseconds poll_interval() const override { return interval_; }
  Result<bool> drain() override;

 private:
  std::string fingerprint() const;
  std::filesystem::path dir_;
  std::chrono::milliseconds interval_;
  std::string last_;
};

}  // namespace weir::datastore
