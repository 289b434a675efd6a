#include "datastore/etcd_datastore.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <stop_token>
#include <thread>

#include "model/validation.h"
#include "util/fd.h"

namespace weir::datastore {

// ---------------------------------------------------------------- keys

const std::vector<KindInfo>& kinds() {
  static const std::vector<KindInfo> k = {
      {"Namespace", "namespaces", false},
      {"DataplaneConfig", "dataplaneconfigs", false},
      {"Node", "nodes", false},
      {"Tier", "tiers", false},
      {"Service", "services", true},
      {"EndpointSlice", "endpointslices", true},
      {"WorkloadEndpoint", "workloadendpoints", true},
      {"NetworkPolicy", "networkpolicies", true},
      {"GlobalNetworkPolicy", "globalnetworkpolicies", false},
  };
  return k;
}

namespace {

bool iequal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string plural_list() {
  std::string out;
  for (const auto& k : kinds()) out += (out.empty() ? "" : ", ") + std::string(k.plural);
  return out;
}

}  // namespace

const KindInfo* find_kind(std::string_view name) {
  // kubectl's short names, and weir's for its own kinds.
  static constexpr std::pair<std::string_view, std::string_view> kShort[] = {
      {"ns", "namespaces"},
      {"svc", "services"},
      {"netpol", "networkpolicies"},
      {"wep", "workloadendpoints"},
      {"gnp", "globalnetworkpolicies"},
      {"no", "nodes"}};
  for (const auto& [alias, plural] : kShort)
    if (iequal(name, alias)) name = plural;
  for (const auto& k : kinds()) {
    if (iequal(name, k.kind) || iequal(name, k.plural)) return &k;
  }
  return nullptr;
}

std::string resource_key(std::string_view prefix, const KindInfo& kind, std::string_view ns,
                         std::string_view name) {
  if (kind.namespaced) return fmt::format("{}{}/{}/{}", prefix, kind.plural, ns, name);
  return fmt::format("{}{}/{}", prefix, kind.plural, name);
}

Result<KeyParts> parse_resource_key(std::string_view prefix, std::string_view key) {
  auto bad = [&](std::string_view why) {
    return make_error("{}: expected {}<kind>/[<namespace>/]<name> with <kind> one of {}", why,
                      prefix, plural_list());
  };
  if (key.substr(0, prefix.size()) != prefix) return bad("not under the prefix");
  std::string_view rest = key.substr(prefix.size());
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return bad("not a resource key");
  const KindInfo* k = nullptr;
  for (const auto& info : kinds())
    if (info.plural == rest.substr(0, slash)) k = &info;
  if (!k) return bad(fmt::format("unknown kind \"{}\"", model::clip(rest.substr(0, slash))));
  rest.remove_prefix(slash + 1);
  KeyParts out{k, "", ""};
  if (k->namespaced) {
    slash = rest.find('/');
    if (slash == std::string_view::npos || slash == 0)
      return bad(fmt::format("a {} key needs a namespace", k->kind));
    out.ns = rest.substr(0, slash);
    rest.remove_prefix(slash + 1);
  }
  if (rest.empty() || rest.find('/') != std::string_view::npos)
    return bad(fmt::format("a {} key ends with one name", k->kind));
  out.name = rest;
  return out;
}

Result<void> check_prefix(std::string_view prefix) {
  if (prefix.size() < 2 || prefix.size() > 256 || prefix.front() != '/' || prefix.back() != '/')
    return make_error("etcd prefix \"{}\": must start and end with '/' (e.g. /weir/), 2..256 bytes",
                      model::clip(prefix));
  for (char c : prefix)
    if (c <= ' ' || c > '~')
      return make_error("etcd prefix \"{}\": only printable ASCII without spaces",
                        model::clip(prefix));
  return {};
}

void check_resource_key(std::string_view prefix, const std::string& key, SnapshotCache::Parsed& p) {
  auto parts = parse_resource_key(prefix, key);
  if (!parts) {  // not a resource key: what its value holds does not matter
    p.part = model::Snapshot();
    p.errors = {{key, "", "", parts.error().str(), 0, 0}};
    return;
  }
  std::vector<ResourceId> held;
  for_each_resource_id(p.part, [&](const ResourceId& r) { held.push_back(r); });
  auto name = [](std::string_view kind, std::string_view ns, std::string_view n) {
    return ns.empty() ? fmt::format("{} {}", kind, n) : fmt::format("{} {}/{}", kind, ns, n);
  };
  std::string want = name(parts->kind->kind, parts->ns, parts->name);
  if (held.size() > 1) {
    p.errors.push_back(
        {key, "", "",
         fmt::format("holds {} resources; a key holds exactly one ({})", held.size(), want), 0, 0});
  } else if (held.size() == 1 && !p.errors.empty()) {
    // The resource's own errors say enough.
  } else if (held.size() == 1) {
    std::string got = name(held[0].kind, held[0].ns, held[0].name);
    if (got != want)
      p.errors.push_back(
          {key, got, "", fmt::format("the key names {}, the value holds {}", want, got), 0, 0});
  } else if (p.errors.empty()) {
    p.errors.push_back({key, "", "", fmt::format("holds no resource (expected {})", want), 0, 0});
  }
}

// ---------------------------------------------------------------- the watch feed

// What the watch thread has seen and the datastore has not taken yet.
struct EtcdFeed {
  std::mutex mu;
  // A full read not yet taken (replaces everything), then the changes since.
  std::optional<std::map<std::string, std::string>> reset;
  std::map<std::string, std::optional<std::string>> changes;  // nullopt: deleted
  int64_t revision = 0;  // of the content after reset + changes
  bool read_once = false;
  std::string trouble;  // why the watch is not running now, "" when it is
  Fd event;             // eventfd, written after each post

  void notify() const {
    uint64_t one = 1;
    ssize_t n = ::write(event.get(), &one, sizeof(one));
    (void)n;  // EAGAIN: the counter is full, the reader wakes anyway
  }
};

namespace {

constexpr auto kMinBackoff = std::chrono::milliseconds(100);
constexpr auto kMaxBackoff = std::chrono::seconds(5);
constexpr auto kWatchConfirmTimeout = std::chrono::seconds(3);
constexpr auto kPollSlice = std::chrono::milliseconds(250);

class EtcdWatcher : public Watcher {
 public:
  EtcdWatcher(etcd::Client client, std::string prefix, int64_t revision,
              std::shared_ptr<EtcdFeed> feed)
      : feed_(std::move(feed)),
        thread_([this, c = std::move(client), p = std::move(prefix),
                 revision](std::stop_token st) mutable { run(st, c, p, revision); }) {}
  ~EtcdWatcher() override {
    thread_.request_stop();
    cv_.notify_all();
  }

  int fd() const override { return feed_->event.get(); }
  std::chrono::milliseconds poll_interval() const override { return std::chrono::milliseconds(0); }
  Result<bool> drain() override {
    uint64_t n = 0;
    ssize_t r = ::read(feed_->event.get(), &n, sizeof(n));
    if (r < 0 && errno != EAGAIN) return errno_error("reading the etcd watch's eventfd");
    return r == sizeof(n) && n > 0;
  }

 private:
  // Sleeps `d` unless asked to stop first; false when asked to stop.
  bool pause(std::stop_token& st, std::chrono::milliseconds d) {
    std::unique_lock lock(sleep_mu_);
    cv_.wait_for(lock, st, d, [] { return false; });
    return !st.stop_requested();
  }

  void set_trouble(std::string why) {
    std::lock_guard lock(feed_->mu);
    feed_->trouble = std::move(why);
  }

  void post_read(etcd::Range r) {
    std::map<std::string, std::string> kvs;
    for (auto& kv : r.kvs) kvs.emplace(std::move(kv.key), std::move(kv.value));
    {
      std::lock_guard lock(feed_->mu);
      feed_->reset = std::move(kvs);
      feed_->changes.clear();
      feed_->revision = r.revision;
      feed_->read_once = true;
      feed_->trouble.clear();
    }
    feed_->notify();
  }

  void post_events(std::vector<etcd::Event>& events, int64_t revision) {
    {
      std::lock_guard lock(feed_->mu);
      for (auto& e : events) {
        if (e.type == etcd::Event::Type::Put)
          feed_->changes[e.kv.key] = std::move(e.kv.value);
        else
          feed_->changes[e.kv.key] = std::nullopt;
      }
      feed_->revision = std::max(feed_->revision, revision);
    }
    feed_->notify();
  }

  void run(std::stop_token st, etcd::Client& client, const std::string& prefix, int64_t rev) {
    auto backoff = std::chrono::milliseconds(kMinBackoff);
    auto retry_later = [&](const std::string& why) {
      set_trouble(why);
      spdlog::warn("etcd {}: {}; trying again in {} ms", client.describe(), why, backoff.count());
      bool go_on = pause(st, backoff);
      backoff = std::min<std::chrono::milliseconds>(backoff * 2, kMaxBackoff);
      return go_on;
    };
    bool resumed = false;
    while (!st.stop_requested()) {
      if (rev == 0) {
        auto r = client.get_prefix(prefix);
        if (!r) {
          if (!retry_later("reading " + prefix + ": " + r.error().str())) return;
          continue;
        }
        rev = r->revision;
        spdlog::info("etcd {}: read {} keys under {} at revision {}", client.describe(),
                     r->kvs.size(), prefix, rev);
        post_read(std::move(*r));
      }
      auto w = client.watch(prefix, rev + 1);
      if (!w) {
        if (!retry_later("watching " + prefix + ": " + w.error().str())) return;
        continue;
      }
      if (resumed)
        spdlog::info("etcd {}: watching {} again from revision {} on {}", client.describe(), prefix,
                     rev + 1, w->endpoint().url());
      resumed = true;
      // etcd confirms a watch (created) at once; a member still starting may take the request
      // and never answer it (seen under load right after a restart): then try again.
      bool confirmed = false;
      const auto confirm_by = http::Clock::now() + kWatchConfirmTimeout;
      while (!st.stop_requested()) {
        auto m = w->next(http::Clock::now() + kPollSlice);
        if (!m) {
          if (!retry_later("watch broke: " + m.error().str())) return;
          break;
        }
        if (!confirmed && http::Clock::now() > confirm_by) {
          if (!retry_later(fmt::format("watch not confirmed by {} within {} s", w->endpoint().url(),
                                       std::chrono::duration_cast<std::chrono::seconds>(kWatchConfirmTimeout).count())))
            return;
          break;
        }
        if (!*m) continue;
        if ((*m)->canceled) {
          if ((*m)->compact_revision > 0) {
            spdlog::warn("etcd {}: revision {} is compacted (oldest kept: {}); reading {} again",
                         client.describe(), rev + 1, (*m)->compact_revision, prefix);
            rev = 0;
            break;
          }
          if (!retry_later("watch canceled by " + w->endpoint().url() + ": " +
                           ((*m)->cancel_reason.empty() ? "no reason given" : (*m)->cancel_reason)))
            return;
          break;
        }
        if ((*m)->created) {
          confirmed = true;
          backoff = kMinBackoff;
          set_trouble("");
          continue;
        }
        if ((*m)->events.empty()) continue;
        int64_t last = rev;
        for (const auto& e : (*m)->events) last = std::max(last, e.kv.mod_revision);
        rev = last;
        post_events((*m)->events, last);
      }
    }
  }

  std::shared_ptr<EtcdFeed> feed_;
  std::mutex sleep_mu_;
  std::condition_variable_any cv_;
  std::jthread thread_;  // last: it uses the members above
};

}  // namespace

// ---------------------------------------------------------------- EtcdDatastore

EtcdDatastore::EtcdDatastore(etcd::Client c, std::string prefix)
    : client_(std::move(c)), prefix_(std::move(prefix)) {}

EtcdDatastore::~EtcdDatastore() = default;

Result<std::unique_ptr<EtcdDatastore>> EtcdDatastore::open(std::string_view endpoints,
                                                           std::string prefix, etcd::Options o) {
  WEIR_TRY(check_prefix(prefix));
  auto c = etcd::Client::create(endpoints, o);
  if (!c) return c.error();
  return std::unique_ptr<EtcdDatastore>(new EtcdDatastore(std::move(*c), std::move(prefix)));
}

std::string EtcdDatastore::describe() const {
  return fmt::format("etcd:{} (prefix {})", client_.describe(), prefix_);
}

Result<void> EtcdDatastore::refresh() {
  if (!feed_) {
    auto r = client_.get_prefix(prefix_);
    if (!r) return r.error();
    kvs_.clear();
    for (auto& kv : r->kvs) kvs_.emplace(std::move(kv.key), std::move(kv.value));
    revision_ = r->revision;
    have_read_ = true;
    all_dirty_ = true;
    return {};
  }
  std::lock_guard lock(feed_->mu);
  if (!feed_->read_once)
    return make_error("etcd {}: no consistent read of {} yet: {}", client_.describe(), prefix_,
                      feed_->trouble.empty() ? "the first read is under way" : feed_->trouble);
  if (feed_->reset) {
    kvs_ = std::move(*feed_->reset);
    feed_->reset.reset();
    all_dirty_ = true;
  }
  for (auto& [key, value] : feed_->changes) {
    if (!all_dirty_) dirty_.insert(key);
    if (value)
      kvs_.insert_or_assign(key, std::move(*value));
    else
      kvs_.erase(key);
  }
  feed_->changes.clear();
  revision_ = feed_->revision;
  have_read_ = true;
  return {};
}

SnapshotCache::Scan EtcdDatastore::scan() {
  SnapshotCache::Scan s;
  if (auto r = refresh(); !r) {
    if (!have_read_) {
      s.read_errors.push_back({describe(), "", "", r.error().str(), 0, 0});
      cache_.finish(s);
      return s;
    }
    // etcd is out of reach: the content last read stands.
    spdlog::warn("{}: {}; using the content of revision {}", describe(), r.error().str(),
                 revision_);
  }
  auto check = [this](const std::string& key, SnapshotCache::Parsed& p) {
    check_resource_key(prefix_, key, p);
  };
  if (!all_dirty_) {
    // Only what the watch changed: O(changes), not O(keys).
    s = cache_.scan_cached();
    for (const auto& key : dirty_) {
      auto it = kvs_.find(key);
      if (it == kvs_.end())
        SnapshotCache::drop_changed(s, key);
      else
        cache_.put_changed(s, key, it->second, check);
    }
    dirty_.clear();
    SnapshotCache::end_changes(s);
    return s;
  }
  for (const auto& [key, value] : kvs_) cache_.put(s, key, value, check);
  cache_.finish(s);
  dirty_.clear();
  all_dirty_ = false;
  return s;
}

model::SnapshotResult EtcdDatastore::load_detailed() { return cache_.load_detailed(scan()); }

Load EtcdDatastore::load_incremental() { return cache_.load_incremental(scan()); }

Result<std::unique_ptr<Watcher>> EtcdDatastore::watch() {
  auto feed = std::make_shared<EtcdFeed>();
  feed->event = Fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!feed->event) return errno_error("eventfd for the etcd watch");
  int64_t rev = 0;
  auto r = client_.get_prefix(prefix_);
  if (r) {
    rev = r->revision;
    std::map<std::string, std::string> kvs;
    for (auto& kv : r->kvs) kvs.emplace(std::move(kv.key), std::move(kv.value));
    feed->reset = std::move(kvs);
    feed->revision = rev;
    feed->read_once = true;
  } else {
    feed->trouble = r.error().str();
    spdlog::warn("{}: {}; the watch keeps trying", describe(), r.error().str());
  }
  auto c = etcd::Client::create(client_.describe(), client_.options());
  if (!c) return c.error();
  feed_ = feed;
  return std::unique_ptr<Watcher>(
      std::make_unique<EtcdWatcher>(std::move(*c), prefix_, rev, std::move(feed)));
}

}  // namespace weir::datastore
