// An etcd v3 client over etcd's JSON gateway (the /v3/... HTTP API that every etcd 3.4 serves
// on its client port next to gRPC): consistent reads of a prefix, transactions, compaction and
// watches. docs/datastore.md says why the gateway and not gRPC.
//
// Keys and values are bytes (base64 on the wire); revisions are etcd's int64 (strings on the
// wire). A request that fails on one endpoint for a reason another member may not have (no
// connection, a timeout, "no leader", "unavailable") is tried on the next endpoint, in order,
// once each; errors say which endpoints were tried and why each failed.
#pragma once

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "datastore/http.h"
#include "util/result.h"

namespace weir::datastore::etcd {

// Error::err of a request for a revision etcd has compacted away (etcd's OutOfRange, "mvcc:
// required revision has been compacted"): the caller must read everything again.
inline constexpr int kErrCompacted = ERANGE;

std::string base64_encode(std::string_view in);
// nullopt when `in` is not valid base64 (standard alphabet, '=' padding).
std::optional<std::string> base64_decode(std::string_view in);
// The end of the range of keys starting with `prefix` (its last byte below 0xff incremented,
// the bytes after it dropped); "\0" (every key) for an empty or all-0xff prefix.
std::string prefix_end(std::string_view prefix);

struct KeyValue {
  std::string key, value;
  int64_t mod_revision = 0;
};

struct Event {
  enum class Type { Put, Delete };
  Type type = Type::Put;
  KeyValue kv;  // for Delete: key and mod_revision only
};

struct Op {
  enum class Type { Put, Delete };
  Type type = Type::Put;
  std::string key, value;
};

// Every key of a prefix at one revision.
struct Range {
  std::vector<KeyValue> kvs;  // sorted by key
  int64_t revision = 0;
};

// One message of a watch stream.
struct WatchResponse {
  bool created = false;
  bool canceled = false;
  int64_t compact_revision = 0;  // canceled because the start revision is compacted
  std::string cancel_reason;
  int64_t revision = 0;  // the store's revision when the message was sent
  std::vector<Event> events;
};

struct Options {
  std::chrono::milliseconds dial_timeout{2000};
  std::chrono::milliseconds request_timeout{10000};
};

// A watch on one key range, over its own connection.
class Watch {
 public:
  // The next message, nullopt when none arrived before `deadline`. An error when the stream
  // broke (the member went away, lost its leader, or the connection failed).
  Result<std::optional<WatchResponse>> next(http::Clock::time_point deadline);
  const http::Endpoint& endpoint() const { return conn_.endpoint(); }

 private:
  friend class Client;
  explicit Watch(http::Connection c) : conn_(std::move(c)) {}
  http::Connection conn_;
};

class Client {
 public:
  // `endpoints`: "http://HOST:PORT[,http://HOST:PORT...]".
  static Result<Client> create(std::string_view endpoints, Options o = {});

  // Every key under `prefix`, at `revision` (0: the current one), read in pages of `page` keys
  // at the first page's revision: one consistent view however many keys there are.
  // Linearizable (served through the leader).
  Result<Range> get_prefix(std::string_view prefix, int64_t revision = 0, size_t page = 500);
  // Applies `ops` in one transaction (all or nothing); returns the revision it made. etcd
  // bounds a transaction (--max-txn-ops, 128 by default; --max-request-bytes, 1.5 MiB): callers
  // split larger changes.
  Result<int64_t> txn(const std::vector<Op>& ops);
  // Compacts the key-value history up to `revision` (tests, operators).
  Result<void> compact(int64_t revision);
  // The current revision.
  Result<int64_t> revision();
  // Starts watching keys under `prefix` from `start_revision`; the stream is canceled by the
  // member when it loses its leader (so that a partitioned member cannot stall the watch).
  Result<Watch> watch(std::string_view prefix, int64_t start_revision);

  const std::vector<http::Endpoint>& endpoints() const { return eps_; }
  const Options& options() const { return opts_; }
  // "http://a:2379,http://b:2379".
  std::string describe() const;

 private:
  Client(std::vector<http::Endpoint> eps, Options o) : eps_(std::move(eps)), opts_(o) {}
  // POSTs `body` to `path` on the current endpoint, failing over as described above.
  Result<nlohmann::json> call(std::string_view path, const nlohmann::json& body);

  std::vector<http::Endpoint> eps_;
  Options opts_;
  size_t current_ = 0;
  std::optional<http::Connection> conn_;
};

}  // namespace weir::datastore::etcd
