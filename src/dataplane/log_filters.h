// What the BPF debug log logs, and where (DataplaneConfig bpfLogLevel and bpfLogFilters,
// docs/bpf-log.md): weir_logif1's entries (entry 0 for every interface without one of its own)
// and the pcap filter programs in weir_logjmp1 (bpf/include/weir/log.h).
//
//   LogFilters log(progs, [](const std::string& name) { return if_nametoindex(name.c_str()); });
//   WEIR_TRY(log.apply({WEIR_LOG_DEBUG, {{"all", "tcp port 80"}, {"weir1a2b", "icmp"}}}));
//
// An interface named by a filter logs only what its filter matches; "all" is the filter of every
// interface without one of its own; an interface without either logs every packet (as Calico's
// bpfLogFilters). A filter is compiled once per distinct expression and shared by the
// interfaces that name it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "dataplane/programs.h"
#include "util/fd.h"
#include "util/result.h"
#include "weir/log.h"

namespace weir::dataplane {

inline constexpr const char* kLogFilterAll = "all";

struct LogSettings {
  uint32_t level = WEIR_LOG_OFF;               // enum weir_log_level
  std::map<std::string, std::string> filters;  // interface name or "all" -> pcap expression
  friend bool operator==(const LogSettings&, const LogSettings&) = default;
};

class LogFilters {
 public:
  // `resolve`: the ifindex of an interface of this node by name, 0 when there is none.
  LogFilters(TcPrograms& progs, std::function<uint32_t(const std::string&)> resolve);

  // Puts `s` in place. The filters that are new are compiled and loaded first: when one fails
  // (an expression libpcap refuses, a construct weir cannot translate, the verifier), nothing is
  // written and the error names the interface and the expression. Then their slots, then the
  // interfaces' entries (an interface not on this node gets none: names are resolved again at
  // every call, so it gets one once it exists), then the entries and filters no longer wanted
  // go. Level Off: entry 0 says Off, nothing else remains. The first call also removes what a
  // previous agent left in both maps.
  Status apply(const LogSettings& s);

  // Slot of each loaded filter expression (for the tests and the status).
  std::map<std::string, uint32_t> slots() const;

 private:
  struct Loaded {
    uint32_t slot = 0;
    Fd prog;
  };
  Status clean_start();

  TcPrograms& progs_;
  std::function<uint32_t(const std::string&)> resolve_;
  std::map<std::string, Loaded> loaded_;       // expression -> its program and slot
  std::map<uint32_t, weir_log_if_val> written_;  // weir_logif1 as this object wrote it
  bool started_ = false;
};

}  // namespace weir::dataplane
