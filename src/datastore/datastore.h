// Datastore: where the agent reads its desired state from. The embedded default is a directory
// of YAML/JSON files (DirDatastore, "dir:PATH"); etcd may come later behind the same interface.
//
// Model: the caller loads a full, validated snapshot, then waits on a Watcher; when the watcher
// reports a change it loads the full snapshot again and diffs the calc output (calc/diff.h). A
// rejected load (any error anywhere) yields no snapshot, so the caller keeps its last good state.
#pragma once

#include <chrono>
#include <memory>
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
  // Starts watching for changes. Create the watcher BEFORE the first load() so that no change
  // between the load and the watch is missed.
  virtual Result<std::unique_ptr<Watcher>> watch() = 0;
};

// Opens a datastore from a --datastore spec:
//   "dir:PATH"  a directory of *.yaml / *.yml / *.json files (PATH must exist and be a directory)
//   "etcd:..."  error "etcd: not supported yet"
// Anything else is an error naming the spec and the accepted forms.
Result<std::unique_ptr<Datastore>> open_datastore(const std::string& spec);

}  // namespace weir::datastore
