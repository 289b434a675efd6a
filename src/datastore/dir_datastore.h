// DirDatastore: resources in the files of one directory, watched with inotify.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
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
  uint64_t files_parsed() const { return files_parsed_; }
  // Files read (opened) so far, and load_incremental() calls that took the full path.
  uint64_t files_read() const { return files_read_; }
  uint64_t full_loads() const { return full_loads_; }

 private:
  // One file's parse, reused while its bytes are unchanged: a change to one file of a large
  // datastore re-parses that file only (cross-file validation still runs on the whole).
  struct Parsed {
    std::string content;
    FileId id;
    int64_t read_at_ns = 0;  // CLOCK_REALTIME when content was read
    model::Snapshot part;
    model::ValidationErrors errors;
  };
  // The directory now: every file's parse (from the cache when unchanged), the names of the
  // files added, modified or removed since the cache was filled, their previous parses.
  struct Scan {
    std::map<std::string, Parsed> files;
    std::vector<std::string> changed;
    std::map<std::string, Parsed> old;
    model::ValidationErrors read_errors;
  };
  Scan scan();
  void merge_all(Scan& s, model::Snapshot& into, model::ValidationErrors& errors);
  Load full_load(Scan s);
  bool apply_service_changes(const Scan& s, Changes& changes);
  // After an accepted load_incremental() whose files are now `files`: accepted_ follows
  // merged_, the removals go to l.removed. `changed` limits the comparison to its changed files
  // (nullptr: all of merged_).
  void track_removals(Load& l, const Scan* changed, const std::map<std::string, Parsed>& files);

  // Counts behind the cross-resource rules on Services and EndpointSlices, kept up to date
  // by the incremental path: violations() > 0 when a name is defined twice, a slice's service
  // is missing or two services share a clusterIP:port/protocol.
  class ServiceRules {
   public:
    void add(const model::Snapshot& part, int sign);
    size_t violations() const { return dup_ + dangling_; }
    void clear() { *this = ServiceRules(); }

   private:
    void count(std::unordered_map<std::string, int>& m, const std::string& k, int sign);
    std::unordered_map<std::string, int> services_, slices_, frontends_, slices_of_;
    size_t dup_ = 0, dangling_ = 0;
  };

  std::filesystem::path dir_;
  std::map<std::string, Parsed> cache_;  // by file name
  uint64_t files_parsed_ = 0, files_read_ = 0, full_loads_ = 0;
  model::Snapshot merged_;  // load_incremental()'s snapshot
  bool merged_ok_ = false;  // merged_ is the accepted snapshot of cache_
  ServiceRules rules_;
  model::ClusterIPRules cluster_ips_;  // of merged_ (its config and workloads)
  // "Kind ns/name" -> file, of the last accepted load_incremental().
  std::unordered_map<std::string, std::string> accepted_;
  bool rejected_ = false;  // the last load_incremental() was rejected
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
