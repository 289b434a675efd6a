// Datastore: where the agent reads its desired state from. The embedded default is a directory
// of YAML/JSON files (DirDatastore, "dir:PATH"); the distributed one is etcd (EtcdDatastore,
// "etcd:URL[,URL...]"), behind the same interface.
//
// Model: the caller loads a full, validated snapshot, then waits on a Watcher; when the watcher
// reports a change it loads the full snapshot again and diffs the calc output (calc/diff.h). A
// rejected load (any error anywhere) yields no snapshot, so the caller keeps its last good state.
#pragma once

#include <chrono>
#include <memory>
#include <vector>
#include <string>

#include "model/parse.h"
#include "util/result.h"

namespace weir::datastore {

// Reports that the datastore's content may have changed.
class Watcher {
 public:
  virtual ~Watcher() = default;

  // A file descriptor to poll for POLLIN, or -1 when this watcher can only be polled by time
  // (then call drain() every poll_interval()). Owned by the watcher.
  virtual int fd() const = 0;
  // For fd() == -1: how often the caller should call drain(). Meaningless otherwise.
  virtual std::chrono::milliseconds poll_interval() const = 0;
  // Consumes every pending notification without blocking. true when something relevant to the
  // datastore changed since the previous drain() (or since the watcher was created), false when
  // nothing did. An error means the watcher is broken (e.g. read() failed).
  virtual Result<bool> drain() = 0;
};

// What a load_incremental() changed compared with the previous one.
struct Changes {
  // true: anything may have changed (the first load, a previous load that was rejected, or a
  // change to anything but Services and EndpointSlices): recompute everything.
  bool full = true;
  // When !full: "ns/name" of every Service whose Service resource or EndpointSlices were
  // added, modified or removed (sorted, unique). Nothing else changed.
  std::vector<std::string> services;
};

// Resources of one file that an accepted load no longer has.
struct RemovedFrom {
  enum class Now { HasOthers, Empty, Gone };
  std::string file;
  Now now = Now::HasOthers;             // the file holds other resources, none, or is gone
  std::vector<std::string> resources;  // "Service default/web", sorted
};

// The outcome of load_incremental(): the snapshot (owned by the datastore, valid until its
// next load) or every error, as load_detailed() gives them.
struct Load {
  const model::Snapshot* snapshot = nullptr;  // null when the load was rejected
  model::ValidationErrors errors;
  std::vector<model::Warning> warnings;
  Changes changes;
  // When ok(): what the last accepted load_incremental() had and this one has not, by file
  // (sorted by name); and whether the load_incremental() before this one was rejected.
  std::vector<RemovedFrom> removed;
  bool valid_again = false;

  bool ok() const { return snapshot != nullptr; }
};

// What the agent logs (at info level) about an accepted load, one line each, prefixed with
// `where` (the datastore's describe()): "datastore valid again" after a rejected load, then
// which resources went, one line per file (a file that now holds none, or is gone, says so),
// naming at most `max_names` resources per line ("and N more"); beyond `max_files` files, one
// line sums up the rest.
std::vector<std::string> accepted_load_messages(const Load& l, const std::string& where,
                                                size_t max_names = 5, size_t max_files = 10);

class Datastore {
 public:
  virtual ~Datastore() = default;

  // For logs: "dir:/etc/weir/resources".
  virtual std::string describe() const = 0;
  // Reads and validates the full content. Never partially applied: either a snapshot or
  // every error found (each naming file, resource and field).
  virtual model::SnapshotResult load_detailed() = 0;
  // load_detailed() as a Result: the snapshot, or one Error listing all errors.
  Result<model::Snapshot> load() { return load_detailed().to_result(); }
  // The same validation as load_detailed(), for a caller that applies changes incrementally:
  // the snapshot stays with the datastore (no copy), and `changes` says what differs from the
  // previous load_incremental() (DirDatastore: changes confined to Services and EndpointSlices
  // are reported as such; anything else as a full change).
  virtual Load load_incremental() = 0;
  // Starts watching for changes. Create the watcher BEFORE the first load() so that no change
  // between the load and the watch is missed.
  virtual Result<std::unique_ptr<Watcher>> watch() = 0;
};

struct DatastoreOptions {
  std::string etcd_prefix = "/weir/";  // the key prefix of an etcd datastore
};

// Opens a datastore from a --datastore spec:
//   "dir:PATH"                          a directory of *.yaml / *.yml / *.json files (PATH must
//                                       exist and be a directory): DirDatastore
//   "etcd:http://HOST:PORT[,http://..]" keys under o.etcd_prefix in an etcd v3 cluster:
//                                       EtcdDatastore (nothing is contacted before a load)
// Anything else is an error naming the spec and the accepted forms.
Result<std::unique_ptr<Datastore>> open_datastore(const std::string& spec,
                                                  const DatastoreOptions& o = {});

}  // namespace weir::datastore
