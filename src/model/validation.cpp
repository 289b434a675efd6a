#include "model/validation.h"

#include <fmt/format.h>

namespace weir::model {

std::string clip(std::string_view s, size_t max) {
  if (s.size() <= max) return std::string(s);
  size_t cut = max;
  // Do not split a UTF-8 sequence: back up over continuation bytes (10xxxxxx).
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xc0) == 0x80) --cut;
  return fmt::format("{}\xe2\x80\xa6({} bytes)", s.substr(0, cut), s.size());  // U+2026 …
}

std::string ValidationError::str() const {
  std::string out;
  auto add = [&](const std::string& part) {
    if (part.empty()) return;
    if (!out.empty()) out += ": ";
    out += part;
  };
  add(file);
  add(resource);
  add(field);
  add(message);
  if (line > 0 && column > 0)
    out += fmt::format(" (line {}, column {})", line, column);
  else if (line > 0)
    out += fmt::format(" (line {})", line);
  return out;
}

Error to_error(const ValidationErrors& errors) {
  if (errors.empty()) return Error{0, "no errors"};
  if (errors.size() == 1) return Error{0, errors.front().str()};
  std::string msg = fmt::format("{} errors:", errors.size());
  for (const auto& e : errors) msg += "\n  " + e.str();
  return Error{0, msg};
}

}  // namespace weir::model
