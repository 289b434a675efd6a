// SnapshotCache: the validation a datastore does on its sources, kept between loads.
//
// A datastore holds named sources (DirDatastore: files; EtcdDatastore: keys), each holding
// resources as YAML or JSON text. The cache keeps every source's parse, so that a change to a
// few sources re-parses only those, and the snapshot of the last accepted load, so that a
// change confined to Services and EndpointSlices updates it in place (the changed sources'
// ranges) and checks the cross-resource rules that concern them through kept counts; any other
// change, or any error, takes the full path (merge every parse, validate_snapshot()).
//
// A datastore builds a Scan of its sources as they are now (keep() what did not change, put()
// what may have), then hands it to load_detailed() or load_incremental().
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "datastore/datastore.h"
#include "model/parse.h"

namespace weir::datastore {

class SnapshotCache {
 public:
  // One source's parse, reused while its text is unchanged.
  struct Parsed {
    std::string content;
    model::Snapshot part;
    model::ValidationErrors errors;
  };
  using Sources = std::map<std::string, Parsed>;  // by source name, sorted
  // The sources now: every source's parse, the names of those added, modified or removed since
  // the previous load (sorted), their previous parses, and errors reading sources.
  struct Scan {
    Sources files;
    std::vector<std::string> changed;
    Sources old;
    model::ValidationErrors read_errors;
  };
  // Called on a fresh parse, before it is used: may add errors (EtcdDatastore checks that the
  // resource matches its key).
  using Check = std::function<void(const std::string& name, Parsed& parsed)>;

  // Moves `name`'s cached parse into s.files, unchanged. false when it has none.
  bool keep(Scan& s, const std::string& name);
  // `name` holds `text` now: its cached parse when the text is the same, else a new parse
  // (checked by `check`), recorded as changed.
  void put(Scan& s, const std::string& name, std::string text, const Check& check = nullptr);
  // Every cached source that was neither kept nor put is gone: recorded as changed. Sorts
  // s.changed. Call once, after the last keep()/put().
  void finish(Scan& s);

  // A scan for a datastore that knows exactly which sources changed (EtcdDatastore, from its
  // watch): it starts from every cached source as it is, in O(1), then put_changed() and
  // drop_changed() name the sources that may differ. end_changes() sorts s.changed; finish()
  // is not called. Costs O(changes), where keep()/put() for every source cost O(sources).
  Scan scan_cached();
  void put_changed(Scan& s, const std::string& name, std::string text, const Check& check = nullptr);
  static void drop_changed(Scan& s, const std::string& name);
  static void end_changes(Scan& s);

  // Merges every parse and validates the whole, as model::build_snapshot() does (read errors
  // first). The next load_incremental() takes the full path.
  model::SnapshotResult load_detailed(Scan s);
  // See the header comment. The snapshot stays with the cache.
  Load load_incremental(Scan s);

  // Sources parsed so far (not served from the cache), and load_incremental() calls that took
  // the full path: for tests and logs.
  uint64_t parsed() const { return parsed_; }
  uint64_t full_loads() const { return full_loads_; }

 private:
  // A fresh parse of `text`, checked, counted in parsed().
  Parsed parse(const std::string& name, std::string text, const Check& check);
  void merge_all(Scan& s, model::Snapshot& into, model::ValidationErrors& errors);
  Load full_load(Scan s);
  bool apply_service_changes(const Scan& s, Changes& changes);
  // After an accepted load_incremental() whose sources are now `files`: accepted_ follows
  // merged_, the removals go to l.removed. `changed` limits the comparison to its changed
  // sources (nullptr: all of merged_).
  void track_removals(Load& l, const Scan* changed, const Sources& files);

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

  Sources cache_;
  uint64_t parsed_ = 0, full_loads_ = 0;
  model::Snapshot merged_;  // load_incremental()'s snapshot
  bool merged_ok_ = false;  // merged_ is the accepted snapshot of cache_
  ServiceRules rules_;
  model::ClusterIPRules cluster_ips_;  // of merged_ (its config and workloads)
  // "Kind ns/name" -> source, of the last accepted load_incremental().
  std::unordered_map<std::string, std::string> accepted_;
  bool rejected_ = false;  // the last load_incremental() was rejected
};

// Calls f("Kind ns/name" or "Kind name", source) for every resource of `snap`, and f(kind,
// ns, name) through for_each_resource_id() (ns empty for cluster-scoped kinds).
void for_each_resource(const model::Snapshot& snap,
                       const std::function<void(std::string key, const std::string& source)>& f);
struct ResourceId {
  std::string_view kind;
  std::string ns, name;
  const model::Source* source = nullptr;
};
void for_each_resource_id(const model::Snapshot& snap,
                          const std::function<void(const ResourceId&)>& f);

}  // namespace weir::datastore
