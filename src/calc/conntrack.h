// Pure decisions for the userspace conntrack scanner: when an entry has expired, and whether a
// NAT flow still points at a backend of its frontend. The scanner (dataplane/) iterates the map
// and applies these; nothing here touches the kernel.
//
// Works on the shared types of bpf/include/weir/conntrack.h (network-order fields) and converts
// to host order internally. Leg flag bits are the WEIR_CT_LEG_* of that header.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <set>
#include <unordered_map>
#include <string_view>
#include <utility>
#include <vector>

#include "calc/calc.h"
#include "model/resources.h"
#include "weir/conntrack.h"

namespace weir::calc {

// The state a conntrack entry is in, for timeout purposes. The TCP states are those of
// weir_ct_tcp_state() in bpf/include/weir/conntrack.h (the one definition the datapath and the
// CLI use too), in the same order.
enum class CtState {
  TcpSynSent,      // SYN on one leg only, or a single leg seen
  TcpSynRecv,      // SYN on both legs, the initiator's final ACK not seen
  TcpEstablished,  // SYN and ACK on both legs; or no SYN but ACKs on both (picked up mid-stream)
  TcpFinWait,      // a FIN on one leg (and no RST)
  TcpClosed,       // a FIN on both legs (and no RST)
  TcpReset,        // a RST on either leg (takes precedence over FIN)
  Udp,
  Icmp,
  Other,  // any other IP protocol
};

// "SYN-SENT", "SYN-RECV", "ESTABLISHED", "FIN-WAIT", "CLOSED", "RESET" (the CLI's state column),
// "UDP", "ICMP", "OTHER".
std::string_view to_string(CtState s);

// State from the IP protocol number and the two legs' WEIR_CT_LEG_* flags; TCP per
// weir_ct_tcp_state().
CtState ct_state(uint8_t proto, uint32_t leg_a_flags, uint32_t leg_b_flags);

// The timeout of a state: SYN-SENT and SYN-RECV tcpSynSent, FIN-WAIT and CLOSED tcpFin.
std::chrono::nanoseconds ct_timeout(CtState s, const model::ConntrackTimeouts& t);

// now - last_seen in ns, or 0 when last_seen is in the future (clock read earlier than the
// packet that updated the entry).
uint64_t ct_age_ns(uint64_t now_ns, uint64_t last_seen_ns);

// True when an entry of this protocol/flags idle for age_ns must be removed: age_ns is strictly
// greater than the state's timeout (an entry exactly at its timeout is kept).
bool ct_expired(uint8_t proto, uint32_t leg_a_flags, uint32_t leg_b_flags, uint64_t age_ns,
                const model::ConntrackTimeouts& t);

// Which backends each frontend currently has: built from calc output.
class BackendIndex {
 public:
  BackendIndex() = default;
  explicit BackendIndex(const std::vector<Frontend>& frontends);
  // Follows a change of the frontends (calc::update_service_frontends()).
  void update(const std::vector<Frontend>& added_or_updated, const std::vector<FrontendKey>& removed);
  // True when the index holds a backend of fe.key that `fe` does not have (flows to it are
  // stale once `fe` is applied); false for a frontend the index does not hold.
  bool loses_backends(const Frontend& fe) const;
  // True when the frontend exists.
  bool has_frontend(const FrontendKey& fe) const;
  // True when `be` is currently a backend of frontend `fe`.
  bool contains(const FrontendKey& fe, const Backend& be) const;
  size_t size() const { return pairs_; }

 private:
  // Integers, not structs in ordered sets: the scanner asks once per NAT entry.
  static uint64_t pack(const FrontendKey& k) {  // vip << 24 | port << 8 | proto
    return uint64_t(k.vip.value) << 24 | uint64_t(k.port) << 8 | k.proto;
  }
  static uint64_t pack(const Backend& b) { return uint64_t(b.ip.value) << 16 | b.port; }
  void set(const Frontend& fe);
  std::unordered_map<uint64_t, std::vector<uint64_t>> backends_;  // frontend -> sorted backends
  size_t pairs_ = 0;
};

// A NAT flow as seen from one of its two conntrack entries, host order.
struct CtNatFlow {
  FrontendKey frontend;  // (VIP, service port, proto)
  Backend backend;       // (backend IP, backend port)
  Ipv4 client;
  uint16_t client_port = 0;

  auto operator<=>(const CtNatFlow&) const = default;
};

// Decodes a NAT_FWD or NAT_REV entry (nullopt for NORMAL or unknown types). Requires
// WEIR_CT_F_A_IS_CLIENT to say, in both entries of a pair, whether side A of the key is the
// client: FWD key = (client, VIP), nat = backend; REV key = (client, backend), nat = VIP.
std::optional<CtNatFlow> ct_nat_flow(const weir_ct_key& key, const weir_ct_val& val);

// True when the flow's backend is still a backend of the flow's frontend. A flow whose
// frontend is gone is invalid as well.
bool ct_backend_valid(const BackendIndex& index, const CtNatFlow& flow);

// A normalised key (see conntrack.h): the lower (addr, port) pair, comparing the raw
// network-order values, becomes side A. Arguments are host order; the key is network order.
// Returns whether the (a, a_port) pair ended up as side A in *a_is_first when non-null.
weir_ct_key ct_make_key(Ipv4 a, uint16_t a_port, Ipv4 b, uint16_t b_port, uint8_t proto,
                        bool* a_is_first = nullptr);

// The key of the other entry of a NAT pair: for FWD, the REV key (client, backend); for REV,
// the FWD key (client, VIP). nullopt for non-NAT entries.
std::optional<weir_ct_key> ct_partner_key(const weir_ct_key& key, const weir_ct_val& val);

enum class CtVerdict {
  Keep,
  Expired,       // idle longer than its state's timeout
  StaleBackend,  // NAT flow whose backend is no longer a backend of its frontend
};

// "keep", "expired", "stale-backend".
std::string_view to_string(CtVerdict v);

// The whole decision for one entry. last_seen_ns is the latest last_seen of the entry and, for a
// NAT pair, of its partner (a pair is alive while either half is). backends may be null to skip
// the backend check (e.g. before the first successful calc).
CtVerdict ct_decide(const weir_ct_key& key, const weir_ct_val& val, uint64_t last_seen_ns,
                    uint64_t now_ns, const model::ConntrackTimeouts& timeouts,
                    const BackendIndex* backends);

}  // namespace weir::calc
