#include <fmt/format.h>

#include <filesystem>
#include <system_error>

#include "datastore/datastore.h"
#include "datastore/dir_datastore.h"
#include "datastore/etcd_datastore.h"

namespace weir::datastore {

namespace fs = std::filesystem;

Result<std::unique_ptr<Datastore>> open_datastore(const std::string& spec,
                                                  const DatastoreOptions& o) {
  if (spec.rfind("dir:", 0) == 0) {
    fs::path dir = spec.substr(4);
    if (dir.empty()) return make_error("datastore \"{}\": dir: needs a path (dir:PATH)", spec);
    std::error_code ec;
    auto st = fs::status(dir, ec);
    if (ec) return Error{ec.value(), fmt::format("datastore \"{}\": {}", spec, dir.string())};
    if (!fs::is_directory(st))
      return Error{ENOTDIR,
                   fmt::format("datastore \"{}\": {} is not a directory", spec, dir.string())};
    return std::unique_ptr<Datastore>(std::make_unique<DirDatastore>(dir));
  }
  if (spec.rfind("etcd:", 0) == 0) {
    auto ds = EtcdDatastore::open(spec.substr(5), o.etcd_prefix);
    if (!ds) return ds.error().wrap(fmt::format("datastore \"{}\"", spec));
    return std::unique_ptr<Datastore>(std::move(*ds));
  }
  return make_error(
      "datastore \"{}\": unknown kind of datastore: expected dir:PATH or "
      "etcd:http://HOST:PORT[,http://HOST:PORT...]",
      spec);
}

}  // namespace weir::datastore
