// Whole-file reads and atomic writes (written beside, then renamed over: a reader never sees
// half a file).
#pragma once

#include <string>

#include "util/result.h"

namespace weir {

// The contents of `path`; an Error with errno names it.
Result<std::string> read_file(const std::string& path);

// Writes `data` to `<dir>/.<name>.tmp-<pid>`, then renames it to `<dir>/<name>`; the temporary
// file is removed on failure.
Status write_file_atomic(const std::string& dir, const std::string& name, const std::string& data);

}  // namespace weir
