#include "calc/tracelog.h"

#include <cctype>

namespace weir::calc {
namespace {

std::string_view trim_left(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  return s;
}

// "<name>---E: " at the start of `msg`: fills iface and dir, returns the length of the tag with
// its ": ", or 0.
size_t parse_tag(std::string_view msg, TraceLine& out) {
  const size_t dashes = msg.find("---");
  if (dashes == 0 || dashes == std::string_view::npos || dashes > 31) return 0;
  const size_t letter = dashes + 3;
  if (msg.size() < letter + 3 || msg.substr(letter + 1, 2) != ": ") return 0;
  const char d = msg[letter];
  if (d != 'E' && d != 'I' && d != 'X') return 0;
  for (char c : msg.substr(0, dashes)) {
    if (std::isspace(static_cast<unsigned char>(c)) || c == ':') return 0;
  }
  out.iface = std::string(msg.substr(0, dashes));
  out.dir = d;
  return letter + 3;
}

}  // namespace

std::optional<TraceLine> parse_trace_line(std::string_view line) {
  TraceLine out;
  line = trim_left(line);
  if (line.empty() || line.front() == '#') return std::nullopt;
  // "<task>-<pid> [003] ..." : the task name may hold spaces and dashes; the CPU is the first
  // "[digits]" after it.
  const size_t bracket = line.find(" [");
  if (bracket == std::string_view::npos) return std::nullopt;
  std::string_view task = line.substr(0, bracket);
  while (!task.empty() && task.back() == ' ') task.remove_suffix(1);
  out.task = std::string(task);
  const size_t close = line.find(']', bracket);
  if (close == std::string_view::npos || close == bracket + 2) return std::nullopt;
  int cpu = 0;
  for (char c : line.substr(bracket + 2, close - bracket - 2)) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    cpu = cpu * 10 + (c - '0');
  }
  out.cpu = cpu;
  // " <flags> <seconds>: <event>: <message>"
  std::string_view rest = trim_left(line.substr(close + 1));
  const size_t flags_end = rest.find(' ');
  if (flags_end == std::string_view::npos) return std::nullopt;
  rest = trim_left(rest.substr(flags_end));
  const size_t colon = rest.find(": ");
  if (colon == std::string_view::npos) return std::nullopt;
  out.time = std::string(rest.substr(0, colon));
  if (out.time.empty() || !std::isdigit(static_cast<unsigned char>(out.time.front()))) return std::nullopt;
  rest = rest.substr(colon + 2);
  for (std::string_view event : {std::string_view("bpf_trace_printk: "), std::string_view("0: ")}) {
    if (rest.substr(0, event.size()) == event) {
      rest.remove_prefix(event.size());
      break;
    }
  }
  const size_t tag = parse_tag(rest, out);
  if (tag == 0) return std::nullopt;
  out.message = std::string(rest.substr(tag));
  return out;
}

}  // namespace weir::calc
