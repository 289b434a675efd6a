#include "datastore/etcd_client.h"

#include <fmt/format.h>

#include <array>
#include <charconv>

#include "model/validation.h"

namespace weir::datastore::etcd {

using json = nlohmann::json;

namespace {

constexpr std::string_view kB64 =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// gRPC status codes etcd returns through the gateway.
constexpr int kGrpcDeadlineExceeded = 4;
constexpr int kGrpcOutOfRange = 11;
constexpr int kGrpcUnavailable = 14;

int64_t i64(const json& j, const char* field) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) return 0;
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_string()) {
    const auto& s = it->get_ref<const std::string&>();
    int64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec == std::errc() && p == s.data() + s.size()) return v;
  }
  throw std::runtime_error(fmt::format("field \"{}\" is not an integer", field));
}

std::string bytes(const json& j, const char* field) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) return "";
  if (!it->is_string())
    throw std::runtime_error(fmt::format("field \"{}\" is not a string", field));
  auto v = base64_decode(it->get_ref<const std::string&>());
  if (!v) throw std::runtime_error(fmt::format("field \"{}\" is not base64", field));
  return std::move(*v);
}

KeyValue key_value(const json& kv) {
  return KeyValue{bytes(kv, "key"), bytes(kv, "value"), i64(kv, "mod_revision")};
}

// An error answer of the gateway: {"error": "...", "message": "...", "code": N}, or, inside a
// stream, {"error": {"grpc_code": N, "message": "..."}}.
struct EtcdError {
  int code = 0;
  std::string message;
};

std::optional<EtcdError> etcd_error(const json& j) {
  auto e = j.find("error");
  if (e == j.end()) return std::nullopt;
  EtcdError out;
  const json& src = e->is_object() ? *e : j;
  if (auto m = src.find("message"); m != src.end() && m->is_string())
    out.message = *m;
  else if (e->is_string())
    out.message = *e;
  for (const char* f : {"code", "grpc_code"})
    if (auto c = src.find(f); c != src.end() && c->is_number_integer()) out.code = c->get<int>();
  return out;
}

bool is_compacted(const EtcdError& e) {
  return e.code == kGrpcOutOfRange && e.message.find("compacted") != std::string::npos;
}

// Another member may succeed where this one failed.
bool try_elsewhere(const EtcdError& e) {
  return e.code == kGrpcUnavailable || e.code == kGrpcDeadlineExceeded ||
         e.message.find("leader") != std::string::npos;
}

// "a; b; c".
std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : "; ") + s;
  return out;
}

Error to_error(const EtcdError& e, std::string_view where) {
  return Error{is_compacted(e) ? kErrCompacted : 0,
               fmt::format("{}: etcd: {} (code {})", where, model::clip(e.message), e.code)};
}

}  // namespace

std::string base64_encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t v =
        uint32_t(uint8_t(in[i])) << 16 | uint32_t(uint8_t(in[i + 1])) << 8 | uint8_t(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += kB64[(v >> s) & 63];
  }
  if (size_t rest = in.size() - i; rest > 0) {
    uint32_t v =
        uint32_t(uint8_t(in[i])) << 16 | (rest == 2 ? uint32_t(uint8_t(in[i + 1])) << 8 : 0);
    out += kB64[(v >> 18) & 63];
    out += kB64[(v >> 12) & 63];
    out += rest == 2 ? kB64[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view in) {
  static constexpr auto kRev = [] {
    std::array<int, 256> t{};
    t.fill(-1);
    for (size_t i = 0; i < kB64.size(); ++i) t[uint8_t(kB64[i])] = int(i);
    return t;
  }();
  if (in.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(in.size() / 4 * 3);
  for (size_t i = 0; i < in.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      char c = in[i + k];
      if (c == '=' && i + 4 == in.size() && k >= 2) {
        v[k] = 0;
        ++pad;
        continue;
      }
      if (pad > 0 || (v[k] = kRev[uint8_t(c)]) < 0) return std::nullopt;
    }
    uint32_t x = uint32_t(v[0]) << 18 | uint32_t(v[1]) << 12 | uint32_t(v[2]) << 6 | uint32_t(v[3]);
    out += char(x >> 16);
    if (pad < 2) out += char((x >> 8) & 0xff);
    if (pad < 1) out += char(x & 0xff);
  }
  return out;
}

std::string prefix_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    if (uint8_t(end.back()) < 0xff) {
      end.back() = char(uint8_t(end.back()) + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');
}

// ---------------------------------------------------------------- Client

Result<Client> Client::create(std::string_view endpoints, Options o) {
  std::vector<http::Endpoint> eps;
  size_t start = 0;
  while (start <= endpoints.size()) {
    size_t comma = endpoints.find(',', start);
    std::string_view one = endpoints.substr(
        start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    auto ep = http::parse_url(one);
    if (!ep) return ep.error().wrap("etcd endpoint");
    eps.push_back(std::move(*ep));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return Client(std::move(eps), o);
}

std::string Client::describe() const {
  std::string out;
  for (const auto& ep : eps_) out += (out.empty() ? "" : ",") + ep.url();
  return out;
}

Result<json> Client::call(std::string_view path, const json& body) {
  std::string payload = body.dump();
  std::vector<std::string> tried;
  // Each endpoint once, starting with the current one; the current one twice when its kept
  // connection was closed by the server in between (an idle keep-alive).
  for (size_t attempt = 0; attempt < eps_.size() + 1 && tried.size() < eps_.size(); ++attempt) {
    const http::Endpoint& ep = eps_[current_];
    auto deadline = http::Clock::now() + opts_.request_timeout;
    bool reused = conn_.has_value();
    if (!conn_) {
      auto c = http::Connection::open(ep, http::Clock::now() + opts_.dial_timeout);
      if (!c) {
        tried.push_back(c.error().str());
        current_ = (current_ + 1) % eps_.size();
        continue;
      }
      conn_.emplace(std::move(*c));
    }
    auto r = conn_->post(path, payload, deadline);
    if (!r) {
      conn_.reset();
      if (reused && r.error().err == ECONNRESET) continue;  // a stale keep-alive: once more
      tried.push_back(r.error().str());
      current_ = (current_ + 1) % eps_.size();
      continue;
    }
    if (conn_->closed()) conn_.reset();
    json j = json::parse(r->body, nullptr, false);
    if (j.is_discarded() || !j.is_object())
      return make_error("{}{}: etcd answered HTTP {} with a body that is not a JSON object: {}",
                        ep.url(), path, r->status, model::clip(r->body));
    if (auto e = etcd_error(j)) {
      if (try_elsewhere(*e)) {
        tried.push_back(to_error(*e, ep.url()).str());
        conn_.reset();
        current_ = (current_ + 1) % eps_.size();
        continue;
      }
      return to_error(*e, fmt::format("{}{}", ep.url(), path));
    }
    if (r->status != 200)
      return make_error("{}{}: etcd answered HTTP {}: {}", ep.url(), path, r->status,
                        model::clip(r->body));
    return j;
  }
  return make_error("etcd {}: no endpoint answered {}: {}", describe(), path, join(tried));
}

Result<Range> Client::get_prefix(std::string_view prefix, int64_t revision, size_t page) {
  Range out;
  std::string from(prefix), end = prefix_end(prefix);
  out.revision = revision;
  for (;;) {
    json req = {{"key", base64_encode(from)},
                {"range_end", base64_encode(end)},
                {"limit", std::to_string(page)}};
    if (out.revision > 0) req["revision"] = std::to_string(out.revision);
    auto r = call("/v3/kv/range", req);
    if (!r) return r.error();
    try {
      if (out.revision == 0) out.revision = i64((*r)["header"], "revision");
      const json& kvs = r->value("kvs", json::array());
      for (const auto& kv : kvs) out.kvs.push_back(key_value(kv));
      bool more = r->value("more", false);
      if (!more || kvs.empty()) break;
      from = out.kvs.back().key + std::string(1, '\0');
    } catch (const std::exception& e) {
      return make_error("etcd range {}: unexpected answer: {}", model::clip(prefix), e.what());
    }
  }
  return out;
}

Result<int64_t> Client::txn(const std::vector<Op>& ops) {
  json success = json::array();
  for (const auto& op : ops) {
    if (op.type == Op::Type::Put)
      success.push_back(
          {{"request_put", {{"key", base64_encode(op.key)}, {"value", base64_encode(op.value)}}}});
    else
      success.push_back({{"request_delete_range", {{"key", base64_encode(op.key)}}}});
  }
  auto r = call("/v3/kv/txn", json{{"success", success}});
  if (!r) return r.error();
  try {
    return i64((*r)["header"], "revision");
  } catch (const std::exception& e) {
    return make_error("etcd txn: unexpected answer: {}", e.what());
  }
}

Result<void> Client::compact(int64_t revision) {
  auto r =
      call("/v3/kv/compaction", json{{"revision", std::to_string(revision)}, {"physical", true}});
  if (!r) return r.error();
  return {};
}

Result<int64_t> Client::revision() {
  auto r = get_prefix(std::string(1, '\0'), 0, 1);
  if (!r) return r.error();
  return r->revision;
}

Result<Watch> Client::watch(std::string_view prefix, int64_t start_revision) {
  json req = {{"create_request",
               {{"key", base64_encode(prefix)},
                {"range_end", base64_encode(prefix_end(prefix))},
                {"start_revision", std::to_string(start_revision)}}}};
  std::string payload = req.dump();
  std::vector<std::string> tried;
  for (size_t n = 0; n < eps_.size(); ++n) {
    const http::Endpoint& ep = eps_[current_];
    auto c = http::Connection::open(ep, http::Clock::now() + opts_.dial_timeout);
    if (c) {
      // The gateway passes Grpc-Metadata-* headers on as gRPC metadata: "hasleader" makes the
      // member cancel the watch when it has no leader, as clientv3.WithRequireLeader does.
      auto r = c->post_stream("/v3/watch", payload, http::Clock::now() + opts_.request_timeout,
                              {{"Grpc-Metadata-hasleader", "true"}});
      if (r && r->status == 200) return Watch(std::move(*c));
      tried.push_back(r ? fmt::format("{}: HTTP {}: {}", ep.url(), r->status, model::clip(r->body))
                        : r.error().str());
    } else {
      tried.push_back(c.error().str());
    }
    current_ = (current_ + 1) % eps_.size();
  }
  return make_error("etcd {}: no endpoint accepted the watch: {}", describe(), join(tried));
}

// ---------------------------------------------------------------- Watch

Result<std::optional<WatchResponse>> Watch::next(http::Clock::time_point deadline) {
  auto line = conn_.next_line(deadline);
  if (!line) return line.error();
  if (!*line) return std::optional<WatchResponse>();
  json j = json::parse(**line, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return make_error("etcd watch on {}: not a JSON object: {}", conn_.endpoint().url(),
                      model::clip(**line));
  if (auto e = etcd_error(j)) return to_error(*e, "etcd watch on " + conn_.endpoint().url());
  try {
    const json& res = j.at("result");
    WatchResponse w;
    w.created = res.value("created", false);
    w.canceled = res.value("canceled", false);
    w.compact_revision = i64(res, "compact_revision");
    w.cancel_reason = res.value("cancel_reason", "");
    if (auto h = res.find("header"); h != res.end()) w.revision = i64(*h, "revision");
    for (const auto& ev : res.value("events", json::array())) {
      Event e;
      e.type = ev.value("type", "PUT") == "DELETE" ? Event::Type::Delete : Event::Type::Put;
      e.kv = key_value(ev.at("kv"));
      w.events.push_back(std::move(e));
    }
    return std::optional<WatchResponse>(std::move(w));
  } catch (const std::exception& e) {
    return make_error("etcd watch on {}: unexpected message: {}", conn_.endpoint().url(), e.what());
  }
}

}  // namespace weir::datastore::etcd
