// The BPF debug log as the tests read it: weir's lines of the kernel trace buffer for one
// interface tag (docs/bpf-log.md).
#pragma once

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "bpf/tracefs.h"
#include "calc/tracelog.h"

namespace weir::test {

// The weir lines of the trace buffer whose interface is `iface`, in order.
inline std::vector<calc::TraceLine> trace_of(const std::string& iface) {
  std::vector<calc::TraceLine> out;
  auto text = bpf::read_trace();
  EXPECT_TRUE(text.ok()) << text.error().str();
  if (!text.ok()) return out;
  std::istringstream in(*text);
  for (std::string line; std::getline(in, line);) {
    auto t = calc::parse_trace_line(line);
    if (t && t->iface == iface) out.push_back(*t);
  }
  return out;
}

// "E: <message>" per line, for failure messages.
inline std::string messages(const std::vector<calc::TraceLine>& lines) {
  std::string s;
  for (const auto& l : lines) s += std::string(1, l.dir) + ": " + l.message + "\n";
  return s;
}

// Whether `want` appear in `lines` in this order (other lines may come between).
inline bool in_order(const std::vector<calc::TraceLine>& lines, const std::vector<std::string>& want) {
  size_t at = 0;
  for (const auto& w : want) {
    while (at < lines.size() && lines[at].message != w) at++;
    if (at == lines.size()) return false;
    at++;
  }
  return true;
}

}  // namespace weir::test
