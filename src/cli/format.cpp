#include "cli/format.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <climits>
#include <cstring>
#include <ctime>
#include <map>
#include <regex>
#include <tuple>

#include <fmt/format.h>

#include "maps/decode.h"

namespace weir::cli {

using maps::format_ip;
using maps::format_ip_port;
using maps::port_host;

// ------------------------------------------------------------------ generic helpers

namespace {
// Go's fmtFrac: ".frac" of v / 10^prec without trailing zeros (nothing when the fraction is 0).
std::string frac(uint64_t& v, int prec) {
  std::string digits;
  bool print = false;
  for (int i = 0; i < prec; i++) {
    int d = static_cast<int>(v % 10);
    print = print || d != 0;
    if (print) digits.insert(digits.begin(), static_cast<char>('0' + d));
    v /= 10;
  }
  return print ? "." + digits : "";
}
}  // namespace

std::string go_duration(int64_t ns) {
  bool neg = ns < 0;
  uint64_t u = neg ? static_cast<uint64_t>(-(ns + 1)) + 1 : static_cast<uint64_t>(ns);
  std::string out;
  if (u < 1000000000ull) {
    if (u == 0) return "0s";
    int prec;
    std::string unit;
    if (u < 1000ull) {
      prec = 0;
      unit = "ns";
    } else if (u < 1000000ull) {
      prec = 3;
      unit = "\xc2\xb5s";  // µs, as Go prints it
    } else {
      prec = 6;
      unit = "ms";
    }
    std::string f = frac(u, prec);
    out = std::to_string(u) + f + unit;
  } else {
    std::string f = frac(u, 9);  // u is now whole seconds
    out = std::to_string(u % 60) + f + "s";
    u /= 60;
    if (u > 0) {
      out = std::to_string(u % 60) + "m" + out;
      u /= 60;
      if (u > 0) out = std::to_string(u) + "h" + out;
    }
  }
  return neg ? "-" + out : out;
}

namespace {
// Display width: count UTF-8 code points (our texts are ASCII plus the odd µ).
size_t width(const std::string& s) {
  size_t w = 0;
  for (unsigned char c : s)
    if ((c & 0xc0) != 0x80) w++;
  return w;
}
}  // namespace

std::vector<std::string> wrap_text(const std::string& text, size_t limit) {
  std::vector<std::string> words;
  size_t i = 0;
  while (i < text.size()) {
    size_t j = text.find(' ', i);
    if (j == std::string::npos) j = text.size();
    if (j > i) words.push_back(text.substr(i, j - i));
    i = j + 1;
  }
  if (words.empty()) return {""};
  size_t lim = limit;
  for (const auto& w : words) lim = std::max(lim, width(w));
  const size_t n = words.size();
  // length[i][j]: width of words i..j joined by single spaces.
  std::vector<std::vector<long long>> length(n, std::vector<long long>(n, 0));
  for (size_t a = 0; a < n; a++) {
    length[a][a] = static_cast<long long>(width(words[a]));
    for (size_t b = a + 1; b < n; b++) length[a][b] = length[a][b - 1] + 1 + static_cast<long long>(width(words[b]));
  }
  // Minimum raggedness (tablewriter's WrapWords): the last line is free, every other line
  // costs (lim - len)^2, an over-long line a further penalty.
  constexpr long long kPenalty = 100000;
  std::vector<long long> cost(n, LLONG_MAX);
  std::vector<size_t> brk(n, n);
  for (size_t a = n; a-- > 0;) {
    if (length[a][n - 1] <= static_cast<long long>(lim)) {
      cost[a] = 0;
      brk[a] = n;
      continue;
    }
    for (size_t b = a + 1; b < n; b++) {
      long long d = static_cast<long long>(lim) - length[a][b - 1];
      long long c = d * d + cost[b];
      if (length[a][b - 1] > static_cast<long long>(lim)) c += kPenalty;
      if (c < cost[a]) {
        cost[a] = c;
        brk[a] = b;
      }
    }
  }
  std::vector<std::string> lines;
  for (size_t a = 0; a < n;) {
    std::string line;
    for (size_t b = a; b < brk[a]; b++) {
      if (b > a) line += ' ';
      line += words[b];
    }
    lines.push_back(line);
    a = brk[a];
  }
  return lines;
}

namespace {
bool is_number(const std::string& s) {
  static const std::regex re(R"(^-?\d+\.?\d*$)");
  return std::regex_match(s, re);
}
std::string pad_right(const std::string& s, size_t w) { return s + std::string(w > width(s) ? w - width(s) : 0, ' '); }
std::string pad_left(const std::string& s, size_t w) { return std::string(w > width(s) ? w - width(s) : 0, ' ') + s; }
std::string pad_center(const std::string& s, size_t w) {
  size_t gap = w > width(s) ? w - width(s) : 0;
  size_t left = gap / 2;
  return std::string(left, ' ') + s + std::string(gap - left, ' ');
}

// Lines of a cell and the width it asks for (tablewriter's parseDimension).
std::pair<std::vector<std::string>, size_t> cell_lines(const std::string& s, size_t wrap) {
  size_t raw = width(s);
  size_t w = std::min(raw, wrap);
  auto lines = raw > wrap ? wrap_text(s, w) : std::vector<std::string>{s};
  for (const auto& l : lines) w = std::max(w, width(l));
  return {lines, w};
}
}  // namespace

std::string render_table(const std::vector<std::string>& header,
                         const std::vector<std::vector<std::string>>& rows, const TableOptions& opts) {
  const size_t ncol = header.size();
  std::vector<size_t> widths(ncol, 0);
  std::vector<std::vector<std::string>> hdr(ncol);
  for (size_t c = 0; c < ncol; c++) {
    auto [lines, w] = cell_lines(header[c], opts.wrap);
    hdr[c] = lines;
    widths[c] = std::max(widths[c], w);
  }
  std::vector<std::vector<std::vector<std::string>>> body;
  for (const auto& r : rows) {
    std::vector<std::vector<std::string>> cells(ncol);
    for (size_t c = 0; c < ncol; c++) {
      auto [lines, w] = cell_lines(c < r.size() ? r[c] : "", opts.wrap);
      cells[c] = lines;
      widths[c] = std::max(widths[c], w);
    }
    body.push_back(std::move(cells));
  }
  std::string sep = "+";
  for (size_t c = 0; c < ncol; c++) sep += std::string(widths[c] + 2, '-') + "+";
  sep += "\n";

  auto emit = [&](std::string& out, const std::vector<std::vector<std::string>>& cells, bool is_header) {
    size_t height = 1;
    for (const auto& c : cells) height = std::max(height, c.size());
    for (size_t l = 0; l < height; l++) {
      out += "|";
      for (size_t c = 0; c < ncol; c++) {
        std::string s = l < cells[c].size() ? cells[c][l] : "";
        std::string p = is_header ? pad_center(s, widths[c])
                                  : (is_number(s) ? pad_left(s, widths[c]) : pad_right(s, widths[c]));
        out += " " + p + " |";
      }
      out += "\n";
    }
  };
  std::string out = sep;
  emit(out, hdr, true);
  out += sep;
  for (const auto& b : body) emit(out, b, false);
  out += sep;
  return out;
}

// ------------------------------------------------------------------ nat

void sort_nat(std::vector<NatFrontend>& fes) {
  std::sort(fes.begin(), fes.end(), [](const NatFrontend& a, const NatFrontend& b) {
    return std::make_tuple(ntohl(a.key.addr), ntohs(a.key.port), a.key.proto) <
           std::make_tuple(ntohl(b.key.addr), ntohs(b.key.port), b.key.proto);
  });
  for (auto& fe : fes)
    std::sort(fe.backends.begin(), fe.backends.end(),
              [](const NatBackend& a, const NatBackend& b) { return a.ordinal < b.ordinal; });
}

namespace {
const NatBackend* find_backend(const NatFrontend& fe, uint32_t ordinal) {
  for (const auto& b : fe.backends)
    if (b.ordinal == ordinal) return &b;
  return nullptr;
}
}  // namespace

std::string format_nat_dump(std::vector<NatFrontend> fes) {
  sort_nat(fes);
  std::string out;
  for (const auto& fe : fes) {
    out += fmt::format("{} port {} proto {} id {} count {} local {}", format_ip(fe.key.addr),
                       port_host(fe.key.port), fe.key.proto, fe.val.svc_id, fe.val.count, fe.val.local);
    if (fe.val.affinity_timeout != 0) out += fmt::format(" affinity {}s", fe.val.affinity_timeout);
    if (fe.val.flags != 0) out += fmt::format(" flags {:#x}", fe.val.flags);
    out += "\n";
    for (uint32_t i = 0; i < fe.val.count; i++) {
      const NatBackend* b = find_backend(fe, i);
      if (b != nullptr) {
        out += fmt::format("\t{}:{} {}\n", fe.val.svc_id, i, format_ip_port(b->addr, b->port));
      } else {
        out += fmt::format("\t{}:{} (missing backend)\n", fe.val.svc_id, i);
      }
    }
  }
  return out;
}

nlohmann::json nat_dump_json(std::vector<NatFrontend> fes) {
  sort_nat(fes);
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& fe : fes) {
    nlohmann::json backends = nlohmann::json::array();
    nlohmann::json missing = nlohmann::json::array();
    for (uint32_t i = 0; i < fe.val.count; i++) {
      const NatBackend* b = find_backend(fe, i);
      if (b == nullptr) {
        missing.push_back(i);
        continue;
      }
      backends.push_back({{"ordinal", i}, {"ip", format_ip(b->addr)}, {"port", port_host(b->port)}});
    }
    arr.push_back({{"vip", format_ip(fe.key.addr)},
                   {"port", port_host(fe.key.port)},
                   {"proto", fe.key.proto},
                   {"proto_name", maps::proto_name(fe.key.proto)},
                   {"id", fe.val.svc_id},
                   {"count", fe.val.count},
                   {"local", fe.val.local},
                   {"affinity_timeout", fe.val.affinity_timeout},
                   {"flags", fe.val.flags},
                   {"backends", backends},
                   {"missing_ordinals", missing}});
  }
  return arr;
}

// ------------------------------------------------------------------ conntrack

namespace {
std::string key_bytes(const weir_ct_key& k) { return std::string(reinterpret_cast<const char*>(&k), sizeof(k)); }

weir_ct_key normalized_key(uint8_t proto, uint32_t addr1, uint16_t port1, uint32_t addr2, uint16_t port2) {
  weir_ct_key k{};
  k.proto = proto;
  if (std::make_pair(addr1, port1) <= std::make_pair(addr2, port2)) {
    k.addr_a = addr1;
    k.port_a = port1;
    k.addr_b = addr2;
    k.port_b = port2;
  } else {
    k.addr_a = addr2;
    k.port_a = port2;
    k.addr_b = addr1;
    k.port_b = port1;
  }
  return k;
}

struct Sides {
  uint32_t client_addr, server_addr;
  uint16_t client_port, server_port;
  const weir_ct_leg* client_leg;
  const weir_ct_leg* server_leg;
};

Sides sides_of(const CtEntry& e) {
  bool a_client = (e.val.flags & WEIR_CT_F_A_IS_CLIENT) != 0;
  if (a_client)
    return {e.key.addr_a, e.key.addr_b, e.key.port_a, e.key.port_b, &e.val.a, &e.val.b};
  return {e.key.addr_b, e.key.addr_a, e.key.port_b, e.key.port_a, &e.val.b, &e.val.a};
}

std::string endpoint(uint32_t addr, uint16_t port) { return format_ip_port(addr, port); }
}  // namespace

std::vector<CtFlow> fold_conntrack(const std::vector<CtEntry>& entries) {
  std::map<std::string, const CtEntry*> by_key;
  for (const auto& e : entries) by_key[key_bytes(e.key)] = &e;
  std::vector<CtFlow> flows;
  std::map<std::string, bool> rev_taken;  // NAT_REV keys folded into a FWD flow
  for (const auto& e : entries) {
    if (e.val.type != WEIR_CT_NAT_FWD) continue;
    Sides s = sides_of(e);
    CtFlow f;
    f.proto = e.key.proto;
    f.client_addr = s.client_addr;
    f.client_port = s.client_port;
    f.server_addr = s.server_addr;
    f.server_port = s.server_port;
    f.nat = true;
    f.backend_addr = e.val.nat_addr;
    f.backend_port = e.val.nat_port;
    f.has_fwd = true;
    f.created_ns = e.val.created_ns;
    f.last_seen_ns = e.val.last_seen_ns;
    f.client_leg = *s.client_leg;
    f.server_leg = *s.server_leg;
    auto rk = key_bytes(normalized_key(e.key.proto, s.client_addr, s.client_port, e.val.nat_addr, e.val.nat_port));
    auto it = by_key.find(rk);
    if (it != by_key.end() && it->second->val.type == WEIR_CT_NAT_REV) {
      f.has_rev = true;
      f.last_seen_ns = std::max<uint64_t>(f.last_seen_ns, it->second->val.last_seen_ns);
      rev_taken[rk] = true;
    }
    f.state = maps::ct_state(f.proto, f.client_leg, f.server_leg);
    flows.push_back(f);
  }
  for (const auto& e : entries) {
    if (e.val.type == WEIR_CT_NAT_FWD) continue;
    if (e.val.type == WEIR_CT_NAT_REV && rev_taken.contains(key_bytes(e.key))) continue;
    Sides s = sides_of(e);
    CtFlow f;
    f.proto = e.key.proto;
    f.created_ns = e.val.created_ns;
    f.last_seen_ns = e.val.last_seen_ns;
    f.client_addr = s.client_addr;
    f.client_port = s.client_port;
    f.client_leg = *s.client_leg;
    f.server_leg = *s.server_leg;
    if (e.val.type == WEIR_CT_NAT_REV) {
      // Keyed (client, backend); nat_addr/nat_port is the VIP.
      f.nat = true;
      f.has_rev = true;
      f.server_addr = e.val.nat_addr;
      f.server_port = e.val.nat_port;
      f.backend_addr = s.server_addr;
      f.backend_port = s.server_port;
    } else {
      f.server_addr = s.server_addr;
      f.server_port = s.server_port;
    }
    f.state = maps::ct_state(f.proto, f.client_leg, f.server_leg);
    flows.push_back(f);
  }
  std::sort(flows.begin(), flows.end(), [](const CtFlow& a, const CtFlow& b) {
    return std::make_tuple(a.proto, ntohl(a.client_addr), ntohs(a.client_port), ntohl(a.server_addr),
                           ntohs(a.server_port), ntohl(a.backend_addr), ntohs(a.backend_port)) <
           std::make_tuple(b.proto, ntohl(b.client_addr), ntohs(b.client_port), ntohl(b.server_addr),
                           ntohs(b.server_port), ntohl(b.backend_addr), ntohs(b.backend_port));
  });
  return flows;
}

namespace {
int64_t idle_ns(const CtFlow& f, uint64_t now_ns) {
  return static_cast<int64_t>(now_ns) - static_cast<int64_t>(f.last_seen_ns);
}
}  // namespace

std::string format_ct_dump(const std::vector<CtEntry>& entries, uint64_t now_ns) {
  std::string out;
  for (const auto& f : fold_conntrack(entries)) {
    out += maps::proto_name(f.proto) + " " + endpoint(f.client_addr, f.client_port) + " -> " +
           endpoint(f.server_addr, f.server_port);
    if (f.nat) out += " -> " + endpoint(f.backend_addr, f.backend_port);
    out += " Active ago " + go_duration(idle_ns(f, now_ns));
    if (!f.state.empty()) out += " " + f.state;
    if (f.nat && !f.has_fwd) out += " (reverse only)";
    out += "\n";
  }
  return out;
}

nlohmann::json ct_dump_json(const std::vector<CtEntry>& entries, uint64_t now_ns) {
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& f : fold_conntrack(entries)) {
    nlohmann::json j = {
        {"proto", maps::proto_name(f.proto)},
        {"client", endpoint(f.client_addr, f.client_port)},
        {"server", endpoint(f.server_addr, f.server_port)},
        {"nat", f.nat},
        {"age_ns", static_cast<int64_t>(now_ns) - static_cast<int64_t>(f.created_ns)},
        {"idle_ns", idle_ns(f, now_ns)},
        {"last_seen_ago", go_duration(idle_ns(f, now_ns))},
        {"state", f.state},
        {"client_flags", maps::ct_leg_flags(f.client_leg.flags)},
        {"server_flags", maps::ct_leg_flags(f.server_leg.flags)},
        {"reverse_only", f.nat && !f.has_fwd},
    };
    if (f.nat) j["backend"] = endpoint(f.backend_addr, f.backend_port);
    arr.push_back(j);
  }
  return arr;
}

std::string format_ct_stats(const CtStatsReport& r) {
  const uint64_t pm = maps::ct_occupancy_permille(r.entries, r.max_entries);
  const uint64_t evicted = maps::ct_evictions_estimate(r.datapath, r.agent, r.entries);
  const std::pair<const char*, uint64_t> rows[] = {
      {"created", r.datapath.created},
      {"creation failures", r.datapath.create_failed},
      {"deleted by the datapath", r.datapath.deleted},
      {"deleted by the agent", r.agent.deleted},
      {"evicted (estimated)", evicted},
      {"mid-flow misses", r.datapath.midflow_miss},
      {"  re-NATed to a backend", r.datapath.midflow_renat},
      {"  answered with a reset", r.datapath.midflow_reset},
  };
  const char* notes[] = {
      "  (a NAT flow creates 2)", "", "", "",
      "  = created - deleted by the datapath - deleted by the agent - present",
      "  (TCP packets of an established flow that found no entry)", "", "",
  };
  size_t width = 1;
  for (const auto& [label, n] : rows) width = std::max(width, std::to_string(n).size());
  std::string out = fmt::format("conntrack table {}: {} of {} entries ({}.{}% full)\n", r.map_name,
                                r.entries, r.max_entries, pm / 10, pm % 10);
  out += "since the table was created (summed over CPUs):\n";
  for (size_t i = 0; i < std::size(rows); i++)
    out += fmt::format("  {:<24} {:>{}}{}\n", rows[i].first, rows[i].second, width, notes[i]);
  out += fmt::format("dropped \"failed to create conntrack\" (all interfaces and hooks): {}\n",
                     r.dropped_ct_create);
  return out;
}

nlohmann::json ct_stats_json(const CtStatsReport& r) {
  const double pct = r.max_entries == 0 ? 0.0 : 100.0 * double(r.entries) / double(r.max_entries);
  return {
      {"map", r.map_name},
      {"entries", r.entries},
      {"max_entries", r.max_entries},
      {"occupancy_percent", pct},
      {"created", r.datapath.created},
      {"create_failed", r.datapath.create_failed},
      {"deleted_datapath", r.datapath.deleted},
      {"deleted_agent", r.agent.deleted},
      {"evictions_estimated", maps::ct_evictions_estimate(r.datapath, r.agent, r.entries)},
      {"evictions_formula", "created - deleted_datapath - deleted_agent - entries"},
      {"midflow_miss", r.datapath.midflow_miss},
      {"midflow_renat", r.datapath.midflow_renat},
      {"midflow_reset", r.datapath.midflow_reset},
      {"dropped_ct_create", r.dropped_ct_create},
  };
}

// ------------------------------------------------------------------ counters

std::string format_counters_table(const IfaceCounters& c) {
  std::vector<std::vector<std::string>> rows;
  std::string_view last_cat;
  for (weir_counter id : maps::counter_display_order()) {
    auto m = maps::counter_meta(id);
    std::vector<std::string> row;
    row.emplace_back(m->category == last_cat ? std::string() : std::string(m->category));
    last_cat = m->category;
    row.emplace_back(m->type);
    for (uint32_t h : {WEIR_HOOK_INGRESS, WEIR_HOOK_EGRESS, WEIR_HOOK_XDP}) {
      const auto& v = c.hooks[h];
      row.push_back(v ? std::to_string(v->c[id]) : "N/A");
    }
    rows.push_back(std::move(row));
  }
  return render_table({"CATEGORY", "TYPE", "INGRESS", "EGRESS", "XDP"}, rows);
}

std::string format_counters_dump(const std::vector<IfaceCounters>& ifaces, bool headings) {
  std::string out;
  bool first = true;
  for (const auto& c : ifaces) {
    if (!first) out += "\n";
    first = false;
    if (headings) out += fmt::format("{} (ifindex {})\n", c.ifname, c.ifindex);
    out += format_counters_table(c);
  }
  return out;
}

nlohmann::json counters_json(const std::vector<IfaceCounters>& ifaces) {
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& c : ifaces) {
    nlohmann::json hooks = nlohmann::json::object();
    for (uint32_t h : {WEIR_HOOK_INGRESS, WEIR_HOOK_EGRESS, WEIR_HOOK_XDP}) {
      const auto& v = c.hooks[h];
      if (!v) {
        hooks[maps::hook_name(h)] = nullptr;
        continue;
      }
      nlohmann::json counters = nlohmann::json::object();
      for (uint32_t id = 0; id < WEIR_CNT__MAX; id++)
        counters[std::string(maps::counter_meta(id)->json_name)] = v->c[id];
      hooks[maps::hook_name(h)] = counters;
    }
    arr.push_back({{"ifname", c.ifname}, {"ifindex", c.ifindex}, {"hooks", hooks}});
  }
  return arr;
}

// ------------------------------------------------------------------ routes / ifstate

namespace {
bool mac_zero(const uint8_t m[6]) {
  for (int i = 0; i < 6; i++)
    if (m[i] != 0) return false;
  return true;
}
std::string mac_str(const uint8_t m[6]) {
  return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5]);
}
void sort_routes(std::vector<RouteEntry>& routes) {
  std::sort(routes.begin(), routes.end(), [](const RouteEntry& a, const RouteEntry& b) {
    return std::make_pair(ntohl(a.key.addr), a.key.prefixlen) < std::make_pair(ntohl(b.key.addr), b.key.prefixlen);
  });
}
std::vector<std::string> split_flags(const std::string& s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    size_t j = s.find(", ", i);
    if (j == std::string::npos) j = s.size();
    out.push_back(s.substr(i, j - i));
    i = j + 2;
  }
  return out;
}
std::string cidr(const weir_route_key& k) { return fmt::format("{}/{}", format_ip(k.addr), k.prefixlen); }
}  // namespace

std::string format_routes_dump(std::vector<RouteEntry> routes) {
  sort_routes(routes);
  std::string out;
  for (const auto& r : routes) {
    std::string flags = maps::route_flags(r.val.flags);
    out += cidr(r.key) + ": " + (flags.empty() ? "no flags" : flags);
    if (r.val.ifindex != 0) out += fmt::format(" ifindex {}", r.val.ifindex);
    if (!mac_zero(r.val.mac)) out += " mac " + mac_str(r.val.mac);
    if (r.val.next_hop != 0) out += " next hop " + format_ip(r.val.next_hop);
    out += "\n";
  }
  return out;
}

namespace {
void sort_arp(std::vector<ArpEntry>& v) {
  std::sort(v.begin(), v.end(), [](const ArpEntry& a, const ArpEntry& b) {
    return ntohl(a.next_hop) < ntohl(b.next_hop);
  });
}
std::string join_routes(const std::vector<std::string>& r) {
  std::string out;
  for (const auto& c : r) out += (out.empty() ? "" : ", ") + c;
  return out;
}
}  // namespace

std::string format_arp_dump(std::vector<ArpEntry> entries) {
  sort_arp(entries);
  std::string out;
  for (const auto& e : entries) {
    out += format_ip(e.next_hop);
    if (!e.present) {
      out += ": no neighbour entry yet: the kernel resolves it on the first packet";
    } else {
      std::string dst = e.resolved ? mac_str(e.dst_mac.data()) : std::string("(unresolved)");
      out += fmt::format(" dev {}: src {} dst {} {}", e.dev, mac_str(e.src_mac.data()), dst,
                         e.state);
    }
    out += " (next hop of " + join_routes(e.routes) + ")\n";
  }
  return out;
}

nlohmann::json arp_json(std::vector<ArpEntry> entries) {
  sort_arp(entries);
  nlohmann::json arr = nlohmann::json::array();
  auto opt = [](bool have, const std::string& v) {
    return have ? nlohmann::json(v) : nlohmann::json(nullptr);
  };
  for (const auto& e : entries)
    arr.push_back({{"next_hop", format_ip(e.next_hop)},
                   {"dev", opt(e.present, e.dev)},
                   {"src_mac", opt(e.present, mac_str(e.src_mac.data()))},
                   {"dst_mac", opt(e.present && e.resolved, mac_str(e.dst_mac.data()))},
                   {"state", opt(e.present, e.state)},
                   {"routes", e.routes}});
  return arr;
}

nlohmann::json routes_json(std::vector<RouteEntry> routes) {
  sort_routes(routes);
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& r : routes) {
    arr.push_back({{"cidr", cidr(r.key)},
                   {"flags", split_flags(maps::route_flags(r.val.flags))},
                   {"ifindex", r.val.ifindex},
                   {"next_hop", r.val.next_hop != 0 ? nlohmann::json(format_ip(r.val.next_hop)) : nlohmann::json(nullptr)},
                   {"mac", mac_zero(r.val.mac) ? nlohmann::json(nullptr) : nlohmann::json(mac_str(r.val.mac))}});
  }
  return arr;
}

namespace {
std::string slot_str(uint32_t s) { return s == WEIR_NO_POLICY_SLOT ? "none" : std::to_string(s); }
nlohmann::json slot_json(uint32_t s) { return s == WEIR_NO_POLICY_SLOT ? nlohmann::json(nullptr) : nlohmann::json(s); }
void sort_ifstate(std::vector<IfstateEntry>& e) {
  std::sort(e.begin(), e.end(), [](const IfstateEntry& a, const IfstateEntry& b) { return a.ifindex < b.ifindex; });
}
}  // namespace

std::string format_ifstate_dump(std::vector<IfstateEntry> entries) {
  sort_ifstate(entries);
  std::string out;
  for (const auto& e : entries) {
    std::string flags = maps::ifstate_flags(e.val.flags);
    flags.erase(std::remove(flags.begin(), flags.end(), ' '), flags.end());
    out += fmt::format("{} : {{name: {}, flags: {}, ingress slot: {}, egress slot: {}, host mac: {}}}\n", e.ifindex,
                       maps::ifstate_name(e.val), flags.empty() ? "none" : flags, slot_str(e.val.ingress_slot),
                       slot_str(e.val.egress_slot), mac_str(e.val.host_mac));
  }
  return out;
}

nlohmann::json ifstate_json(std::vector<IfstateEntry> entries) {
  sort_ifstate(entries);
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& e : entries) {
    arr.push_back({{"ifindex", e.ifindex},
                   {"name", maps::ifstate_name(e.val)},
                   {"flags", split_flags(maps::ifstate_flags(e.val.flags))},
                   {"ingress_slot", slot_json(e.val.ingress_slot)},
                   {"egress_slot", slot_json(e.val.egress_slot)},
                   {"mac", mac_str(e.val.host_mac)}});
  }
  return arr;
}

// ------------------------------------------------------------------ ipsets

uint64_t ipset_id(const weir_ipset_key& k) {
  uint64_t id = 0;
  for (uint8_t b : k.set_id) id = (id << 8) | b;
  return id;
}

weir_ipset_key ipset_key_of(const weir_ipset_exact_key& k) {
  weir_ipset_key out{};
  const bool plain = k.port == 0 && k.proto == 0;
  out.prefixlen = plain ? WEIR_IPSET_PREFIX_BASE + 32 : WEIR_IPSET_PREFIX_FULL;
  std::memcpy(out.set_id, k.set_id, sizeof(out.set_id));
  out.addr = k.addr;
  out.port = k.port;
  out.pad = k.pad;
  out.proto = k.proto;
  return out;
}

std::string ipset_member(const weir_ipset_key& k) {
  const uint32_t base = WEIR_IPSET_PREFIX_BASE;
  if (k.port == 0 && k.proto == 0 && k.prefixlen >= base && k.prefixlen <= base + 32)
    return fmt::format("{}/{}", format_ip(k.addr), k.prefixlen - base);
  if (k.prefixlen == WEIR_IPSET_PREFIX_FULL && k.proto != 0)
    return fmt::format("{}/{}", format_ip_port(k.addr, k.port), maps::proto_name(k.proto));
  return fmt::format("{} (prefixlen {}, port {}, proto {})", format_ip(k.addr), k.prefixlen,
                     port_host(k.port), k.proto);
}

namespace {
// Sets by id, members sorted: (id, address, prefix length, proto, port) in host order.
std::map<uint64_t, std::vector<weir_ipset_key>> ipsets_by_id(const std::vector<weir_ipset_key>& keys) {
  std::map<uint64_t, std::vector<weir_ipset_key>> sets;
  for (const auto& k : keys) sets[ipset_id(k)].push_back(k);
  for (auto& [id, members] : sets) {
    std::sort(members.begin(), members.end(), [](const weir_ipset_key& a, const weir_ipset_key& b) {
      return std::make_tuple(ntohl(a.addr), a.prefixlen, a.proto, port_host(a.port)) <
             std::make_tuple(ntohl(b.addr), b.prefixlen, b.proto, port_host(b.port));
    });
  }
  return sets;
}
}  // namespace

std::string format_ipsets_dump(const std::vector<weir_ipset_key>& keys) {
  std::string out;
  for (const auto& [id, members] : ipsets_by_id(keys)) {
    out += fmt::format("IP set {:#018x}\n", id);
    for (const auto& m : members) out += ipset_member(m) + "\n";
  }
  return out;
}

nlohmann::json ipsets_json(const std::vector<weir_ipset_key>& keys) {
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& [id, members] : ipsets_by_id(keys)) {
    nlohmann::json ms = nlohmann::json::array();
    for (const auto& m : members) ms.push_back(ipset_member(m));
    arr.push_back({{"id", fmt::format("{:#018x}", id)}, {"members", ms}});
  }
  return arr;
}

// ------------------------------------------------------------------ version

std::string format_version(const VersionInfo& v) {
  return fmt::format("weir version: {}\nmap layout version: {}\nlibbpf version: {}\nkernel: {}\ntc attach mode: {}\n",
                     v.weir, v.maps_layout, v.libbpf, v.kernel, v.attach_mode);
}

nlohmann::json version_json(const VersionInfo& v) {
  return {{"weir", v.weir}, {"maps_layout", v.maps_layout}, {"libbpf", v.libbpf}, {"kernel", v.kernel},
          {"attach_mode", v.attach_mode}};
}

// ------------------------------------------------------------------ help

std::string format_help(const std::vector<std::pair<std::string, std::string>>& commands) {
  auto sorted = commands;
  std::sort(sorted.begin(), sorted.end());
  size_t pad = 11;  // cobra's minimum name padding
  for (const auto& [n, d] : sorted) pad = std::max(pad, n.size());
  std::string out = "Available Commands:\n";
  for (const auto& [n, d] : sorted) out += "  " + pad_right(n, pad) + " " + d + "\n";
  return out;
}

// ------------------------------------------------------------------ profiling

std::string format_profiling(const std::vector<IfaceProfile>& rows) {
  const std::vector<std::string> header = {"IFACE",      "INGRESS NEW", "#", "INGRESS EST", "#",
                                           "EGRESS NEW", "#",           "EGRESS EST", "#"};
  std::vector<std::vector<std::string>> cells;
  for (const auto& r : rows) {
    std::vector<std::string> line{r.ifname};
    for (uint32_t hook : {WEIR_HOOK_INGRESS, WEIR_HOOK_EGRESS}) {
      for (uint32_t kind : {WEIR_PROF_NEW, WEIR_PROF_EST}) {
        const weir_prof_val& v = r.v[hook][kind];
        if (v.runs == 0) {
          line.insert(line.end(), {"---", "---"});
          continue;
        }
        line.push_back(fmt::format("{:.3f} ns", static_cast<double>(v.total_ns) / static_cast<double>(v.runs)));
        line.push_back(std::to_string(v.runs));
      }
    }
    cells.push_back(std::move(line));
  }
  return render_table(header, cells);
}

nlohmann::json profiling_json(const std::vector<IfaceProfile>& rows) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : rows) {
    nlohmann::json j{{"ifname", r.ifname}, {"ifindex", r.ifindex}};
    for (uint32_t hook : {WEIR_HOOK_INGRESS, WEIR_HOOK_EGRESS}) {
      nlohmann::json h;
      for (uint32_t kind : {WEIR_PROF_NEW, WEIR_PROF_EST}) {
        const weir_prof_val& v = r.v[hook][kind];
        h[kind == WEIR_PROF_NEW ? "new" : "est"] = {
            {"runs", v.runs},
            {"total_ns", v.total_ns},
            {"avg_ns", v.runs ? static_cast<double>(v.total_ns) / static_cast<double>(v.runs) : 0.0}};
      }
      j[hook == WEIR_HOOK_INGRESS ? "ingress" : "egress"] = h;
    }
    out.push_back(j);
  }
  return out;
}

// ------------------------------------------------------------------ observe

namespace {

// Column widths of `weir observe`'s table; SUMMARY, the last, is not padded.
constexpr std::array<size_t, 5> kFlowWidths = {19, 26, 44, 16, 9};

std::string flow_cells_line(const std::vector<std::string>& cells) {
  std::string out;
  for (size_t i = 0; i < cells.size(); ++i) {
    if (i + 1 == cells.size()) {
      out += cells[i];
      break;
    }
    out += pad_right(cells[i], kFlowWidths.at(i)) + "  ";
  }
  return out + "\n";
}

}  // namespace

std::string format_flow_time(int64_t unix_ns) {
  using namespace std::chrono;
  static constexpr std::array<const char*, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  // Floor to the day: an instant before 1970 still has its milliseconds in [0, 1000).
  const sys_time<nanoseconds> t{nanoseconds{unix_ns}};
  const sys_days day = floor<days>(t);
  const year_month_day ymd{day};
  const hh_mm_ss<nanoseconds> tod{t - day};
  return fmt::format("{} {:>2} {:02}:{:02}:{:02}.{:03}", kMonths.at(unsigned{ymd.month()} - 1), unsigned{ymd.day()},
                     tod.hours().count(), tod.minutes().count(), tod.seconds().count(),
                     duration_cast<milliseconds>(tod.subseconds()).count());
}

std::string format_flow_peer(const model::FlowPeer& p) {
  std::string name = !p.ns.empty() || !p.pod.empty() ? p.ns + "/" + p.pod : p.ip.str();
  if (p.port != 0) name += fmt::format(":{}", p.port);
  return name;
}

std::vector<std::string> flow_row(const model::Flow& f) {
  const model::FlowPeer& d = f.destination;
  std::string dst;
  if (d.pod.empty() && (!d.service_ns.empty() || !d.service.empty())) {
    dst = fmt::format("svc {}/{}", d.service_ns, d.service);
    if (d.port != 0) dst += fmt::format(":{}", d.port);
  } else {
    dst = format_flow_peer(d);
  }
  if (f.translated) dst += " -> " + format_flow_peer(*f.translated);
  auto j = model::to_json(f);
  return {format_flow_time(f.time_unix_ns),
          format_flow_peer(f.source),
          dst,
          fmt::format("{} {}", model::to_string(f.event), maps::proto_name(f.proto)),
          model::to_string(f.verdict),
          j.at("Summary").get<std::string>()};
}

std::string format_flow_header() {
  return flow_cells_line({"TIME", "SOURCE", "DESTINATION", "TYPE", "VERDICT", "SUMMARY"});
}

std::string format_flow_line(const model::Flow& f) { return flow_cells_line(flow_row(f)); }

}  // namespace weir::cli
