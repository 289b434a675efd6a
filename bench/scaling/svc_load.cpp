// weir_svc_load: the service-scaling benchmark's tool (bench/scaling.sh drives it).
//
//   apply  --dataplane weir|iptables|nftables --services N --servers IP,... --sync-runs R ...
//          Run inside the node netns. Generates the service set (the same for every dataplane),
//          applies it in full (timed until it is in effect), then changes one service's
//          backends R times (timed until each change is in effect), and reports memory.
//          iptables: kube-proxy's iptables-mode chains, loaded with iptables-restore;
//          nftables: kube-proxy's nftables-mode table, loaded with nft -f;
//          weir: Service + EndpointSlice YAML renamed into the agent's datastore, in effect
//          when the pinned NAT maps show it.
//   load   --services N --mode conn|rr --duration S --runs R --cpu C
//          Run inside the client pod's netns. conn: connect + "ping\n" + answer line + close,
//          to services chosen at random, one at a time; rr: requests on established
//          connections. One result line per run.
//
// Output lines are "key=value ..." so the driver can parse them with awk.
//
// The rule generators follow the documented structure of kube-proxy's rules (the Kubernetes
// documentation of the iptables and nftables proxy modes, KEP-3453 for partial iptables
// syncs, KEP-3866 for the nftables mode), not its code. Chain names keep kube-proxy's shape
// (KUBE-SVC-<16 base32 chars>, service-<8 chars>-ns/name/proto/port) with a hash of our own.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "maps/pin_layout.h"
#include "maps/weir_maps.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "weir_svc_load: %s\n", msg.c_str());
  std::exit(1);
}
[[noreturn]] void die_errno(const std::string& what) {
  die(what + ": " + std::strerror(errno));
}

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// ---------------------------------------------------------------- options

struct Args {
  std::map<std::string, std::string> kv;
  std::string get(const std::string& k, const std::string& def = "") const {
    auto it = kv.find(k);
    return it == kv.end() ? def : it->second;
  }
  std::string need(const std::string& k) const {
    auto it = kv.find(k);
    if (it == kv.end()) die("missing --" + k);
    return it->second;
  }
  long num(const std::string& k, long def) const {
    auto it = kv.find(k);
    if (it == kv.end()) return def;
    char* end = nullptr;
    long v = std::strtol(it->second.c_str(), &end, 10);
    if (!end || *end) die("--" + k + ": not an integer: " + it->second);
    return v;
  }
  double real(const std::string& k, double def) const {
    auto it = kv.find(k);
    if (it == kv.end()) return def;
    char* end = nullptr;
    double v = std::strtod(it->second.c_str(), &end);
    if (!end || *end) die("--" + k + ": not a number: " + it->second);
    return v;
  }
};

Args parse_args(int argc, char** argv, int from) {
  Args a;
  for (int i = from; i < argc; i++) {
    std::string s = argv[i];
    if (s.rfind("--", 0) != 0) die("unexpected argument " + s);
    auto eq = s.find('=');
    if (eq != std::string::npos) {
      a.kv[s.substr(2, eq - 2)] = s.substr(eq + 1);
    } else {
      if (i + 1 >= argc) die(s + " needs a value");
      a.kv[s.substr(2)] = argv[++i];
    }
  }
  return a;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

// ---------------------------------------------------------------- the service set

constexpr uint32_t kVipBase = (10u << 24) | (96u << 16) | 16u;  // 10.96.0.16: service 0
constexpr uint16_t kSvcPort = 80;
constexpr uint16_t kTargetPort = 8080;
constexpr const char* kNamespace = "bench";
constexpr const char* kClusterCidr = "10.65.0.0/16";  // the lab's pods (no masquerade mark)

uint64_t splitmix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

std::string ip_str(uint32_t host_order) {
  in_addr a{htonl(host_order)};
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

uint32_t parse_ip(const std::string& s) {
  in_addr a{};
  if (inet_pton(AF_INET, s.c_str(), &a) != 1) die("not an IPv4 address: " + s);
  return ntohl(a.s_addr);
}

uint32_t vip_of(uint32_t idx) { return kVipBase + idx; }
std::string svc_name(uint32_t idx) { return "svc-" + std::to_string(idx); }
// kube-proxy's ServicePortName: namespace/name:port
std::string svc_port_name(uint32_t idx) {
  return std::string(kNamespace) + "/" + svc_name(idx) + ":http";
}

// Backends of service idx in version v (0 or 1): 2..10 distinct servers (at most as many as
// there are). Version 1 always differs from version 0.
std::vector<uint32_t> backends_of(uint32_t idx, int version, const std::vector<uint32_t>& servers) {
  auto pick = [&](uint64_t seed) {
    uint64_t r = splitmix(seed);
    size_t n = std::min<size_t>(servers.size(), 2 + r % 9);
    std::vector<uint32_t> pool = servers;
    for (size_t i = 0; i < n; i++) {
      r = splitmix(r);
      size_t j = i + r % (pool.size() - i);
      std::swap(pool[i], pool[j]);
    }
    pool.resize(n);
    std::sort(pool.begin(), pool.end());
    return pool;
  };
  auto v0 = pick(uint64_t(idx) * 2654435761u + 1);
  if (version == 0) return v0;
  auto v1 = pick(uint64_t(idx) * 2654435761u + 0x5bd1e995u);
  if (v1 == v0) {
    if (v1.size() > 2) {
      v1.pop_back();
    } else {
      for (uint32_t s : servers)
        if (!std::binary_search(v0.begin(), v0.end(), s)) {
          v1.push_back(s);
          break;
        }
      std::sort(v1.begin(), v1.end());
    }
  }
  return v1;
}

// The services whose backends the sync test changes: up to `runs` distinct ones, spread out.
std::vector<uint32_t> sync_targets(uint32_t n, int runs) {
  std::vector<uint32_t> t;
  uint32_t k = std::min<uint32_t>(n, std::max(1, runs));
  for (uint32_t i = 0; i < k; i++) t.push_back(uint32_t((uint64_t(i) * n) / k + (n / k) / 2));
  return t;
}

// ---------------------------------------------------------------- chain names

// Our own 80-bit hash (two FNV-1a variants), base32-encoded like kube-proxy's names.
std::string hash32(const std::string& s, size_t chars) {
  uint64_t h1 = 0xcbf29ce484222325ull, h2 = 0x84222325cbf29ce4ull;
  for (unsigned char c : s) {
    h1 = (h1 ^ c) * 0x100000001b3ull;
    h2 = (h2 ^ c) * 0x100000001b3ull + 7;
  }
  h1 = splitmix(h1);
  h2 = splitmix(h2 ^ h1);
  static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  std::string out;
  for (size_t i = 0; i < chars; i++) {
    uint64_t& h = i < 12 ? h1 : h2;
    out += alphabet[h & 31];
    h >>= 5;
  }
  return out;
}

std::string ep_str(uint32_t ip) { return ip_str(ip) + ":" + std::to_string(kTargetPort); }

std::string ipt_svc_chain(uint32_t idx) {
  return "KUBE-SVC-" + hash32(svc_port_name(idx) + "tcp", 16);
}
std::string ipt_sep_chain(uint32_t idx, uint32_t ip) {
  return "KUBE-SEP-" + hash32(svc_port_name(idx) + "tcp" + ep_str(ip), 16);
}
std::string nft_svc_chain(uint32_t idx) {
  return "service-" + hash32(svc_port_name(idx) + "tcp", 8) + "-" + kNamespace + "/" +
         svc_name(idx) + "/tcp/http";
}
std::string nft_ep_chain(uint32_t idx, uint32_t ip) {
  return "endpoint-" + hash32(svc_port_name(idx) + "tcp" + ep_str(ip), 8) + "-" + kNamespace +
         "/" + svc_name(idx) + "/tcp/http__" + ip_str(ip) + "/" + std::to_string(kTargetPort);
}

// ---------------------------------------------------------------- iptables mode

// The jump rules from the built-in chains, which kube-proxy ensures one by one (iptables -I),
// not through iptables-restore.
const char* kIptablesBase =
    "*nat\n"
    ":PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
    ":POSTROUTING ACCEPT [0:0]\n"
    ":KUBE-SERVICES - [0:0]\n:KUBE-POSTROUTING - [0:0]\n"
    "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
    "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
    "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n"
    "COMMIT\n"
    "*filter\n"
    ":INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
    ":KUBE-SERVICES - [0:0]\n:KUBE-FORWARD - [0:0]\n"
    "-A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD\n"
    "-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" "
    "-j KUBE-SERVICES\n"
    "COMMIT\n";

// large: kube-proxy's "large cluster mode" (more than 1,000 endpoints in all): the rules in
// and to endpoint chains carry no comment, which otherwise is ~40 % of the rule set
// (kubernetes/kubernetes#65755). Without it, 50,000 services of 2-10 backends make a 598 MB
// nat table, past the kernel's 512 MB limit for one table (XT_MAX_TABLE_SIZE: ENOMEM).
void ipt_service_chains(std::string& chains, std::string& rules, uint32_t idx,
                        const std::vector<uint32_t>& bes, bool large) {
  const std::string svc = ipt_svc_chain(idx), vip = ip_str(vip_of(idx));
  const std::string pn = svc_port_name(idx);
  chains += ":" + svc + " - [0:0]\n";
  rules += "-A " + svc + " ! -s " + kClusterCidr + " -d " + vip + "/32 -p tcp -m comment --comment \"" +
           pn + " cluster IP\" -m tcp --dport " + std::to_string(kSvcPort) + " -j KUBE-MARK-MASQ\n";
  const size_t n = bes.size();
  for (size_t i = 0; i < n; i++) {
    std::string sep = ipt_sep_chain(idx, bes[i]);
    rules += "-A " + svc;
    if (!large) rules += " -m comment --comment \"" + pn + " -> " + ep_str(bes[i]) + "\"";
    if (i + 1 < n) {
      char prob[32];
      std::snprintf(prob, sizeof prob, "%.11f", 1.0 / double(n - i));
      rules += std::string(" -m statistic --mode random --probability ") + prob;
    }
    rules += " -j " + sep + "\n";
  }
  for (uint32_t ip : bes) {
    std::string sep = ipt_sep_chain(idx, ip);
    chains += ":" + sep + " - [0:0]\n";
    const std::string comment = large ? "" : " -m comment --comment \"" + pn + "\"";
    rules += "-A " + sep + " -s " + ip_str(ip) + "/32" + comment + " -j KUBE-MARK-MASQ\n";
    rules += "-A " + sep + " -p tcp" + comment + " -m tcp -j DNAT --to-destination " + ep_str(ip) + "\n";
  }
}

// The iptables-restore input (for --noflush) of a sync. full: every chain and rule (a full
// sync); otherwise only the top-level chains (written in full on every sync) plus the chains
// of `changed`, whose endpoint chains in `removed` are deleted (a partial sync, KEP-3453).
std::string ipt_restore(uint32_t n, const std::vector<int>& version, const std::vector<uint32_t>& servers,
                        bool full, uint32_t changed, const std::vector<uint32_t>& removed) {
  std::string chains, rules, top;
  chains.reserve(full ? size_t(n) * 200 : 4096);
  rules.reserve(full ? size_t(n) * 1200 : size_t(n) * 160);
  chains += ":KUBE-SERVICES - [0:0]\n:KUBE-NODEPORTS - [0:0]\n:KUBE-POSTROUTING - [0:0]\n"
            ":KUBE-MARK-MASQ - [0:0]\n";
  top += "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n"
         "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000\n"
         "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" "
         "-j MASQUERADE --random-fully\n"
         "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000\n";
  for (uint32_t i = 0; i < n; i++) {
    top += "-A KUBE-SERVICES -d " + ip_str(vip_of(i)) + "/32 -p tcp -m comment --comment \"" +
           svc_port_name(i) + " cluster IP\" -m tcp --dport " + std::to_string(kSvcPort) + " -j " +
           ipt_svc_chain(i) + "\n";
  }
  top += "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be "
         "the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\n";
  size_t endpoints = 0;
  for (uint32_t i = 0; i < n; i++) endpoints += backends_of(i, version[i], servers).size();
  const bool large = endpoints > 1000;
  for (uint32_t i = 0; i < n; i++) {
    if (!full && i != changed) continue;
    ipt_service_chains(chains, rules, i, backends_of(i, version[i], servers), large);
  }
  std::string removed_lines;
  for (uint32_t ip : removed) {
    chains += ":" + ipt_sep_chain(changed, ip) + " - [0:0]\n";
    removed_lines += "-X " + ipt_sep_chain(changed, ip) + "\n";
  }
  std::string out;
  out.reserve(chains.size() + top.size() + rules.size() + 256);
  out += "*filter\n:KUBE-SERVICES - [0:0]\n:KUBE-FORWARD - [0:0]\n"
         "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP\n"
         "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark "
         "0x4000/0x4000 -j ACCEPT\n"
         "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack "
         "--ctstate RELATED,ESTABLISHED -j ACCEPT\n"
         "COMMIT\n*nat\n";
  out += chains;
  out += top;
  out += rules;
  out += removed_lines;
  out += "COMMIT\n";
  return out;
}

// ---------------------------------------------------------------- nftables mode

constexpr const char* kNftTable = "ip kube-proxy";

// A service chain's rules: the hairpin masquerade mark, then the random pick among the
// endpoint chains (a numgen vmap). The same for a full load and a one-service change.
std::string nft_svc_rules(uint32_t idx, const std::vector<uint32_t>& bes) {
  const std::string t = kNftTable, svc = nft_svc_chain(idx);
  std::string out = "add rule " + t + " " + svc + " ip daddr " + ip_str(vip_of(idx)) + " tcp dport " +
                    std::to_string(kSvcPort) + " ip saddr != " + kClusterCidr + " jump mark-for-masquerade\n";
  out += "add rule " + t + " " + svc + " numgen random mod " + std::to_string(bes.size()) + " vmap { ";
  for (size_t i = 0; i < bes.size(); i++)
    out += (i ? ", " : "") + std::to_string(i) + " : goto " + nft_ep_chain(idx, bes[i]);
  out += " }\n";
  return out;
}

// An endpoint chain's rules: the hairpin mark and the DNAT.
std::string nft_ep_rules(uint32_t idx, uint32_t ip) {
  const std::string t = kNftTable, ep = nft_ep_chain(idx, ip);
  return "add rule " + t + " " + ep + " ip saddr " + ip_str(ip) + " jump mark-for-masquerade\n" +
         "add rule " + t + " " + ep + " meta l4proto tcp dnat to " + ep_str(ip) + "\n";
}

void nft_service(std::string& decl, std::string& rules, uint32_t idx, const std::vector<uint32_t>& bes) {
  decl += std::string("add chain ") + kNftTable + " " + nft_svc_chain(idx) + "\n";
  for (uint32_t ip : bes) decl += std::string("add chain ") + kNftTable + " " + nft_ep_chain(idx, ip) + "\n";
  rules += nft_svc_rules(idx, bes);
  for (uint32_t ip : bes) rules += nft_ep_rules(idx, ip);
}

// The table, its base chains and the service-ips map, without services.
std::string nft_head() {
  const std::string t = kNftTable;
  std::string decl, rules;
  decl += "add table " + t + " { comment \"rules for kube-proxy\" ; }\n";
  for (const char* c : {"mark-for-masquerade", "masquerading", "services", "nodeports"})
    decl += "add chain " + t + " " + c + "\n";
  decl += "add chain " + t + " nat-prerouting { type nat hook prerouting priority dstnat ; }\n";
  decl += "add chain " + t + " nat-output { type nat hook output priority -100 ; }\n";
  decl += "add chain " + t + " nat-postrouting { type nat hook postrouting priority srcnat ; }\n";
  decl += "add map " + t +
          " service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment "
          "\"ClusterIP, ExternalIP and LoadBalancer IP traffic\" ; }\n";
  rules += "add rule " + t + " mark-for-masquerade mark set mark or 0x4000\n";
  rules += "add rule " + t + " masquerading mark and 0x4000 == 0 return\n";
  rules += "add rule " + t + " masquerading mark set mark xor 0x4000\n";
  rules += "add rule " + t + " masquerading masquerade fully-random\n";
  rules += "add rule " + t + " services ip daddr . meta l4proto . th dport vmap @service-ips\n";
  rules += "add rule " + t + " services fib daddr type local jump nodeports\n";
  rules += "add rule " + t + " nat-prerouting jump services\n";
  rules += "add rule " + t + " nat-output jump services\n";
  rules += "add rule " + t + " nat-postrouting jump masquerading\n";
  return decl + rules;
}

// Services [from, to): their chains, rules and service-ips elements.
std::string nft_services(uint32_t from, uint32_t to, const std::vector<int>& version,
                         const std::vector<uint32_t>& servers) {
  std::string decl, rules, elems;
  decl.reserve(size_t(to - from) * 600);
  rules.reserve(size_t(to - from) * 1500);
  const std::string t = kNftTable;
  for (uint32_t i = from; i < to; i++) {
    nft_service(decl, rules, i, backends_of(i, version[i], servers));
    elems += "add element " + t + " service-ips { " + ip_str(vip_of(i)) + " . tcp . " +
             std::to_string(kSvcPort) + " : goto " + nft_svc_chain(i) + " }\n";
  }
  return decl + rules + elems;
}

// kube-proxy's incremental nftables transaction for one service whose endpoints changed:
// flush and rewrite the service chain, create the new endpoint chains, flush and delete the
// old ones. The service-ips element (same VIP, same chain) stays.
std::string nft_change(uint32_t idx, const std::vector<uint32_t>& old_bes, const std::vector<uint32_t>& new_bes) {
  const std::string t = kNftTable;
  std::string out = "flush chain " + t + " " + nft_svc_chain(idx) + "\n";
  std::vector<uint32_t> added;
  for (uint32_t ip : new_bes)
    if (!std::binary_search(old_bes.begin(), old_bes.end(), ip)) added.push_back(ip);
  for (uint32_t ip : added) out += "add chain " + t + " " + nft_ep_chain(idx, ip) + "\n";
  out += nft_svc_rules(idx, new_bes);
  for (uint32_t ip : added) out += nft_ep_rules(idx, ip);
  for (uint32_t ip : old_bes)
    if (!std::binary_search(new_bes.begin(), new_bes.end(), ip)) {
      out += "flush chain " + t + " " + nft_ep_chain(idx, ip) + "\n";
      out += "delete chain " + t + " " + nft_ep_chain(idx, ip) + "\n";
    }
  return out;
}

// ---------------------------------------------------------------- running commands

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) die_errno("writing " + path);
  out << text;
  out.close();
  if (!out) die_errno("writing " + path);
}

// Runs argv with stdin from `input_path` ("" = /dev/null) and stdout to `out_path` ("" =
// /dev/null); returns the exit code.
int run(const std::vector<std::string>& argv, const std::string& input_path = "",
        const std::string& out_path = "") {
  pid_t pid = fork();
  if (pid < 0) die_errno("fork");
  if (pid == 0) {
    int in = open(input_path.empty() ? "/dev/null" : input_path.c_str(), O_RDONLY);
    int out = open(out_path.empty() ? "/dev/null" : out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (in < 0 || out < 0) _exit(126);
    dup2(in, 0);
    dup2(out, 1);
    std::vector<char*> av;
    for (const auto& s : argv) av.push_back(const_cast<char*>(s.c_str()));
    av.push_back(nullptr);
    execvp(av[0], av.data());
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) die_errno("waitpid");
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void run_ok(const std::vector<std::string>& argv, const std::string& input_path = "",
            const std::string& out_path = "") {
  int rc = run(argv, input_path, out_path);
  if (rc != 0) {
    std::string cmd;
    for (const auto& s : argv) cmd += s + " ";
    die("command failed (exit " + std::to_string(rc) + "): " + cmd +
        (input_path.empty() ? "" : "< " + input_path));
  }
}

uintmax_t file_size(const std::string& p) {
  std::error_code ec;
  auto s = fs::file_size(p, ec);
  return ec ? 0 : s;
}

size_t count_lines_starting(const std::string& p, const std::string& prefix) {
  std::ifstream in(p);
  std::string line;
  size_t n = 0;
  while (std::getline(in, line))
    if (line.rfind(prefix, 0) == 0) n++;
  return n;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

std::string join_ms(const std::vector<double>& v) {
  std::string s;
  char buf[32];
  for (double x : v) {
    std::snprintf(buf, sizeof buf, "%s%.3f", s.empty() ? "" : ",", x);
    s += buf;
  }
  return s;
}

long status_kb(pid_t pid, const char* field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field, 0) == 0) return std::strtol(line.c_str() + std::strlen(field), nullptr, 10);
  return -1;
}

long fd_memlock(int fd) {
  std::ifstream in("/proc/self/fdinfo/" + std::to_string(fd));
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("memlock:", 0) == 0) return std::strtol(line.c_str() + 8, nullptr, 10);
  return -1;
}

// ---------------------------------------------------------------- weir

struct WeirCtx {
  std::string datastore, staging, pin_root;
};

void weir_write_service(std::string& out, uint32_t idx, const std::vector<uint32_t>& bes) {
  const std::string name = svc_name(idx);
  out += "---\n{apiVersion: v1, kind: Service, metadata: {name: " + name + ", namespace: " + kNamespace +
         "}, spec: {type: ClusterIP, clusterIP: " + ip_str(vip_of(idx)) +
         ", ports: [{name: http, protocol: TCP, port: " + std::to_string(kSvcPort) +
         ", targetPort: " + std::to_string(kTargetPort) + "}]}}\n";
  out += "---\n{apiVersion: discovery.k8s.io/v1, kind: EndpointSlice, metadata: {name: " + name +
         "-1, namespace: " + kNamespace + ", labels: {kubernetes.io/service-name: " + name +
         "}}, addressType: IPv4, ports: [{name: http, protocol: TCP, port: " +
         std::to_string(kTargetPort) + "}], endpoints: [";
  for (size_t i = 0; i < bes.size(); i++)
    out += std::string(i ? ", " : "") + "{addresses: [" + ip_str(bes[i]) + "], conditions: {ready: true}}";
  out += "]}\n";
}

void rename_into(const WeirCtx& w, const std::string& name) {
  std::string from = w.staging + "/" + name, to = w.datastore + "/" + name;
  if (::rename(from.c_str(), to.c_str()) != 0) die_errno("rename " + from + " -> " + to);
}

void rename_out(const WeirCtx& w, const std::string& name) {
  std::string from = w.datastore + "/" + name, to = w.staging + "/" + name;
  if (::rename(from.c_str(), to.c_str()) != 0) die_errno("rename " + from + " -> " + to);
}

std::string weir_one_file(uint32_t idx) { return "svc-one-" + std::to_string(idx) + ".yaml"; }

// True when the frontend of service idx shows exactly `bes` (backends written before the
// frontend that counts them, so frontend count + every ordinal = the change is in effect).
bool weir_in_effect(const weir::maps::WeirMaps& m, uint32_t idx, const std::vector<uint32_t>& bes) {
  weir_nat_fe_key k{};
  k.addr = htonl(vip_of(idx));
  k.port = htons(kSvcPort);
  k.proto = IPPROTO_TCP;
  auto fe = m.nat_fe.lookup(k);
  if (!fe) die("nat_fe lookup: " + fe.error().str());
  if (!fe->has_value() || (*fe)->count != bes.size()) return false;
  std::vector<uint32_t> got;
  for (uint32_t o = 0; o < (*fe)->count; o++) {
    weir_nat_be_key bk{(*fe)->svc_id, o};
    auto be = m.nat_be.lookup(bk);
    if (!be) die("nat_be lookup: " + be.error().str());
    if (!be->has_value() || ntohs((*be)->port) != kTargetPort) return false;
    got.push_back(ntohl((*be)->addr));
  }
  std::sort(got.begin(), got.end());
  return got == bes;
}

// ---------------------------------------------------------------- apply

int cmd_apply(const Args& a) {
  const std::string dp = a.need("dataplane");
  const uint32_t n = uint32_t(a.num("services", 1));
  const int sync_runs = int(a.num("sync-runs", 5));
  // The whole set applied this many times from scratch (apply_ms is the median).
  const int apply_runs = std::max(1, int(a.num("apply-runs", 1)));
  std::vector<double> applies;
  const double timeout_s = a.real("timeout", 600);
  const std::string work = a.need("work-dir");
  std::vector<uint32_t> servers;
  for (const auto& s : split(a.need("servers"), ',')) servers.push_back(parse_ip(s));
  std::sort(servers.begin(), servers.end());
  if (servers.size() < 3) die("--servers: at least 3 (a service change needs a server to add or drop)");
  std::vector<int> version(n, 0);
  auto targets = sync_targets(n, sync_runs);
  size_t total_be = 0;
  for (uint32_t i = 0; i < n; i++) total_be += backends_of(i, 0, servers).size();
  std::printf("dataplane=%s services=%u backends=%zu\n", dp.c_str(), n, total_be);

  std::vector<double> sync_ms, sync_partial_ms;
  if (dp == "iptables") {
    // --iptables legacy|nft: which iptables binaries (kube-proxy uses the host's; its images
    // ship both and pick the one the host's rules are in).
    const std::string backend = a.get("iptables", "legacy");
    if (backend != "legacy" && backend != "nft") die("--iptables: legacy or nft");
    const std::string restore = "iptables-" + backend + "-restore";
    const std::string save_cmd = "iptables-" + backend + "-save";
    const std::string base = work + "/ipt-base.rules", full = work + "/ipt-full.rules";
    write_file(base, kIptablesBase);
    run_ok({restore, "-w", "--noflush"}, base);
    auto tg = Clock::now();
    write_file(full, ipt_restore(n, version, servers, true, 0, {}));
    double gen_ms = ms_since(tg);
    for (int r = 0; r < apply_runs; r++) {
      if (r > 0) {  // from scratch again: empty tables, then the base rules
        for (const char* t : {"nat", "filter"}) {
          run_ok({"iptables-" + backend, "-w", "-t", t, "-F"});
          run_ok({"iptables-" + backend, "-w", "-t", t, "-X"});
        }
        run_ok({restore, "-w", "--noflush"}, base);
      }
      auto t0 = Clock::now();
      run_ok({restore, "-w", "--noflush", "--counters"}, full);
      applies.push_back(ms_since(t0));
    }
    double apply_ms = median(applies);
    const std::string save = work + "/ipt-save.txt";
    run_ok({save_cmd}, "", save);
    size_t nrules = count_lines_starting(save, "-A ");
    std::printf("apply_ms=%.3f apply_all=%s gen_ms=%.3f input_bytes=%ju ruleset_bytes=%ju rules=%zu\n",
                apply_ms, join_ms(applies).c_str(), gen_ms, file_size(full), file_size(save), nrules);
    // One service changes: a full sync (every chain rewritten) and a partial sync (KEP-3453,
    // kube-proxy's default since 1.27: top-level chains + the changed service's chains).
    // A full re-restore costs about as much as the apply: --full-sync-runs may do fewer.
    const int full_runs = int(a.num("full-sync-runs", sync_runs));
    for (int r = 0; r < 2 * sync_runs; r++) {
      bool partial = r % 2 == 1;
      if (!partial && r / 2 >= full_runs) continue;
      uint32_t idx = targets[size_t(r / 2) % targets.size()];
      auto old_bes = backends_of(idx, version[idx], servers);
      version[idx] ^= 1;
      auto new_bes = backends_of(idx, version[idx], servers);
      std::vector<uint32_t> removed;
      for (uint32_t ip : old_bes)
        if (!std::binary_search(new_bes.begin(), new_bes.end(), ip)) removed.push_back(ip);
      const std::string f = work + "/ipt-sync.rules";
      // Both kinds delete the changed service's stale endpoint chains (declare, then -X).
      write_file(f, ipt_restore(n, version, servers, !partial, idx, removed));
      auto t1 = Clock::now();
      run_ok({restore, "-w", "--noflush", "--counters"}, f);
      (partial ? sync_partial_ms : sync_ms).push_back(ms_since(t1));
    }
    // Check the last change is there.
    run_ok({save_cmd, "-t", "nat"}, "", save);
    uint32_t last = targets[size_t(sync_runs - 1) % targets.size()];
    for (uint32_t ip : backends_of(last, version[last], servers))
      if (count_lines_starting(save, ":" + ipt_sep_chain(last, ip)) != 1)
        die("iptables: endpoint chain of the last change missing");
    // "NA" (not a number: the driver leaves it out) when no full re-restore was asked for.
    std::printf("sync_ms=%s sync_all=%s sync_partial_ms=%.3f sync_partial_all=%s\n",
                sync_ms.empty() ? "NA" : std::to_string(median(sync_ms)).c_str(),
                sync_ms.empty() ? "NA" : join_ms(sync_ms).c_str(), median(sync_partial_ms),
                join_ms(sync_partial_ms).c_str());
  } else if (dp == "nftables") {
    // kube-proxy loads everything in one transaction. Its cost grows with the square of the
    // number of services on this kernel (each rule's anonymous vmap, bound in
    // __nft_set_trans_bind, walks the whole transaction): 10,000 services take minutes, 50,000
    // about an hour. Above --nft-single-max services the set is loaded in transactions of
    // --nft-chunk services instead (reported as apply_transactions); the one-service
    // changes measured below are kube-proxy's own incremental transactions either way.
    const uint32_t single_max = uint32_t(a.num("nft-single-max", 10000));
    const uint32_t chunk = n > single_max ? uint32_t(std::max(1L, a.num("nft-chunk", 2500))) : n;
    std::vector<std::string> files;
    auto tg = Clock::now();
    for (uint32_t from = 0; from < n || files.empty(); from += chunk) {
      const std::string f = work + "/nft-full-" + std::to_string(files.size()) + ".nft";
      std::string text = files.empty() ? nft_head() : std::string();
      text += nft_services(from, std::min(n, from + chunk), version, servers);
      write_file(f, text);
      files.push_back(f);
    }
    double gen_ms = ms_since(tg);
    uintmax_t input_bytes = 0;
    for (const auto& f : files) input_bytes += file_size(f);
    for (int r = 0; r < apply_runs; r++) {
      if (r > 0) run_ok({"nft", "delete", "table", "ip", "kube-proxy"});
      auto t0 = Clock::now();
      for (const auto& f : files) run_ok({"nft", "-f", f});
      applies.push_back(ms_since(t0));
    }
    double apply_ms = median(applies);
    const std::string list = work + "/nft-list.txt";
    run_ok({"nft", "list", "ruleset"}, "", list);
    std::printf("apply_ms=%.3f apply_all=%s gen_ms=%.3f apply_transactions=%zu input_bytes=%ju "
                "ruleset_bytes=%ju\n",
                apply_ms, join_ms(applies).c_str(), gen_ms, files.size(), input_bytes, file_size(list));
    for (int r = 0; r < sync_runs; r++) {
      uint32_t idx = targets[size_t(r) % targets.size()];
      auto old_bes = backends_of(idx, version[idx], servers);
      version[idx] ^= 1;
      auto new_bes = backends_of(idx, version[idx], servers);
      const std::string f = work + "/nft-sync.nft";
      write_file(f, nft_change(idx, old_bes, new_bes));
      auto t1 = Clock::now();
      run_ok({"nft", "-f", f});
      sync_ms.push_back(ms_since(t1));
    }
    uint32_t last = targets[size_t(sync_runs - 1) % targets.size()];
    run_ok({"nft", "list", "chain", "ip", "kube-proxy", nft_svc_chain(last)}, "", list);
    std::ifstream in(list);
    std::stringstream ss;
    ss << in.rdbuf();
    for (uint32_t ip : backends_of(last, version[last], servers))
      if (ss.str().find(nft_ep_chain(last, ip)) == std::string::npos)
        die("nftables: the last change is not in the service chain");
    std::printf("sync_ms=%.3f sync_all=%s\n", median(sync_ms), join_ms(sync_ms).c_str());
  } else if (dp == "weir") {
    WeirCtx w{a.need("datastore"), work + "/staging", a.need("pin-root")};
    fs::create_directories(w.staging);
    auto maps = weir::maps::WeirMaps::open_pinned(weir::maps::PinLayout{w.pin_root});
    if (!maps) die("opening weir's maps: " + maps.error().str());
    std::set<uint32_t> tset(targets.begin(), targets.end());
    // Chunk files of 1000 services; each sync target in a file of its own.
    std::vector<std::string> files;
    std::string chunk;
    int chunk_no = 0;
    auto flush_chunk = [&] {
      if (chunk.empty()) return;
      char name[64];
      std::snprintf(name, sizeof name, "svc-chunk-%04d.yaml", chunk_no++);
      write_file(w.staging + "/" + name, chunk);
      files.push_back(name);
      chunk.clear();
    };
    size_t in_chunk = 0;
    for (uint32_t i = 0; i < n; i++) {
      auto bes = backends_of(i, 0, servers);
      if (tset.count(i)) {
        std::string one;
        weir_write_service(one, i, bes);
        write_file(w.staging + "/" + weir_one_file(i), one);
        files.push_back(weir_one_file(i));
        continue;
      }
      weir_write_service(chunk, i, bes);
      if (++in_chunk == 1000) {
        flush_chunk();
        in_chunk = 0;
      }
    }
    flush_chunk();
    uintmax_t yaml_bytes = 0;
    for (const auto& f : files) yaml_bytes += file_size(w.staging + "/" + f);
    for (int r = 0; r < apply_runs; r++) {
      if (r > 0) {
        // From scratch again: every file moved back out, and the maps empty (past the agent's
        // minSyncPeriod) before the next apply starts.
        for (const auto& f : files) rename_out(w, f);
        auto tr = Clock::now();
        for (;;) {
          auto fe = maps->nat_fe.count();
          if (!fe) die("counting nat_fe: " + fe.error().str());
          if (*fe == 0) break;
          if (ms_since(tr) > timeout_s * 1000) die("weir: the service set was not removed in time");
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(400));
      }
      auto t0 = Clock::now();
      for (const auto& f : files) rename_into(w, f);
      // In effect: every frontend present, every backend written, and the services checked.
      for (;;) {
        auto fe = maps->nat_fe.count();
        if (!fe) die("counting nat_fe: " + fe.error().str());
        if (*fe >= n) {
          auto be = maps->nat_be.count();
          if (!be) die("counting nat_be: " + be.error().str());
          if (*be >= total_be && weir_in_effect(*maps, n - 1, backends_of(n - 1, 0, servers)) &&
              weir_in_effect(*maps, 0, backends_of(0, 0, servers)))
            break;
        }
        if (ms_since(t0) > timeout_s * 1000) die("weir: the service set was not in effect in time");
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
      applies.push_back(ms_since(t0));
    }
    double apply_ms = median(applies);
    std::printf("apply_ms=%.3f apply_all=%s input_bytes=%ju files=%zu\n", apply_ms,
                join_ms(applies).c_str(), yaml_bytes, files.size());
    for (int r = 0; r < sync_runs; r++) {
      // Past the agent's minSyncPeriod (200 ms in the lab), so the change is not held back by it.
      std::this_thread::sleep_for(std::chrono::milliseconds(400));
      uint32_t idx = targets[size_t(r) % targets.size()];
      version[idx] ^= 1;
      auto new_bes = backends_of(idx, version[idx], servers);
      std::string one;
      weir_write_service(one, idx, new_bes);
      write_file(w.staging + "/" + weir_one_file(idx), one);
      auto t1 = Clock::now();
      rename_into(w, weir_one_file(idx));
      while (!weir_in_effect(*maps, idx, new_bes)) {
        if (ms_since(t1) > timeout_s * 1000) die("weir: a service change was not in effect in time");
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
      sync_ms.push_back(ms_since(t1));
    }
    std::printf("sync_ms=%.3f sync_all=%s\n", median(sync_ms), join_ms(sync_ms).c_str());
    // Memory: the agent's RSS and the maps' memlock (their kernel memory as the kernel charges it).
    pid_t agent = pid_t(a.num("agent-pid", 0));
    long rss = agent > 0 ? status_kb(agent, "VmRSS:") : -1;
    long nat = maps->nat_fe.fd().fd() >= 0 ? fd_memlock(maps->nat_fe.fd().fd()) : -1;
    long natb = fd_memlock(maps->nat_be.fd().fd());
    long all = 0;
    for (int fd : {maps->nat_fe.fd().fd(), maps->nat_be.fd().fd(), maps->ct.fd().fd(),
                   maps->routes.fd().fd(), maps->ifstate.fd().fd(), maps->counters.fd().fd()})
      all += std::max(0L, fd_memlock(fd));
    // all_maps_bytes: the six service-path maps above (the policy maps hold nothing here).
    std::printf("agent_rss_kb=%ld nat_map_bytes=%ld all_maps_bytes=%ld\n", rss, nat + natb, all);
  } else {
    die("--dataplane: weir, iptables or nftables");
  }
  return 0;
}

// ---------------------------------------------------------------- load

void pin_cpu(int cpu) {
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) die_errno("sched_setaffinity " + std::to_string(cpu));
}

// Connects (blocking, with a timeout through SO_SNDTIMEO), returns the fd or -1 (errno set).
int connect_to(uint32_t ip, uint16_t port, int timeout_ms) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(ip);
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

// "ping\n" and one answer line; false on error or timeout.
bool request(int fd) {
  static const char ping[] = "ping\n";
  if (send(fd, ping, sizeof ping - 1, MSG_NOSIGNAL) != ssize_t(sizeof ping - 1)) return false;
  char buf[256];
  size_t got = 0;
  while (got < sizeof buf) {
    ssize_t r = recv(fd, buf + got, sizeof buf - got, 0);
    if (r <= 0) return false;
    got += size_t(r);
    if (std::memchr(buf, '\n', got)) return got > 1;
  }
  return false;
}

int cmd_load(const Args& a) {
  const uint32_t n = uint32_t(a.num("services", 1));
  const std::string mode = a.get("mode", "conn");
  const double duration = a.real("duration", 2);
  const int runs = int(a.num("runs", 3));
  const int conns = int(a.num("conns", 16));
  const double warmup = a.real("warmup", 0.5);
  pin_cpu(int(a.num("cpu", -1)));
  std::mt19937_64 rng(uint64_t(a.num("seed", 1)));
  std::uniform_int_distribution<uint32_t> pick(0, n - 1);
  // Warm-up, not recorded: caches, the servers' first accepts, the dataplane's first flows.
  for (auto end = Clock::now() + std::chrono::duration<double>(warmup); Clock::now() < end;) {
    int fd = connect_to(vip_of(pick(rng)), kSvcPort, 2000);
    if (fd < 0) continue;
    (void)request(fd);
    close(fd);
  }
  for (int run_no = 0; run_no < runs; run_no++) {
    std::map<std::string, long> errors;
    if (mode == "conn") {
      std::vector<double> lat;
      lat.reserve(200000);
      auto t0 = Clock::now();
      auto end = t0 + std::chrono::duration<double>(duration);
      long ok = 0;
      while (Clock::now() < end) {
        uint32_t idx = pick(rng);
        auto s = Clock::now();
        int fd = connect_to(vip_of(idx), kSvcPort, 2000);
        if (fd < 0) {
          errors[std::strerror(errno)]++;
          continue;
        }
        bool good = request(fd);
        close(fd);
        if (!good) {
          errors["no answer"]++;
          continue;
        }
        lat.push_back(std::chrono::duration<double, std::micro>(Clock::now() - s).count());
        ok++;
      }
      double secs = std::chrono::duration<double>(Clock::now() - t0).count();
      std::sort(lat.begin(), lat.end());
      auto pct = [&](double p) { return lat.empty() ? 0.0 : lat[std::min(lat.size() - 1, size_t(p * double(lat.size())))]; };
      long errs = 0;
      for (auto& [k, v] : errors) errs += v;
      std::printf("run=%d conns=%ld cps=%.1f p50_us=%.1f p90_us=%.1f p99_us=%.1f errors=%ld\n", run_no, ok,
                  double(ok) / secs, pct(0.50), pct(0.90), pct(0.99), errs);
    } else if (mode == "rr") {
      std::vector<int> fds;
      for (int i = 0; i < conns; i++) {
        int fd = connect_to(vip_of(pick(rng)), kSvcPort, 2000);
        if (fd < 0) die_errno("rr: connect");
        fds.push_back(fd);
      }
      auto t0 = Clock::now();
      auto end = t0 + std::chrono::duration<double>(duration);
      long ok = 0, errs = 0;
      size_t i = 0;
      while (Clock::now() < end) {
        if (request(fds[i])) ok++;
        else errs++;
        i = (i + 1) % fds.size();
      }
      double secs = std::chrono::duration<double>(Clock::now() - t0).count();
      for (int fd : fds) close(fd);
      std::printf("run=%d requests=%ld rps=%.1f rr_errors=%ld\n", run_no, ok, double(ok) / secs, errs);
    } else {
      die("--mode: conn or rr");
    }
    for (auto& [k, v] : errors) std::fprintf(stderr, "run %d: %ld x %s\n", run_no, v, k.c_str());
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: weir_svc_load apply --dataplane weir|iptables|nftables --services N [--apply-runs R] "
                 "--servers IP,... --work-dir DIR [--sync-runs R] [--full-sync-runs R] "
                 "[--iptables legacy|nft] [--nft-single-max N] [--nft-chunk N] "
                 "[--datastore DIR --pin-root P --agent-pid PID]\n"
                 "       weir_svc_load load --services N --mode conn|rr [--duration S] [--runs R] "
                 "[--cpu C] [--conns K]\n");
    return 2;
  }
  std::string cmd = argv[1];
  Args a = parse_args(argc, argv, 2);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  if (cmd == "apply") return cmd_apply(a);
  if (cmd == "load") return cmd_load(a);
  die("unknown command " + cmd);
}
