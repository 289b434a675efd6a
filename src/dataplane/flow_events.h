// Flow records from the kernel (docs/observe.md): the datapath's ring buffer of new flows and
// drops (weir_flows1, weir/flow.h), its rate limit (weir_flowcfg1) and counts (weir_flowst1),
// and the conversion of those events and of the conntrack scanner's removals into model::Flow.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "maps/map_table.h"
#include "model/flow.h"
#include "util/fd.h"
#include "util/result.h"
#include "weir/conntrack.h"
#include "weir/flow.h"

namespace weir::dataplane {

// What the agent asks the programs for: events per second and CPU (0: none at all) and the
// burst (events a CPU may send at once after a quiet period; at least 1).
struct FlowEventSettings {
  uint32_t rate_per_cpu = 0;
  uint32_t burst = 0;
};
// weir_flowcfg1's value for `s`: every kind of event (starts, drops, replaced flows' ends),
// interval 1e9 / rate ns, bucket depth (burst - 1) intervals. All zero when the rate is 0.
weir_flow_cfg flow_cfg_of(const FlowEventSettings& s);

// A flow's conntrack entries as the scanner removed them, or as they were when a new SYN on a
// finished flow's 5-tuple replaced them (WEIR_FLOW_EV_END): the entry (for a NAT flow, either
// half; the datapath sends the FWD half) and, when it still existed, the other half of its pair.
struct CtRemoved {
  weir_ct_key key{};
  weir_ct_val val{};
  std::optional<weir_ct_val> twin;
  bool stale_backend = false;  // removed because its backend left the service, not for idleness
};

// The ring buffer's reader (one consumer: the agent) and the two small maps beside it.
class FlowEventReader {
 public:
  using Sink = std::function<void(const weir_flow_event&)>;
  // The end of a flow a new SYN replaced (WEIR_FLOW_EV_END): its entries as they were.
  using EndSink = std::function<void(const CtRemoved&)>;

  // Over the maps of a loaded object (fds borrowed for the call: duplicated).
  static Result<FlowEventReader> open(const maps::MapFds& fds);
  FlowEventReader(FlowEventReader&&) noexcept;
  FlowEventReader& operator=(FlowEventReader&&) noexcept;
  ~FlowEventReader();

  // Readable (POLLIN) when events wait: libbpf's epoll fd over the ring buffer.
  int fd() const;
  // Hands every event there now to `sink` (a replaced flow's end to `ends`, or nowhere when it
  // is empty), oldest first; returns how many.
  Result<size_t> drain(const Sink& sink, const EndSink& ends = {});
  // Writes weir_flowcfg1.
  Status configure(const FlowEventSettings& s);
  // weir_flowst1 summed over CPUs (sent, rate_limited, lost; tat_ns is meaningless summed).
  Result<weir_flow_stats> stats() const;

 private:
  struct State;
  explicit FlowEventReader(std::unique_ptr<State> s);
  std::unique_ptr<State> s_;
};

// The event as a Flow: times on the wall clock (`unix_minus_monotonic_ns`: CLOCK_REALTIME -
// CLOCK_MONOTONIC now), addresses and ports in host order, the verdict and drop reason (the
// counter's name) from its outcome, direction from its hook. Names are for calc::FlowNamer, the
// interface and policy for the caller.
model::Flow flow_from_event(const weir_flow_event& ev, int64_t unix_minus_monotonic_ns);

// The end of a removed flow: client and server (a NAT flow: the VIP as destination, the backend as
// translated), each way's packets and bytes summed over the pair, its duration (creation to last
// packet), and why it ended: "rst" (a reset), "fin" (both sides closed), "backend removed",
// else "idle timeout".
model::Flow flow_end_of(const CtRemoved& r, int64_t unix_minus_monotonic_ns);

// CLOCK_REALTIME - CLOCK_MONOTONIC, in ns.
int64_t unix_minus_monotonic_ns();

}  // namespace weir::dataplane
