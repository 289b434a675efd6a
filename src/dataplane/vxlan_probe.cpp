#include "dataplane/vxlan_probe.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <map>

#include <fmt/format.h>

#include "util/fd.h"
#include "weir/tunnel.h"

namespace weir::dataplane {
namespace {

// What follows the UDP header: the VXLAN header, the inner Ethernet header, the probe.
constexpr size_t kInnerEth = 14;
constexpr size_t kProbeLen = WEIR_VXLAN_HLEN + kInnerEth + sizeof(weir_vxlan_probe);

std::array<uint8_t, kProbeLen> request(uint32_t vni, uint32_t nonce) {
  std::array<uint8_t, kProbeLen> b{};
  b[0] = WEIR_VXLAN_F_VNI;
  b[4] = static_cast<uint8_t>(vni >> 16);
  b[5] = static_cast<uint8_t>(vni >> 8);
  b[6] = static_cast<uint8_t>(vni);
  // Inner Ethernet: no addresses (nobody forwards it), the probe's ethertype.
  b[WEIR_VXLAN_HLEN + 12] = WEIR_VXLAN_PROBE_ETHERTYPE >> 8;
  b[WEIR_VXLAN_HLEN + 13] = WEIR_VXLAN_PROBE_ETHERTYPE & 0xff;
  weir_vxlan_probe p{};
  p.magic_kind = WEIR_VXLAN_PROBE_MAGIC | static_cast<uint64_t>(WEIR_VXLAN_PROBE_REQUEST) << 56;
  p.nonce = nonce;
  std::memcpy(b.data() + WEIR_VXLAN_HLEN + kInnerEth, &p, sizeof(p));
  return b;
}

}  // namespace

Result<std::vector<VxlanProbeResult>> probe_vxlan_peers(const VxlanProbeTarget& t, std::chrono::milliseconds timeout) {
  using Clock = std::chrono::steady_clock;
  std::vector<VxlanProbeResult> out;
  if (t.peers.empty()) return out;
  Fd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!s) return errno_error("VXLAN probe: socket");
  sockaddr_in local{};
  local.sin_family = AF_INET;
  local.sin_addr.s_addr = t.local;
  if (::bind(s.get(), reinterpret_cast<const sockaddr*>(&local), sizeof(local)) != 0) {
    char a[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &t.local, a, sizeof(a));
    return errno_error(fmt::format("VXLAN probe: binding to this node's underlay address {}", a));
  }
  std::map<uint32_t, size_t> by_peer;  // peer -> index in out
  std::vector<uint32_t> nonces(t.peers.size());
  if (::getrandom(nonces.data(), nonces.size() * sizeof(uint32_t), 0) < 0) return errno_error("VXLAN probe: getrandom");
  const auto start = Clock::now();
  for (size_t i = 0; i < t.peers.size(); i++) {
    out.push_back(VxlanProbeResult{t.peers[i], false, 0});
    by_peer[t.peers[i]] = i;
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = t.port;
    to.sin_addr.s_addr = t.peers[i];
    const auto req = request(t.vni, nonces[i]);
    // A send that fails (no route, say) leaves the peer unanswered: the check names it.
    (void)::sendto(s.get(), req.data(), req.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof(to));
  }
  size_t pending = t.peers.size();
  while (pending > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(start + timeout - Clock::now());
    if (left.count() <= 0) break;
    pollfd p{s.get(), POLLIN, 0};
    const int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("VXLAN probe: poll");
    if (n == 0) break;
    for (;;) {
      std::array<uint8_t, 256> buf{};
      sockaddr_in from{};
      socklen_t len = sizeof(from);
      const ssize_t got = ::recvfrom(s.get(), buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &len);
      if (got < 0) break;  // EAGAIN: drained (an ICMP error surfaces here too: ignored)
      auto it = by_peer.find(from.sin_addr.s_addr);
      if (it == by_peer.end() || from.sin_port != t.port || static_cast<size_t>(got) < kProbeLen) continue;
      weir_vxlan_probe p{};
      std::memcpy(&p, buf.data() + WEIR_VXLAN_HLEN + kInnerEth, sizeof(p));
      VxlanProbeResult& r = out[it->second];
      if (r.answered || p.nonce != nonces[it->second] ||
          p.magic_kind != (WEIR_VXLAN_PROBE_MAGIC | static_cast<uint64_t>(WEIR_VXLAN_PROBE_REPLY) << 56))
        continue;
      r.answered = true;
      r.rtt_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
      pending--;
    }
  }
  return out;
}

}  // namespace weir::dataplane
