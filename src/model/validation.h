// Diagnostics produced while parsing and validating resources. Every diagnostic names the
// file, the resource and the field path, so an operator can find and fix the input.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace weir::model {

struct ValidationError {
  std::string file;      // source file name as given to the parser, e.g. "services.yaml"
  std::string resource;  // "Service default/web", "DataplaneConfig default", or, when the
                         // resource has no usable name, "document 3" / "document 3 items[2]"
                         // (document numbers are 1-based)
  std::string field;     // field path, e.g. "spec.ports[1].port"; empty for file-level errors
  std::string message;   // what is wrong, quoting the offending value
  int line = 0;          // 1-based line in the file when known, else 0
  int column = 0;        // 1-based column when known (YAML syntax errors), else 0

  // "file: resource: field: message" (parts that are empty are left out), followed by
  // " (line N)" or " (line N, column C)" when known. Example:
  // "services.yaml: Service default/web: spec.ports[1].port: 70000 is out of range 1..65535 (line
  // 9)".
  std::string str() const;
};

// Warnings use the same shape: something was accepted but ignored or not fully supported
// (an IPv6 clusterIP, an SCTP port, a named targetPort that no slice port resolves...).
using Warning = ValidationError;
using ValidationErrors = std::vector<ValidationError>;

// Input echoed in a diagnostic (a name, a value, a key) is cut to this many bytes, so that a
// 1 MB value does not make a 1 MB log line.
inline constexpr size_t kMaxEchoBytes = 100;

// `s` when it is at most `max` bytes; else its first `max` bytes (cut at a UTF-8 character
// boundary) followed by "…(N bytes)", N being the full size. Every diagnostic that echoes input
// goes through this (or through a helper built on it, such as parse_ctx.h's quote()).
std::string clip(std::string_view s, size_t max = kMaxEchoBytes);

// Joins diagnostics into one Error: "N errors:\n  <str()>\n  <str()>..." (or the single str()
// when there is one). Used to turn a rejected load into a Result error.
Error to_error(const ValidationErrors& errors);

}  // namespace weir::model
