#include "datastore/store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <tuple>

#include "datastore/dir_datastore.h"
#include "datastore/snapshot_cache.h"
#include "model/yaml_json.h"

namespace weir::datastore {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string Document::id() const {
  return ns.empty() ? fmt::format("{} {}", kind->kind, name)
                    : fmt::format("{} {}/{}", kind->kind, ns, name);
}

namespace {

std::string ns_name_line(std::string_view kind, std::string_view ns, std::string_view name) {
  return ns.empty() ? fmt::format("{} {}", kind, name) : fmt::format("{} {}/{}", kind, ns, name);
}

// "service default/web", as the commands print it.
std::string lower_id(const Document& d) {
  std::string kind(d.kind->kind);
  std::transform(kind.begin(), kind.end(), kind.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return ns_name_line(kind, d.ns, d.name);
}

}  // namespace

std::vector<Document> documents_of(const model::SourceText& src) {
  std::vector<Document> out;
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(src.text);
  } catch (const YAML::Exception&) {
    return out;
  }
  auto take = [&](const YAML::Node& n) {
    if (!n.IsMap() || !n["kind"] || !n["kind"].IsScalar()) return;
    const KindInfo* k = nullptr;
    for (const auto& info : kinds())
      if (info.kind == n["kind"].Scalar()) k = &info;
    YAML::Node md = n["metadata"];
    if (!k || !md.IsMap() || !md["name"] || !md["name"].IsScalar()) return;
    Document d;
    d.kind = k;
    d.name = md["name"].Scalar();
    d.body = model::yaml_to_json(n);
    if (k->namespaced) {
      d.ns = md["namespace"] && md["namespace"].IsScalar() ? md["namespace"].Scalar() : "default";
      d.body["metadata"]["namespace"] = d.ns;
    }
    d.source = src.file;
    out.push_back(std::move(d));
  };
  for (const auto& doc : docs) {
    if (doc.IsMap() && doc["kind"] && doc["kind"].IsScalar() && doc["kind"].Scalar() == "List") {
      if (doc["items"] && doc["items"].IsSequence())
        for (const auto& item : doc["items"]) take(item);
    } else {
      take(doc);
    }
  }
  return out;
}

namespace {

size_t kind_rank(const KindInfo* k) { return size_t(k - kinds().data()); }

// Every source's documents, and where each resource is.
struct Index {
  std::map<std::string, std::vector<Document>> by_source;
  std::map<std::string, const Document*> by_id;
};

Index index_of(const std::map<std::string, std::string>& sources) {
  Index ix;
  for (const auto& [name, text] : sources) ix.by_source[name] = documents_of({name, text});
  for (const auto& [name, docs] : ix.by_source)
    for (const auto& d : docs) ix.by_id.emplace(d.id(), &d);
  return ix;
}

// Validates sources as the datastore's load does, through `cache`: a second call re-parses only
// the sources whose text changed since the first.
model::SnapshotResult validate(SnapshotCache& cache, const ResourceStore& store,
                               const std::map<std::string, std::string>& sources) {
  SnapshotCache::Scan s;
  auto check = store.check();
  for (const auto& [name, text] : sources) cache.put(s, name, text, check);
  cache.finish(s);
  return cache.load_detailed(std::move(s));
}

// The errors the datastore would have after the change that it does not have now, as lines.
std::vector<std::string> new_errors(const ResourceStore& store,
                                    const std::map<std::string, std::string>& now,
                                    const std::map<std::string, std::string>& after_change) {
  SnapshotCache cache;
  model::SnapshotResult before = validate(cache, store, now);
  model::SnapshotResult after = validate(cache, store, after_change);
  std::set<std::string> had;
  for (const auto& e : before.errors) had.insert(e.str());
  std::vector<std::string> out;
  for (const auto& e : after.errors)
    if (!had.contains(e.str())) out.push_back(e.str());
  return out;
}

Error problems(std::string_view what, const std::vector<std::string>& lines) {
  std::string msg =
      fmt::format("{} ({} problem{}):", what, lines.size(), lines.size() == 1 ? "" : "s");
  for (const auto& l : lines) msg += "\n  " + l;
  return make_error("{}", msg);
}

Result<std::vector<Document>> parse_inputs(const std::vector<model::SourceText>& inputs) {
  model::ValidationErrors errors;
  for (const auto& src : inputs) {
    model::Snapshot part;
    model::parse_text(src, part, errors);
  }
  if (!errors.empty()) {
    std::vector<std::string> lines;
    for (const auto& e : errors) lines.push_back(e.str());
    return problems("nothing applied: the input is not valid", lines);
  }
  std::vector<Document> docs;
  for (const auto& src : inputs) {
    auto d = documents_of(src);
    docs.insert(docs.end(), std::make_move_iterator(d.begin()), std::make_move_iterator(d.end()));
  }
  return docs;
}

}  // namespace

Result<std::vector<std::string>> apply_resources(ResourceStore& store,
                                                 const std::vector<model::SourceText>& inputs) {
  auto parsed = parse_inputs(inputs);
  if (!parsed) return parsed.error();
  std::vector<Document>& docs = *parsed;
  std::stable_sort(docs.begin(), docs.end(), [](const Document& a, const Document& b) {
    return kind_rank(a.kind) < kind_rank(b.kind);
  });
  auto current = store.read_all();
  if (!current) return current.error().wrap(store.describe());
  Index ix = index_of(*current);
  std::vector<std::string> bad, lines;
  std::map<std::string, std::string> after = *current;
  std::vector<std::pair<std::string, std::optional<std::string>>> changes;
  std::map<std::string, std::string> seen;  // id -> input source
  for (const auto& d : docs) {
    if (auto [it, fresh] = seen.emplace(d.id(), d.source); !fresh) {
      bad.push_back(fmt::format("{}: {} is also in {}", d.source, d.id(), it->second));
      continue;
    }
    auto at = ix.by_id.find(d.id());
    std::string src;
    if (at != ix.by_id.end()) {
      src = at->second->source;
      size_t n = ix.by_source[src].size();
      if (n > 1) {
        bad.push_back(
            fmt::format("{} is defined in {} with {} other resource{}: edit that file, "
                        "or move it to a file of its own first",
                        d.id(), src, n - 1, n == 2 ? "" : "s"));
        continue;
      }
      if (at->second->body == d.body) {
        lines.push_back(lower_id(d) + " unchanged");
        continue;
      }
      lines.push_back(lower_id(d) + " configured");
    } else {
      src = store.new_source(d);
      lines.push_back(lower_id(d) + " created");
    }
    std::string text = store.text_of(d);
    after[src] = text;
    changes.emplace_back(src, std::move(text));
  }
  if (!bad.empty()) return problems("nothing applied", bad);
  if (changes.empty()) return lines;
  auto errs = new_errors(store, *current, after);
  if (!errs.empty())
    return problems(fmt::format("nothing applied: {} would not validate", store.describe()), errs);
  WEIR_TRY(store.write(changes));
  return lines;
}

Result<std::vector<ResourceRef>> refs_of(const std::vector<model::SourceText>& inputs) {
  auto parsed = parse_inputs(inputs);
  if (!parsed) return parsed.error();
  std::vector<ResourceRef> out;
  for (const auto& d : *parsed) out.push_back({d.kind, d.ns, d.name});
  return out;
}

Result<std::vector<std::string>> delete_resources(ResourceStore& store,
                                                  const std::vector<ResourceRef>& which) {
  auto current = store.read_all();
  if (!current) return current.error().wrap(store.describe());
  Index ix = index_of(*current);
  std::vector<ResourceRef> refs = which;
  std::stable_sort(refs.begin(), refs.end(), [](const ResourceRef& a, const ResourceRef& b) {
    return kind_rank(a.kind) > kind_rank(b.kind);  // what refers to others goes first
  });
  std::vector<std::string> bad, lines;
  std::map<std::string, std::string> after = *current;
  std::vector<std::pair<std::string, std::optional<std::string>>> changes;
  for (const auto& r : refs) {
    Document d{r.kind, r.kind->namespaced ? (r.ns.empty() ? "default" : r.ns) : "", r.name, {}, ""};
    auto at = ix.by_id.find(d.id());
    if (at == ix.by_id.end()) {
      bad.push_back(fmt::format("{} not found", d.id()));
      continue;
    }
    const std::string& src = at->second->source;
    if (size_t n = ix.by_source[src].size(); n > 1) {
      bad.push_back(
          fmt::format("{} is defined in {} with {} other resource{}: remove it from "
                      "that file by hand",
                      d.id(), src, n - 1, n == 2 ? "" : "s"));
      continue;
    }
    if (!after.erase(src)) continue;  // named twice
    changes.emplace_back(src, std::nullopt);
    lines.push_back(lower_id(d) + " deleted");
  }
  if (!bad.empty()) return problems("nothing deleted", bad);
  auto errs = new_errors(store, *current, after);
  if (!errs.empty())
    return problems(fmt::format("nothing deleted: {} would not validate", store.describe()), errs);
  WEIR_TRY(store.write(changes));
  return lines;
}

Result<std::vector<Document>> get_resources(ResourceStore& store, const KindInfo& kind,
                                            const std::string& ns, const std::string& name) {
  auto current = store.read_all();
  if (!current) return current.error().wrap(store.describe());
  std::vector<Document> out;
  for (const auto& [src, text] : *current)
    for (auto& d : documents_of({src, text}))
      if (d.kind == &kind && (ns.empty() || !kind.namespaced || d.ns == ns) &&
          (name.empty() || d.name == name))
        out.push_back(std::move(d));
  std::sort(out.begin(), out.end(), [](const Document& a, const Document& b) {
    return std::tie(a.ns, a.name) < std::tie(b.ns, b.name);
  });
  if (!name.empty() && out.empty())
    return make_error("{} {} not found in {}", kind.kind,
                      kind.namespaced && !ns.empty() ? ns + "/" + name : name, store.describe());
  return out;
}

// ---------------------------------------------------------------- EtcdStore

namespace {

class EtcdStore : public ResourceStore {
 public:
  EtcdStore(etcd::Client c, std::string prefix)
      : client_(std::move(c)), prefix_(std::move(prefix)) {}

  std::string describe() const override {
    return fmt::format("etcd:{} (prefix {})", client_.describe(), prefix_);
  }
  Result<std::map<std::string, std::string>> read_all() override {
    auto r = client_.get_prefix(prefix_);
    if (!r) return r.error();
    std::map<std::string, std::string> out;
    for (auto& kv : r->kvs) out.emplace(std::move(kv.key), std::move(kv.value));
    return out;
  }
  SnapshotCache::Check check() const override {
    return [prefix = prefix_](const std::string& key, SnapshotCache::Parsed& p) {
      check_resource_key(prefix, key, p);
    };
  }
  std::string new_source(const Document& d) const override {
    return resource_key(prefix_, *d.kind, d.ns, d.name);
  }
  std::string text_of(const Document& d) const override { return d.body.dump(); }
  Status write(
      const std::vector<std::pair<std::string, std::optional<std::string>>>& changes) override {
    for (const auto& [key, value] : changes)
      if (value && key.size() + value->size() + 64 > kTxnBytes)
        return make_error("{}: {} bytes, over the {} bytes of a transaction; nothing written", key,
                          value->size(), kTxnBytes);
    std::vector<etcd::Op> batch;
    size_t bytes = 0, done = 0;
    auto flush = [&]() -> Status {
      if (batch.empty()) return {};
      auto r = client_.txn(batch);
      if (!r)
        return r.error().wrap(
            fmt::format("after {} of {} changes were written", done, changes.size()));
      done += batch.size();
      batch.clear();
      bytes = 0;
      return {};
    };
    for (const auto& [key, value] : changes) {
      size_t size = key.size() + (value ? value->size() : 0) + 64;
      if (batch.size() == kTxnOps || bytes + size > kTxnBytes) WEIR_TRY(flush());
      batch.push_back(value ? etcd::Op{etcd::Op::Type::Put, key, *value}
                            : etcd::Op{etcd::Op::Type::Delete, key, ""});
      bytes += size;
    }
    return flush();
  }

 private:
  etcd::Client client_;
  std::string prefix_;
};

// ---------------------------------------------------------------- DirStore

class DirStore : public ResourceStore {
 public:
  explicit DirStore(fs::path dir) : dir_(std::move(dir)) {}

  std::string describe() const override { return "dir:" + dir_.string(); }
  Result<std::map<std::string, std::string>> read_all() override {
    DirDatastore ds(dir_);
    auto files = ds.list_files();
    if (!files) return files.error();
    std::map<std::string, std::string> out;
    for (const auto& p : *files) {
      std::error_code ec;
      if (!fs::is_regular_file(p, ec)) return make_error("{}: not a regular file", p.string());
      if (fs::file_size(p, ec) > model::kMaxFileBytes)
        return make_error("{}: {}", p.string(), model::file_too_large(fs::file_size(p, ec)));
      std::ifstream in(p, std::ios::binary);
      std::ostringstream text;
      text << in.rdbuf();
      if (!in && !in.eof()) return errno_error("reading " + p.string());
      out.emplace(p.filename().string(), text.str());
    }
    return out;
  }
  SnapshotCache::Check check() const override { return nullptr; }
  std::string new_source(const Document& d) const override {
    return d.ns.empty() ? fmt::format("{}_{}.yaml", d.kind->plural, d.name)
                        : fmt::format("{}_{}_{}.yaml", d.kind->plural, d.ns, d.name);
  }
  std::string text_of(const Document& d) const override {
    return "# written by weir apply\n" + model::json_to_yaml(d.body);
  }
  Status write(
      const std::vector<std::pair<std::string, std::optional<std::string>>>& changes) override {
    for (const auto& [name, text] : changes) {
      fs::path p = dir_ / name;
      if (!text) {
        if (::unlink(p.c_str()) != 0 && errno != ENOENT)
          return errno_error("removing " + p.string());
        continue;
      }
      // Written beside, then renamed over: the agent's watcher never reads half a file.
      fs::path tmp = dir_ / ("." + name + ".tmp");
      {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        out << *text;
        out.close();
        if (!out) return errno_error("writing " + tmp.string());
      }
      if (::rename(tmp.c_str(), p.c_str()) != 0) return errno_error("renaming to " + p.string());
    }
    return {};
  }

 private:
  fs::path dir_;
};

}  // namespace

Result<std::unique_ptr<ResourceStore>> open_store(const std::string& spec,
                                                  const DatastoreOptions& o) {
  auto ds = open_datastore(spec, o);  // the same checks of the spec
  if (!ds) return ds.error();
  if (spec.rfind("dir:", 0) == 0)
    return std::unique_ptr<ResourceStore>(std::make_unique<DirStore>(spec.substr(4)));
  WEIR_TRY(check_prefix(o.etcd_prefix));
  auto c = etcd::Client::create(spec.substr(5));
  if (!c) return c.error();
  return std::unique_ptr<ResourceStore>(std::make_unique<EtcdStore>(std::move(*c), o.etcd_prefix));
}

}  // namespace weir::datastore
