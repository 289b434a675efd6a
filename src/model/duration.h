// Go-style durations ("1s", "500ms", "1m30s", "1.5h", "0"), as DataplaneConfig uses them.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "util/result.h"

namespace weir::model {

// Parses a Go time.ParseDuration string: an optional sign, then one or more
// <decimal number, optionally with a fraction><unit> groups, units ns, us (or µs/μs), ms, s, m, h.
// "0" alone needs no unit. Errors (empty, missing unit, unknown unit, overflow of int64
// nanoseconds) carry a message that quotes the input, e.g. `invalid duration "5": missing unit
// (expected one of ns, us, ms, s, m, h)`.
Result<std::chrono::nanoseconds> parse_duration(std::string_view in);

// Formats like Go's Duration.String(): "1h0m0s", "1m30s", "1.5s", "500ms", "0s".
std::string format_duration(std::chrono::nanoseconds d);

}  // namespace weir::model
