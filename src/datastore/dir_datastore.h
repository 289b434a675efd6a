// DirDatastore: resources in the files of one directory, watched with inotify.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "datastore/datastore.h"
#include "util/fd.h"

namespace weir::datastore {

// True for names DirDatastore reads: *.yaml, *.yml, *.json, except dotfiles and editor
// leftovers (*~, *.swp, *.swx, *.tmp, #*#).
bool is_resource_file_name(std::string_view name);

class DirDatastore : public Datastore {
 public:
  explicit DirDatastore(std::filesystem::path dir);

  std::string describe() const override;
  // Reads every resource file of the directory (non-recursive, sorted by name; symlinks are
  // followed), parses all documents and validates the whole. A missing or unreadable
  // directory or file is an error like any other (the load is rejected).
  model::SnapshotResult load_detailed() override;
  // An InotifyWatcher on the directory; falls back to an MtimeWatcher when inotify is not
  // available (e.g. out of inotify instances), with a warning.
  Result<std::unique_ptr<Watcher>> watch() override;

  // The files load_detailed() would read now, sorted by name (full paths).
  Result<std::vector<std::filesystem::path>> list_files() const;
  const std::filesystem::path& dir() const { return dir_; }
  // Files parsed (not served from the cache) by load_detailed() so far: tests and logs.
  uint64_t files_parsed() const { return files_parsed_; }

 private:
  // One file's parse, reused while its bytes are unchanged: a change to one file of a large
  // datastore re-parses that file only (cross-file validation still runs on the whole).
  struct Parsed {
    std::string content;
    model::Snapshot part;
    model::ValidationErrors errors;
  };
  std::filesystem::path dir_;
  std::map<std::string, Parsed> cache_;  // by file name
  uint64_t files_parsed_ = 0;
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
