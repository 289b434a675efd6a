// `weir apply`, `weir get`, `weir delete`: resources in either datastore (docs/cli.md), validated
// on this side before anything is written (datastore/store.h).
#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <sstream>

#include "cli/commands.h"
#include "datastore/dir_datastore.h"
#include "datastore/store.h"
#include "model/parse.h"
#include "model/yaml_json.h"
#include "polprog/log_filter.h"

namespace weir::cli {

namespace {

namespace fs = std::filesystem;
using datastore::Document;

// --datastore (else $WEIR_DATASTORE) and --etcd-prefix, shared by the three commands.
struct StoreOptions {
  std::string spec;
  std::string etcd_prefix = "/weir/";

  void add_to(CLI::App* sub) {
    sub->add_option("--datastore", spec,
                    "dir:PATH or etcd:http://HOST:PORT[,...] (default: $WEIR_DATASTORE)");
    sub->add_option("--etcd-prefix", etcd_prefix, "the key prefix of the resources in etcd")
        ->capture_default_str();
  }
  Result<std::unique_ptr<datastore::ResourceStore>> open() const {
    std::string s = spec;
    if (s.empty()) {
      const char* env = std::getenv("WEIR_DATASTORE");
      if (!env || !*env)
        return make_error(
            "no datastore: give --datastore dir:PATH|etcd:URL, or set WEIR_DATASTORE");
      s = env;
    }
    return datastore::open_store(s, {etcd_prefix});
  }
};

int fail(std::string_view cmd, const Error& e) {
  fmt::print(stderr, "weir {}: {}\n", cmd, e.str());
  return 1;
}

Result<std::string> read_input(const fs::path& p) {
  std::error_code ec;
  if (p == "-") {
    std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    if (text.size() > model::kMaxFileBytes)
      return make_error("stdin: {}", model::file_too_large(text.size()));
    return text;
  }
  auto size = fs::file_size(p, ec);
  if (ec) return Error{ec.value(), p.string()};
  if (size > model::kMaxFileBytes)
    return make_error("{}: {}", p.string(), model::file_too_large(size));
  std::ifstream in(p, std::ios::binary);
  if (!in) return errno_error("opening " + p.string());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// -f arguments: files, directories (their resource files, sorted, not recursive) or "-".
Result<std::vector<model::SourceText>> read_inputs(const std::vector<std::string>& args) {
  std::vector<model::SourceText> out;
  for (const auto& a : args) {
    std::error_code ec;
    if (a != "-" && fs::is_directory(a, ec)) {
      auto files = datastore::DirDatastore(a).list_files();
      if (!files) return files.error();
      for (const auto& f : *files) {
        auto t = read_input(f);
        if (!t) return t.error();
        out.push_back({f.string(), std::move(*t)});
      }
      continue;
    }
    auto t = read_input(a);
    if (!t) return t.error();
    out.push_back({a == "-" ? "stdin" : a, std::move(*t)});
  }
  return out;
}

// The check of a DataplaneConfig the datastore layer cannot make (it is pure, and the pcap
// compiler is libpcap): every bpfLogFilters expression compiles and translates to eBPF, as the
// agent will need it to (docs/bpf-log.md). Parse errors are left to apply_resources.
Status check_log_filters(const std::vector<model::SourceText>& inputs) {
  std::vector<std::string> bad;
  for (const auto& in : inputs) {
    model::Snapshot snap;
    model::ValidationErrors errors;
    model::parse_text(in, snap, errors);
    if (!snap.config) continue;
    for (const auto& [iface, expr] : snap.config->bpf_log_filters) {
      if (auto p = polprog::log_filter_program(expr); !p)
        bad.push_back(fmt::format("{}: DataplaneConfig {}: spec.bpfLogFilters[\"{}\"]: {}", snap.config->source.str(),
                                  snap.config->meta.name, iface, p.error().str()));
    }
  }
  if (bad.empty()) return {};
  std::string msg = "nothing applied:";
  for (const auto& b : bad) msg += "\n  " + b;
  return Error{EINVAL, msg};
}

void add_apply(CLI::App& app, int& rc) {
  auto* sub = app.add_subcommand("apply", "create or update resources in the datastore");
  auto files = std::make_shared<std::vector<std::string>>();
  auto so = std::make_shared<StoreOptions>();
  sub->add_option("-f,--filename", *files, "a YAML/JSON file, a directory of them, or - (stdin)")
      ->required();
  so->add_to(sub);
  sub->callback([files, so, &rc] {
    auto store = so->open();
    if (!store) return void(rc = fail("apply", store.error()));
    auto inputs = read_inputs(*files);
    if (!inputs) return void(rc = fail("apply", inputs.error()));
    if (auto st = check_log_filters(*inputs); !st) return void(rc = fail("apply", st.error()));
    auto lines = datastore::apply_resources(**store, *inputs);
    if (!lines) return void(rc = fail("apply", lines.error()));
    for (const auto& l : *lines) fmt::print("{}\n", l);
    rc = 0;
  });
}

void add_delete(CLI::App& app, int& rc) {
  auto* sub = app.add_subcommand("delete", "delete resources from the datastore");
  auto files = std::make_shared<std::vector<std::string>>();
  auto args = std::make_shared<std::vector<std::string>>();
  auto ns = std::make_shared<std::string>();
  auto so = std::make_shared<StoreOptions>();
  sub->add_option("-f,--filename", *files, "delete the resources of these files (or -)");
  sub->add_option("kind_name", *args, "KIND NAME [NAME...] (instead of -f)");
  sub->add_option("-n,--namespace", *ns, "the namespace of NAME (default: default)");
  so->add_to(sub);
  sub->callback([files, args, ns, so, &rc] {
    std::vector<datastore::ResourceRef> refs;
    if (!files->empty() && !args->empty())
      return void(rc = fail("delete", make_error("give -f FILE or KIND NAME, not both")));
    if (!files->empty()) {
      auto inputs = read_inputs(*files);
      if (!inputs) return void(rc = fail("delete", inputs.error()));
      auto r = datastore::refs_of(*inputs);
      if (!r) return void(rc = fail("delete", r.error()));
      refs = std::move(*r);
    } else {
      if (args->size() < 2)
        return void(rc = fail("delete", make_error("give -f FILE, or KIND NAME [NAME...]")));
      const auto* kind = datastore::find_kind(args->front());
      if (!kind)
        return void(
            rc = fail("delete", make_error("unknown kind \"{}\"", model::clip(args->front()))));
      for (size_t i = 1; i < args->size(); ++i)
        refs.push_back({kind, kind->namespaced ? (ns->empty() ? "default" : *ns) : "", (*args)[i]});
    }
    auto store = so->open();
    if (!store) return void(rc = fail("delete", store.error()));
    auto lines = datastore::delete_resources(**store, refs);
    if (!lines) return void(rc = fail("delete", lines.error()));
    for (const auto& l : *lines) fmt::print("{}\n", l);
    rc = 0;
  });
}

// A column of `get`'s table for some kinds.
std::string summary(const Document& d) {
  const auto& spec = d.body.contains("spec") ? d.body["spec"] : nlohmann::json::object();
  auto str = [&](const char* f) {
    return spec.contains(f) && spec[f].is_string() ? spec[f].get<std::string>() : std::string("-");
  };
  if (d.kind->kind == "Service") {
    std::string ports;
    if (spec.contains("ports") && spec["ports"].is_array())
      for (const auto& p : spec["ports"])
        ports += fmt::format("{}{}/{}", ports.empty() ? "" : ",", p.value("port", 0),
                             p.value("protocol", "TCP"));
    return fmt::format("{:<16} {}", str("clusterIP"), ports.empty() ? "-" : ports);
  }
  if (d.kind->kind == "Node")
    return fmt::format("{:<16} {}", str("underlayAddress"), str("podCIDR"));
  return "";
}

void add_get(CLI::App& app, int& rc) {
  auto* sub = app.add_subcommand("get", "show resources of the datastore");
  auto kind = std::make_shared<std::string>();
  auto name = std::make_shared<std::string>();
  auto ns = std::make_shared<std::string>();
  auto output = std::make_shared<std::string>();
  auto so = std::make_shared<StoreOptions>();
  sub->add_option("kind", *kind, "services, endpointslices, workloadendpoints, nodes, ...")
      ->required();
  sub->add_option("name", *name, "one resource (default: all)");
  sub->add_option("-n,--namespace", *ns, "only this namespace (default: every namespace)");
  sub->add_option("-o,--output", *output, "yaml or json (default: a table)")
      ->check(CLI::IsMember({"yaml", "json"}));
  so->add_to(sub);
  sub->callback([=, &rc] {
    const auto* k = datastore::find_kind(*kind);
    if (!k) {
      std::string all;
      for (const auto& i : datastore::kinds())
        all += (all.empty() ? "" : ", ") + std::string(i.plural);
      return void(
          rc = fail("get", make_error("unknown kind \"{}\": one of {}", model::clip(*kind), all)));
    }
    auto store = so->open();
    if (!store) return void(rc = fail("get", store.error()));
    auto docs = datastore::get_resources(**store, *k, *ns, *name);
    if (!docs) return void(rc = fail("get", docs.error()));
    if (*output == "yaml") {
      for (size_t i = 0; i < docs->size(); ++i)
        fmt::print("{}{}", i ? "---\n" : "", model::json_to_yaml((*docs)[i].body));
    } else if (*output == "json") {
      if (!name->empty() && docs->size() == 1) {
        fmt::print("{}\n", docs->front().body.dump(2));
      } else {
        nlohmann::json list = {
            {"apiVersion", "v1"}, {"kind", "List"}, {"items", nlohmann::json::array()}};
        for (const auto& d : *docs) list["items"].push_back(d.body);
        fmt::print("{}\n", list.dump(2));
      }
    } else {
      std::string extra = k->kind == "Service" ? fmt::format("{:<16} {}", "CLUSTER-IP", "PORTS")
                          : k->kind == "Node"  ? fmt::format("{:<16} {}", "UNDERLAY", "POD-CIDR")
                                               : "";
      if (k->namespaced)
        fmt::print("{:<20} {:<32} {}\n", "NAMESPACE", "NAME", extra);
      else
        fmt::print("{:<32} {}\n", "NAME", extra);
      for (const auto& d : *docs) {
        if (k->namespaced)
          fmt::print("{:<20} {:<32} {}\n", d.ns, d.name, summary(d));
        else
          fmt::print("{:<32} {}\n", d.name, summary(d));
      }
    }
    rc = 0;
  });
}

}  // namespace

void add_resource_commands(CLI::App& app, int& rc) {
  add_apply(app, rc);
  add_get(app, rc);
  add_delete(app, rc);
}

}  // namespace weir::cli
