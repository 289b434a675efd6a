// EtcdDatastore: resources as keys under a prefix of an etcd v3 cluster ("etcd:URL[,URL...]").
//
// Layout: one resource per key, PREFIX + plural kind + "/" + [namespace "/"] + name, e.g.
// /weir/services/default/web or /weir/nodes/node-a; the value is the resource as JSON (or
// YAML), as `weir apply` writes it. A key's value is validated as a directory's file is, and
// must hold exactly the resource its key names; errors name the key.
//
// Watching (docs/datastore.md): one consistent read of the prefix at a revision R, then a watch
// from R+1 on a thread of its own, which feeds every event to the datastore. The watch resumes
// from the last revision it saw when the stream breaks (a member down: the next endpoint;
// backoff from 100 ms doubling to 5 s), and reads everything again when etcd has compacted that
// revision away, so no event is lost. While etcd cannot be reached the datastore keeps what it
// last read: loads give the same snapshot, and the agent's dataplane stays as it is.
#pragma once

#include <map>
#include <set>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "datastore/datastore.h"
#include "datastore/etcd_client.h"
#include "datastore/snapshot_cache.h"

namespace weir::datastore {

inline constexpr std::string_view kDefaultEtcdPrefix = "/weir/";

// A resource kind as the datastores and the CLI name it.
struct KindInfo {
  std::string_view kind;    // "Service"
  std::string_view plural;  // "services": the key segment, and a name `weir get` accepts
  bool namespaced = false;
};
// Every kind weir reads, in the order `weir apply` writes them (a kind before the kinds that
// refer to it).
const std::vector<KindInfo>& kinds();
// By kind ("Service", also "service"), plural ("services") or short name ("svc", "ns",
// "netpol", "wep", "gnp", "no"), case-insensitively.
const KindInfo* find_kind(std::string_view name);

// PREFIX + plural + "/" + [ns + "/"] + name.
std::string resource_key(std::string_view prefix, const KindInfo& kind, std::string_view ns,
                         std::string_view name);
struct KeyParts {
  const KindInfo* kind = nullptr;
  std::string ns, name;
};
// The parts of a key under `prefix`, or an error saying what the layout is.
Result<KeyParts> parse_resource_key(std::string_view prefix, std::string_view key);

// Adds to p.errors what is wrong with `key` holding p's parse: a key outside the layout (its
// value is not used then), a value holding other than exactly the resource the key names.
void check_resource_key(std::string_view prefix, const std::string& key, SnapshotCache::Parsed& p);

// A key prefix weir accepts: starts and ends with '/', 2..256 bytes, printable ASCII.
Result<void> check_prefix(std::string_view prefix);

struct EtcdFeed;  // etcd_datastore.cpp: what the watch thread hands to the datastore

class EtcdDatastore : public Datastore {
 public:
  // `endpoints`: "http://HOST:PORT[,...]".
  static Result<std::unique_ptr<EtcdDatastore>> open(
      std::string_view endpoints, std::string prefix = std::string(kDefaultEtcdPrefix),
      etcd::Options o = {});
  ~EtcdDatastore() override;

  std::string describe() const override;
  model::SnapshotResult load_detailed() override;
  Load load_incremental() override;
  // Reads the prefix once (consistently) and starts the watch thread from there. When etcd
  // cannot be reached, the watcher is still returned: it keeps trying, and the loads before
  // its first read are rejected with the reason.
  Result<std::unique_ptr<Watcher>> watch() override;

  const std::string& prefix() const { return prefix_; }
  etcd::Client& client() { return client_; }
  // The revision of the content the last load read (0 before any).
  int64_t revision() const { return revision_; }
  // load_incremental() calls that took the full path (tests, logs).
  uint64_t full_loads() const { return cache_.full_loads(); }
  uint64_t parsed() const { return cache_.parsed(); }  // keys parsed so far (not from the cache)

 private:
  EtcdDatastore(etcd::Client c, std::string prefix);
  // Brings kvs_ up to date: from the watch feed when watching, else one read. An error when
  // no consistent read has succeeded yet.
  Result<void> refresh();
  SnapshotCache::Scan scan();

  etcd::Client client_;
  std::string prefix_;
  std::map<std::string, std::string> kvs_;  // key -> value, as of revision_
  // Keys the watch changed since the last scan (the next scan parses only those), unless
  // all_dirty_ (a full read replaced kvs_, or nothing was scanned yet).
  std::set<std::string> dirty_;
  bool all_dirty_ = true;
  int64_t revision_ = 0;
  bool have_read_ = false;
  std::shared_ptr<EtcdFeed> feed_;  // set by watch()
  SnapshotCache cache_;
};

}  // namespace weir::datastore
