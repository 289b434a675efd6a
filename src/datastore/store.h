// What `weir apply`, `weir get` and `weir delete` do, against either datastore, so that an
// operator never writes files or keys by hand.
//
// Apply and delete validate on the client side first, as kubectl does, and further: the input
// must parse and validate on its own (every error is reported, nothing is written), and the
// datastore after the change must have no error it did not have before (a Service removed
// under its EndpointSlices, a clusterIP taken twice, a key holding the wrong resource...).
// Only then are the changes written: in etcd, as transactions of at most kTxnOps operations and
// kTxnBytes bytes (a 10,000-service file is about 160 transactions, not 20,000 requests),
// kinds in dependency order (Namespaces, DataplaneConfig, Nodes, Tiers, Services, then what
// refers to them; deletes in the reverse order), so that every intermediate state a watcher
// sees between two transactions validates as well as the ends do.
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "datastore/datastore.h"
#include "datastore/etcd_datastore.h"
#include "datastore/snapshot_cache.h"
#include "model/parse.h"
#include "util/result.h"

namespace weir::datastore {

inline constexpr size_t kTxnOps = 128;                // etcd's default --max-txn-ops
inline constexpr size_t kTxnBytes = size_t{1} << 20;  // under etcd's 1.5 MiB --max-request-bytes

// One resource as a document: what it is, and its body as JSON.
// (clang-tidy cannot see that nlohmann::json's implicit moves do not throw.)
struct Document {  // NOLINT(bugprone-exception-escape)
  const KindInfo* kind = nullptr;
  std::string ns, name;  // ns empty for cluster-scoped kinds
  nlohmann::json body;   // metadata.namespace set (namespaced kinds)
  std::string source;    // where it was read: a file, or a key

  // "Service default/web", "Node node-a".
  std::string id() const;
};

// The resources of one text (YAML documents, `kind: List` items) as documents. Lenient: a
// document without a known kind or a name is skipped; run model::parse_text() first to report
// errors.
std::vector<Document> documents_of(const model::SourceText& src);

// A datastore's sources (files, keys) as text, for the commands.
class ResourceStore {
 public:
  virtual ~ResourceStore() = default;
  virtual std::string describe() const = 0;
  // Every source and its text.
  virtual Result<std::map<std::string, std::string>> read_all() = 0;
  // What the datastore checks of a source beyond its resources (EtcdDatastore: the key matches
  // the resource); nullptr for none.
  virtual SnapshotCache::Check check() const = 0;
  // Where a resource that is in no source yet goes.
  virtual std::string new_source(const Document& d) const = 0;
  // The text a source holding just `d` has.
  virtual std::string text_of(const Document& d) const = 0;
  // Writes the changes in order: a text, or nullopt to remove the source.
  virtual Status write(
      const std::vector<std::pair<std::string, std::optional<std::string>>>& changes) = 0;
};

// "dir:PATH" or "etcd:URL[,URL...]" (with o.etcd_prefix), as open_datastore() takes them.
Result<std::unique_ptr<ResourceStore>> open_store(const std::string& spec,
                                                  const DatastoreOptions& o = {});

// Applies every resource of `inputs` (files' texts). Returns one line per resource, "service
// default/web created|configured|unchanged", or an Error listing every problem (nothing
// written then).
Result<std::vector<std::string>> apply_resources(ResourceStore& store,
                                                 const std::vector<model::SourceText>& inputs);

struct ResourceRef {
  const KindInfo* kind = nullptr;
  std::string ns, name;
};
// Deletes the resources; every one must exist. Lines "service default/web deleted".
Result<std::vector<std::string>> delete_resources(ResourceStore& store,
                                                  const std::vector<ResourceRef>& which);
// The refs of every resource in `inputs` (for `weir delete -f`), or the parse errors.
Result<std::vector<ResourceRef>> refs_of(const std::vector<model::SourceText>& inputs);

// The resources of `kind` (all, or `name`), in namespace `ns` ("" = every namespace), sorted by
// namespace and name.
Result<std::vector<Document>> get_resources(ResourceStore& store, const KindInfo& kind,
                                            const std::string& ns, const std::string& name);

}  // namespace weir::datastore
