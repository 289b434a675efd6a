#include "lab/lab.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <thread>

#include "bpf/caps.h"
#include "dataplane/policy_info.h"
#include "datastore/store.h"
#include "lab/etcd_server.h"
#include "util/file.h"

namespace weir::lab {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kStateFile = "state.json";
// The lab's etcd member (etcd datastore), on the node netns's loopback.
constexpr const char* kAgentStartLine = "BPF enabled";
constexpr const char* kGatewayIp = "169.254.1.1";
constexpr uint32_t kBpfTcxIngress = 46;  // BPF_TCX_INGRESS (kernel 6.6+; not in libbpf 1.1)
constexpr uint32_t kBpfTcxEgress = 47;   // BPF_TCX_EGRESS

// ---------------------------------------------------------------- small helpers


std::string tail_lines(const std::string& text, size_t n) {
  size_t pos = text.size();
  if (pos > 0 && text[pos - 1] == '\n') --pos;
  for (size_t i = 0; i < n && pos > 0; ++i) {
    pos = text.rfind('\n', pos - 1);
    if (pos == std::string::npos) {
      pos = 0;
      break;
    }
  }
  std::string t = text.substr(pos == 0 ? 0 : pos + 1);
  while (!t.empty() && t.back() == '\n') t.pop_back();
  return t;
}

std::string file_tail(const std::string& path, size_t n) {
  auto t = read_file(path);
  return t ? tail_lines(*t, n) : std::string();
}

off_t file_size(const std::string& path) {
  struct stat sb {};
  return ::stat(path.c_str(), &sb) == 0 ? sb.st_size : 0;
}

// Waits until `path` contains `needle` after byte `offset`, the process dies, or the timeout.
// 1 = found, 0 = timeout, -1 = the process is gone.
int wait_for_log(const std::string& path, off_t offset, const std::string& needle,
                 const ProcessRecord& proc, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    auto text = read_file(path);
    if (text && static_cast<off_t>(text->size()) > offset &&
        text->find(needle, static_cast<size_t>(offset)) != std::string::npos)
      return 1;
    if (!process_alive(proc)) return -1;
    if (Clock::now() >= deadline) return 0;
    std::this_thread::sleep_for(30ms);
  }
}

bool valid_id(const std::string& id) {
  if (id.empty() || id.size() > 8) return false;
  return std::all_of(id.begin(), id.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); });
}

// A fresh id: 6 hex digits from the pid, stepping on when a lab with that id is recorded or
// its namespace exists (a stale lab from a recycled pid).
std::string make_id() {
  uint32_t base = static_cast<uint32_t>(::getpid()) & 0xffffff;
  for (uint32_t i = 0; i < 4096; ++i) {
    std::string id = fmt::format("{:06x}", (base + i * 0x9e37U) & 0xffffff);
    if (!fs::exists(Lab::default_state_dir(id)) && !netns_exists("weir-" + id + "-node")) return id;
  }
  return fmt::format("{:06x}", base);
}

// 3 bytes that identify the run in the pods' MACs: the id itself when it is 6 hex digits,
// else a 24-bit FNV-1a hash of it.
std::array<uint8_t, 3> id_bytes(const std::string& id) {
  bool hex6 = id.size() == 6 && std::all_of(id.begin(), id.end(), [](char c) {
                return std::isxdigit(static_cast<unsigned char>(c));
              });
  uint32_t v;
  if (hex6) {
    v = static_cast<uint32_t>(std::stoul(id, nullptr, 16));
  } else {
    uint32_t h = 2166136261U;
    for (char c : id) h = (h ^ static_cast<uint8_t>(c)) * 16777619U;
    v = (h >> 24) ^ (h & 0xffffff);
  }
  return {static_cast<uint8_t>(v >> 16), static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
}

struct Cidr4 {
  uint32_t network = 0;  // host order
  int len = 0;
};

Result<Cidr4> parse_cidr(const std::string& s) {
  auto slash = s.find('/');
  if (slash == std::string::npos) return make_error("pod CIDR '{}': expected a.b.c.d/len", s);
  in_addr a{};
  if (::inet_pton(AF_INET, s.substr(0, slash).c_str(), &a) != 1)
    return make_error("pod CIDR '{}': invalid address", s);
  int len = -1;
  try {
    len = std::stoi(s.substr(slash + 1));
  } catch (...) {
  }
  if (len < 8 || len > 30) return make_error("pod CIDR '{}': prefix length must be 8..30", s);
  uint32_t mask = len == 0 ? 0 : ~0U << (32 - len);
  return Cidr4{ntohl(a.s_addr) & mask, len};
}

std::string ip_str(uint32_t host_order) {
  in_addr a{htonl(host_order)};
  char buf[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

// `ip -n <netns> -batch -` with the commands on stdin: one exec per namespace and step.
Status ip_batch(const std::string& netns, const std::vector<std::string>& cmds) {
  std::string in;
  for (const auto& c : cmds) in += c + "\n";
  RunOptions ro;
  ro.stdin_data = in;
  auto r = run_checked({"ip", "-n", netns, "-batch", "-"}, ro);
  if (!r)
    return r.error().wrap(fmt::format("configuring netns {} ({})", netns, fmt::join(cmds, "; ")));
  return {};
}

Status ip_cmd(const std::vector<std::string>& args) {
  std::vector<std::string> argv{"ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = run_checked(argv);
  if (!r) return r.error();
  return {};
}

// The pin root is removed only when it is clearly a lab's: /sys/fs/bpf/weir-<something>,
// never the bpffs mount itself nor the production default /sys/fs/bpf/weir.
bool removable_pin_root(const std::string& p) {
  const std::string prefix = "/sys/fs/bpf/weir-";
  return p.size() > prefix.size() && p.compare(0, prefix.size(), prefix) == 0 &&
         p.find("..") == std::string::npos;
}

// ---------------------------------------------------------------- JSON

json to_j(const ProcessRecord& r) {
  return json{{"pid", r.pid}, {"start_time", r.start_time}, {"what", r.what}};
}
ProcessRecord proc_from_j(const json& j) {
  ProcessRecord r;
  r.pid = j.at("pid").get<pid_t>();
  r.start_time = j.at("start_time").get<uint64_t>();
  r.what = j.value("what", "");
  return r;
}

}  // namespace

// ---------------------------------------------------------------- LabState

std::string LabState::to_json() const {
  json j;
  j["version"] = 2;
  j["id"] = id;
  j["state_dir"] = state_dir;
  j["datastore_dir"] = datastore_dir;
  j["pod_cidr"] = pod_cidr;
  j["weir_binary"] = weir_binary;
  j["agent_log_level"] = agent_log_level;
  j["agent_tc_mode"] = agent_tc_mode;
  j["agent_metrics_listen"] = agent_metrics_listen;
  j["agent_start_timeout_ms"] = agent_start_timeout.count();
  j["datastore"] = datastore;
  j["etcd_members"] = etcd_members;
  j["underlay_netns"] = underlay_netns;
  j["underlay_cidr"] = underlay_cidr;
  j["encap"] = encap;
  j["nodes"] = json::array();
  for (const auto& n : nodes)
    j["nodes"].push_back({{"name", n.name},
                          {"pin_root", n.pin_root},
                          {"pod_cidr", n.pod_cidr},
                          {"underlay_ip", n.underlay_ip},
                          {"agent_log", n.agent_log},
                          {"agent", n.agent ? to_j(*n.agent) : json(nullptr)}});
  j["netns"] = netns;
  j["pods"] = json::array();
  for (const auto& p : pods)
    j["pods"].push_back({{"name", p.name},
                         {"netns", p.netns},
                         {"ip", p.ip},
                         {"mac", p.mac},
                         {"host_if", p.host_if},
                         {"node", p.node}});
  j["servers"] = json::array();
  for (const auto& s : servers) j["servers"].push_back(to_j(s));
  j["guardian"] = guardian ? to_j(*guardian) : json(nullptr);
  j["complete"] = complete;
  return j.dump(2) + "\n";
}

Result<LabState> LabState::from_json(const std::string& text, const std::string& what) {
  try {
    json j = json::parse(text);
    if (j.value("version", 1) != 2)
      return make_error("{}: a lab recorded by another version of weir (record version {}); remove "
                        "it with that version's `weir lab down`",
                        what, j.value("version", 1));
    LabState s;
    s.id = j.at("id").get<std::string>();
    s.state_dir = j.at("state_dir").get<std::string>();
    s.datastore_dir = j.at("datastore_dir").get<std::string>();
    s.pod_cidr = j.value("pod_cidr", "");
    s.weir_binary = j.at("weir_binary").get<std::string>();
    s.agent_log_level = j.value("agent_log_level", "info");
    s.agent_tc_mode = j.value("agent_tc_mode", "auto");
    s.agent_metrics_listen = j.value("agent_metrics_listen", "");
    s.agent_start_timeout = std::chrono::milliseconds(j.value("agent_start_timeout_ms", 120000));
    s.datastore = j.value("datastore", "dir");
    s.etcd_members = j.value("etcd_members", 1);
    s.underlay_netns = j.value("underlay_netns", "");
    s.underlay_cidr = j.value("underlay_cidr", "");
    s.encap = j.value("encap", "none");
    for (const auto& n : j.at("nodes")) {
      LabNode node;
      node.name = n.at("name").get<std::string>();
      node.pin_root = n.at("pin_root").get<std::string>();
      node.pod_cidr = n.value("pod_cidr", "");
      node.underlay_ip = n.value("underlay_ip", "");
      node.agent_log = n.at("agent_log").get<std::string>();
      if (!n.at("agent").is_null()) node.agent = proc_from_j(n.at("agent"));
      s.nodes.push_back(std::move(node));
    }
    if (s.nodes.empty()) return make_error("{}: the lab records no node", what);
    s.netns = j.at("netns").get<std::vector<std::string>>();
    for (const auto& p : j.at("pods"))
      s.pods.push_back(Pod{p.at("name").get<std::string>(), p.at("netns").get<std::string>(),
                           p.at("ip").get<std::string>(), p.at("mac").get<std::string>(),
                           p.at("host_if").get<std::string>(), p.at("node").get<std::string>()});
    for (const auto& p : j.at("servers")) s.servers.push_back(proc_from_j(p));
    if (j.contains("guardian") && !j.at("guardian").is_null())
      s.guardian = proc_from_j(j.at("guardian"));
    s.complete = j.value("complete", false);
    for (const auto& n : s.netns)
      if (n.rfind("weir-", 0) != 0)
        return make_error("{}: namespace '{}' is not a weir lab's", what, n);
    return s;
  } catch (const std::exception& e) {
    return make_error("{}: invalid lab state: {}", what, e.what());
  }
}

std::string AttachedProgram::str() const {
  return fmt::format("{}{} {} prog id {}{}", node.empty() ? "" : node + " ", ifname, hook, prog_id,
                     prog_name.empty() ? "" : " (" + prog_name + ")");
}

// ---------------------------------------------------------------- Lab: lifetime

std::string Lab::default_state_dir(const std::string& id) { return "/run/weir-lab-" + id; }

std::vector<std::string> Lab::list_state_dirs() {
  std::vector<std::string> dirs;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/run", ec)) {
    auto name = e.path().filename().string();
    if (name.rfind("weir-lab-", 0) == 0 && fs::exists(e.path() / kStateFile))
      dirs.push_back(e.path().string());
  }
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

Lab::Lab(Lab&& o) noexcept
    : st_(std::move(o.st_)),
      owned_(std::exchange(o.owned_, false)),
      guard_pipe_(std::move(o.guard_pipe_)),
      last_agent_exit_(o.last_agent_exit_) {}

Lab& Lab::operator=(Lab&& o) noexcept {
  if (this != &o) {
    if (owned_) {
      if (auto s = down(); !s)
        spdlog::error("lab {}: teardown failed: {}", st_.id, s.error().str());
    }
    st_ = std::move(o.st_);
    owned_ = std::exchange(o.owned_, false);
    guard_pipe_ = std::move(o.guard_pipe_);
    last_agent_exit_ = o.last_agent_exit_;
  }
  return *this;
}

Lab::~Lab() {
  if (!owned_) return;
  if (auto s = down(); !s)
    spdlog::error("lab {}: teardown failed: {} (retry with `weir lab down --id {}`)", st_.id,
                  s.error().str(), st_.id);
}

void Lab::release() {
  owned_ = false;
  stop_guardian(/*stand_down=*/true);
}

Status Lab::save() const {
  if (st_.state_dir.empty()) return make_error("lab has no state directory");
  return write_file_atomic(st_.state_dir, kStateFile, st_.to_json());
}

Result<Lab> Lab::load(const std::string& state_dir) {
  std::string path = state_dir + "/" + kStateFile;
  auto text = read_file(path);
  if (!text)
    return Error{ENOENT, fmt::format("no lab recorded in {} ({} is missing)", state_dir, path)};
  auto st = LabState::from_json(*text, path);
  if (!st) return st.error();
  // down() removes the recorded state dir: it must be the directory the record was read from.
  std::error_code e1;
  if (!fs::equivalent(st->state_dir, state_dir, e1) || e1)
    return make_error("{}: records state_dir '{}', not {}", path, st->state_dir, state_dir);
  return Lab(std::move(*st), /*owned=*/false);
}

Result<Lab> Lab::up(const LabSpec& spec) {
  if (::geteuid() != 0)
    return Error{EPERM, "weir lab needs root (it creates network namespaces and loads BPF)"};
  const bool cluster = spec.nodes > 0;
  if (spec.nodes < 0 || spec.nodes > 20) return make_error("nodes must be 1..20, got {}", spec.nodes);
  const int max_pods = cluster ? 61 : 99;
  if (spec.pods < 1 || spec.pods > max_pods)
    return make_error("pods{} must be 1..{}, got {}", cluster ? " per node" : "", max_pods, spec.pods);
  std::string id = spec.run_id.empty() ? make_id() : spec.run_id;
  if (!valid_id(id)) return make_error("run id '{}': use 1..8 characters of [a-z0-9]", id);
  std::string longest_if = cluster ? fmt::format("weir{}n{}p{}", id, spec.nodes, spec.pods)
                                   : fmt::format("weir{}p{}", id, spec.pods);
  if (longest_if.size() > 15)
    return make_error(
        "run id '{}' is too long for this lab: interface names like {} would have {} characters "
        "(max 15)",
        id, longest_if, longest_if.size());
  std::string pod_cidr = spec.pod_cidr.empty() ? (cluster ? "10.65.0.0/16" : "10.65.0.0/24") : spec.pod_cidr;
  auto cidr = parse_cidr(pod_cidr);
  if (!cidr) return cidr.error();
  uint64_t size = 1ULL << (32 - cidr->len);
  if (!cluster && static_cast<uint64_t>(spec.pods) + 2 > size - 1)
    return make_error("pod CIDR {} is too small for {} pods", pod_cidr, spec.pods);
  if (cluster && size / 64 < static_cast<uint64_t>(spec.nodes))
    return make_error("pod CIDR {} has room for {} nodes' /26 blocks, not {}", pod_cidr, size / 64,
                      spec.nodes);
  if (cluster) {
    auto ul = parse_cidr(spec.underlay_cidr);
    if (!ul) return ul.error().wrap("underlay CIDR");
    if ((1ULL << (32 - ul->len)) < static_cast<uint64_t>(spec.nodes) + 3)
      return make_error("underlay CIDR {} is too small for {} nodes", spec.underlay_cidr, spec.nodes);
    if (spec.encap != "none" && spec.encap != "vxlan")
      return make_error("encapsulation \"{}\": none (routed) or vxlan", spec.encap);
    if (spec.underlay_mtu < 1280 || spec.underlay_mtu > 9000)
      return make_error("underlay MTU {} is out of range 1280..9000", spec.underlay_mtu);
  } else if (spec.encap != "none") {
    return make_error("encapsulation {} needs a cluster (--nodes)", spec.encap);
  }

  // (A level the agent does not know is left to the agent, which refuses it with its message.)
  if (spec.agent_log_level == "warn" || spec.agent_log_level == "warning" ||
      spec.agent_log_level == "error" || spec.agent_log_level == "critical" ||
      spec.agent_log_level == "off")
    return make_error("agent log level \"{}\": the lab needs trace, debug or info (it waits for the "
                      "agent's info line \"{}\")",
                      spec.agent_log_level, kAgentStartLine);
  LabState st;
  st.id = id;
  st.state_dir = spec.state_dir.empty() ? default_state_dir(id) : spec.state_dir;
  st.datastore_dir = st.state_dir + "/datastore";
  std::string pin_base = spec.pin_root.empty() ? "/sys/fs/bpf/weir-lab-" + id : spec.pin_root;
  if (pin_base.find('.') != std::string::npos)
    return make_error("pin root '{}': bpffs names may not contain dots", pin_base);
  st.pod_cidr = pod_cidr;
  st.agent_log_level = spec.agent_log_level;
  st.agent_tc_mode = spec.agent_tc_mode;
  st.agent_metrics_listen = spec.agent_metrics_listen;
  st.agent_start_timeout = spec.agent_start_timeout;
  if (spec.datastore != "dir" && spec.datastore != "etcd")
    return make_error("lab datastore \"{}\": dir or etcd", spec.datastore);
  st.datastore = spec.datastore;
  if (spec.etcd_members != 1 && spec.etcd_members != 3)
    return make_error("etcd members: 1 or 3, not {}", spec.etcd_members);
  st.etcd_members = spec.etcd_members;
  if (spec.datastore == "etcd")
    if (auto e = find_program("etcd"); !e) return e.error().wrap("the lab's etcd datastore needs etcd-server");
  if (cluster) {
    st.underlay_netns = "weir-" + id + "-ul";
    st.underlay_cidr = spec.underlay_cidr;
    st.encap = spec.encap;
    auto ul = parse_cidr(spec.underlay_cidr);
    for (int k = 1; k <= spec.nodes; ++k) {
      LabNode n;
      n.name = fmt::format("weir-{}-n{}", id, k);
      n.pin_root = fmt::format("{}-n{}", pin_base, k);
      n.pod_cidr = fmt::format("{}/26", ip_str(cidr->network + static_cast<uint32_t>(k - 1) * 64));
      n.underlay_ip = ip_str(ul->network + static_cast<uint32_t>(k) + 1);
      n.agent_log = fmt::format("{}/agent-n{}.log", st.state_dir, k);
      st.nodes.push_back(std::move(n));
    }
  } else {
    LabNode n;
    n.name = "weir-" + id + "-node";
    n.pin_root = pin_base;
    n.pod_cidr = pod_cidr;
    n.agent_log = st.state_dir + "/agent.log";
    st.nodes.push_back(std::move(n));
  }
  if (spec.weir_binary.empty()) {
    std::error_code ec;
    auto self = fs::read_symlink("/proc/self/exe", ec);
    if (ec) return Error{ec.value(), "resolving /proc/self/exe"};
    st.weir_binary = self.string();
  } else {
    std::error_code ec;
    auto abs = fs::canonical(spec.weir_binary, ec);
    if (ec) return Error{ec.value(), fmt::format("weir binary {}", spec.weir_binary)};
    st.weir_binary = abs.string();
  }
  if (::access(st.weir_binary.c_str(), X_OK) != 0)
    return errno_error(fmt::format("weir binary {}", st.weir_binary));
  if (fs::exists(st.state_dir))
    return Error{EEXIST, fmt::format("lab {} already exists ({}); remove it with `weir lab down "
                                     "--id {}`",
                                     id, st.state_dir, id)};
  for (const auto& n : st.nodes)
    if (netns_exists(n.name))
      return Error{EEXIST, fmt::format("network namespace {} already exists: a lab with id {} is "
                                       "running or was left behind",
                                       n.name, id)};
  if (auto ip = find_program("ip"); !ip) return ip.error().wrap("the lab needs iproute2");

  if (::mkdir(st.state_dir.c_str(), 0700) != 0)
    return errno_error("creating lab state directory " + st.state_dir);
  Lab lab(std::move(st), /*owned=*/true);
  // From here on, the destructor of `lab` removes whatever was created.
  if (::mkdir(lab.st_.datastore_dir.c_str(), 0755) != 0)
    return errno_error("creating " + lab.st_.datastore_dir);
  WEIR_TRY(lab.save());
  if (spec.guard) {
    if (auto s = lab.start_guardian(); !s) return s.error().wrap("starting the lab guardian");
  }
  if (auto s = cluster ? lab.create_cluster(spec) : lab.create_topology(spec); !s)
    return s.error().wrap(fmt::format("lab {}: building the topology", id));
  lab.st_.complete = true;
  WEIR_TRY(lab.save());
  spdlog::debug("lab {}: topology up ({} nodes, {} pods)", id, lab.st_.nodes.size(),
                lab.st_.pods.size());
  if (spec.start_agent) {
    if (auto s = lab.start_agent(); !s) return s.error().wrap(fmt::format("lab {}", id));
  }
  return lab;
}

namespace {

// Switches off the named features of `ifname` in the calling thread's namespace (ethtool's
// SIOCETHTOOL: the feature strings give the bit of each name, as `ethtool -K` finds them).
Status disable_features(const std::string& ifname, const std::vector<std::string>& names) {
  Fd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) return errno_error("socket for SIOCETHTOOL");
  auto ioctl = [&](void* data, const char* what) -> Status {
    ifreq ifr{};
    std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname.c_str());
    ifr.ifr_data = static_cast<char*>(data);
    if (::ioctl(sock.get(), SIOCETHTOOL, &ifr) != 0)
      return errno_error(fmt::format("{} on {}", what, ifname));
    return {};
  };
  std::vector<uint8_t> info_buf(sizeof(ethtool_sset_info) + sizeof(uint32_t));
  auto* info = reinterpret_cast<ethtool_sset_info*>(info_buf.data());
  info->cmd = ETHTOOL_GSSET_INFO;
  info->sset_mask = 1ULL << ETH_SS_FEATURES;
  WEIR_TRY(ioctl(info, "ETHTOOL_GSSET_INFO"));
  const uint32_t count = info->data[0];
  std::vector<uint8_t> str_buf(sizeof(ethtool_gstrings) + size_t{count} * ETH_GSTRING_LEN);
  auto* strings = reinterpret_cast<ethtool_gstrings*>(str_buf.data());
  strings->cmd = ETHTOOL_GSTRINGS;
  strings->string_set = ETH_SS_FEATURES;
  strings->len = count;
  WEIR_TRY(ioctl(strings, "ETHTOOL_GSTRINGS"));
  const uint32_t blocks = (count + 31) / 32;
  std::vector<uint8_t> set_buf(sizeof(ethtool_sfeatures) + blocks * sizeof(ethtool_set_features_block));
  auto* set = reinterpret_cast<ethtool_sfeatures*>(set_buf.data());
  set->cmd = ETHTOOL_SFEATURES;
  set->size = blocks;
  for (const auto& name : names) {
    uint32_t bit = count;
    for (uint32_t i = 0; i < count; ++i)
      if (name == reinterpret_cast<const char*>(strings->data + size_t{i} * ETH_GSTRING_LEN)) bit = i;
    if (bit == count) return make_error("{}: the kernel has no feature named {}", ifname, name);
    set->features[bit / 32].valid |= 1U << (bit % 32);  // requested stays 0: off
  }
  return ioctl(set, "ETHTOOL_SFEATURES");
}

// A node namespace's settings: forwarding on, no reverse-path filter, no IPv6 noise, and the
// pods' gateway 169.254.1.1 as a local address on lo. The node answers ARP for it on every
// host-side veth with that veth's MAC, which is what proxy ARP gives a Calico node whose default
// route leaves through another device. (kernels without the dummy driver exist.) proxy_arp=1 is
// still set on the host-side veths, as on a real node.
Status setup_node_netns(const std::string& node) {
  WEIR_TRY(set_sysctl(node, "net.ipv4.ip_forward", "1"));
  WEIR_TRY(set_sysctl(node, "net.ipv4.conf.all.rp_filter", "0"));
  WEIR_TRY(set_sysctl(node, "net.ipv4.conf.default.rp_filter", "0"));
  (void)set_sysctl(node, "net.ipv6.conf.all.disable_ipv6", "1");  // no IPv6 noise (if any)
  (void)set_sysctl(node, "net.ipv6.conf.default.disable_ipv6", "1");
  WEIR_TRY(set_sysctl(node, "net.ipv4.conf.all.arp_ignore", "0"));
  WEIR_TRY(set_sysctl(node, "net.ipv4.conf.default.arp_ignore", "0"));
  return ip_batch(node, {"link set lo up", fmt::format("addr add {}/32 dev lo", kGatewayIp)});
}

}  // namespace

Status Lab::create_topology(const LabSpec& spec) {
  const std::string node = node_netns();
  const bool etcd = st_.datastore == "etcd";
  auto write_config = [&] {
    return write_resource("dataplaneconfig.yaml",
                          dataplane_config_yaml(spec.min_sync_period, spec.conntrack_scan_period, ""));
  };
  if (!etcd) WEIR_TRY(write_config());

  // Node namespace: recorded, then created.
  st_.netns.push_back(node);
  WEIR_TRY(save());
  WEIR_TRY(ip_cmd({"netns", "add", node}));
  WEIR_TRY(setup_node_netns(node));
  if (etcd) {
    WEIR_TRY(start_etcd());
    WEIR_TRY(write_config());
  }
  return add_pods(spec, 0);
}

Status Lab::create_cluster(const LabSpec& spec) {
  const bool etcd = st_.datastore == "etcd";
  const bool vxlan = st_.encap == "vxlan";
  auto ul = parse_cidr(st_.underlay_cidr);
  if (!ul) return ul.error();
  const std::string ul_ns = st_.underlay_netns;
  const std::string bridge_ip = ip_str(ul->network + 1);

  // The underlay: a bridge in a namespace of its own (a switch the nodes hang off), with the
  // first address of the underlay CIDR (the lab's etcd listens there).
  st_.netns.push_back(ul_ns);
  WEIR_TRY(save());
  WEIR_TRY(ip_cmd({"netns", "add", ul_ns}));
  (void)set_sysctl(ul_ns, "net.ipv6.conf.all.disable_ipv6", "1");
  (void)set_sysctl(ul_ns, "net.ipv6.conf.default.disable_ipv6", "1");
  WEIR_TRY(ip_batch(ul_ns, {"link set lo up", "link add weirbr type bridge",
                            fmt::format("link set weirbr mtu {}", spec.underlay_mtu),
                            fmt::format("addr add {}/{} dev weirbr", bridge_ip, ul->len),
                            "link set weirbr up"}));
  std::string config = dataplane_config_yaml(spec.min_sync_period, spec.conntrack_scan_period, "",
                                             vxlan, spec.underlay_mtu);
  if (etcd) WEIR_TRY(start_etcd());
  WEIR_TRY(write_resource("dataplaneconfig.yaml", config));

  for (size_t k = 0; k < st_.nodes.size(); ++k) {
    const LabNode n = st_.nodes[k];
    st_.netns.push_back(n.name);
    WEIR_TRY(save());
    WEIR_TRY(ip_cmd({"netns", "add", n.name}));
    WEIR_TRY(setup_node_netns(n.name));
    // Its underlay interface: eth0 in the node, port n<K> of the bridge.
    std::string port = fmt::format("n{}", k + 1);
    WEIR_TRY(ip_batch(ul_ns, {fmt::format("link add {} mtu {} type veth peer name eth0 mtu {} netns {}",
                                          port, spec.underlay_mtu, spec.underlay_mtu, n.name),
                              fmt::format("link set {} master weirbr", port),
                              fmt::format("link set {} up", port)}));
    WEIR_TRY(ip_batch(n.name, {fmt::format("addr add {}/{} dev eth0", n.underlay_ip, ul->len),
                               "link set eth0 up"}));
    // The underlay is a wire: what leaves a node's eth0 is frames of at most the MTU, as a NIC
    // (tunnel TSO in hardware, or the kernel's GSO in software) puts them on a real one. A veth
    // with tunnel segmentation on would hand the next node whole 64 KB VXLAN GSO packets, which
    // no wire carries (weir_from_ul counts them as failed decapsulation).
    WEIR_TRY(in_netns(n.name, [] {
      return disable_features("eth0", {"tx-udp_tnl-segmentation", "tx-udp_tnl-csum-segmentation"});
    }));
    WEIR_TRY(write_resource(fmt::format("node-n{}.yaml", k + 1),
                            node_yaml(n.name, n.underlay_ip, n.pod_cidr)));
    WEIR_TRY(add_pods(spec, k));
  }
  return {};
}

Status Lab::add_pods(const LabSpec& spec, size_t node_index) {
  const LabNode node = st_.nodes.at(node_index);
  auto cidr = parse_cidr(node.pod_cidr);
  if (!cidr) return cidr.error();
  auto idb = id_bytes(st_.id);
  const bool cluster = this->cluster();
  // With VXLAN the pods' MTU leaves room for the 50 bytes of outer headers (model::pod_mtu).
  const int mtu = cluster && st_.encap == "vxlan" ? spec.underlay_mtu - 50 : spec.underlay_mtu;
  for (int j = 1; j <= spec.pods; ++j) {
    Pod p;
    int k = static_cast<int>(node_index) + 1;
    p.name = cluster ? fmt::format("n{}-pod{}", k, j) : fmt::format("pod{}", j);
    p.netns = fmt::format("weir-{}-{}", st_.id, p.name);
    p.ip = ip_str(cidr->network + static_cast<uint32_t>(j) + 1);
    // 02 (locally administered), 77 for one node or the node's number, the run id, the pod.
    p.mac = fmt::format("02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", cluster ? k : 0x77, idb[0], idb[1],
                        idb[2], j);
    p.host_if = cluster ? fmt::format("weir{}n{}p{}", st_.id, k, j) : fmt::format("weir{}p{}", st_.id, j);
    p.node = node.name;
    st_.pods.push_back(p);
    st_.netns.push_back(p.netns);
    WEIR_TRY(save());
    WEIR_TRY(ip_cmd({"netns", "add", p.netns}));
    (void)set_sysctl(p.netns, "net.ipv6.conf.all.disable_ipv6", "1");
    (void)set_sysctl(p.netns, "net.ipv6.conf.default.disable_ipv6", "1");
    // The veth is created inside the node netns with its peer directly in the pod netns:
    // nothing ever appears in the root namespace.
    WEIR_TRY(ip_batch(node.name, {fmt::format("link add {} mtu {} type veth peer name eth0 address {} mtu {} netns {}",
                                              p.host_if, mtu, p.mac, mtu, p.netns)}));
    WEIR_TRY(ip_batch(
        p.netns, {"link set lo up", fmt::format("addr add {}/32 dev eth0", p.ip),
                  "link set eth0 up", fmt::format("route add {} dev eth0 scope link", kGatewayIp),
                  fmt::format("route add default via {} dev eth0", kGatewayIp)}));
    WEIR_TRY(set_sysctl_path(node.name, fmt::format("net/ipv4/conf/{}/proxy_arp", p.host_if), "1"));
    WEIR_TRY(ip_batch(node.name, {fmt::format("link set {} up", p.host_if),
                                  fmt::format("route add {}/32 dev {}", p.ip, p.host_if)}));
    WEIR_TRY(write_resource(fmt::format("wep-{}.yaml", p.name),
                            workload_endpoint_yaml(p.name, node.name, p.host_if, p.ip, p.mac)));
  }
  return {};
}

Status Lab::start_guardian() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return errno_error("pipe");
  Fd rd(fds[0]), wr(fds[1]);
  SpawnOptions so;
  so.new_session = true;     // Ctrl-C on the test's terminal must not kill the guardian
  so.inherit_stderr = true;  // its messages end up where the owner's would
  so.pass_fd = rd.get();
  so.on_forked = [this](const ProcessRecord& r) {
    st_.guardian = r;
    st_.guardian->what = "guardian";
    return save();
  };
  auto rec = spawn({st_.weir_binary, "lab", "guard", "--state-dir", st_.state_dir}, so);
  if (!rec) return rec.error();
  guard_pipe_ = std::move(wr);
  return {};
}

void Lab::stop_guardian(bool stand_down) {
  if (!guard_pipe_) return;
  if (stand_down) {
    char r = 'r';
    if (::write(guard_pipe_.get(), &r, 1) != 1)
      spdlog::warn("lab {}: could not tell the guardian to stand down", st_.id);
  }
  guard_pipe_.reset();
  if (st_.guardian) {
    auto w = wait_process(*st_.guardian, 10s);
    if (!w) spdlog::warn("lab {}: guardian: {}", st_.id, w.error().str());
    st_.guardian.reset();
    if (stand_down && fs::exists(st_.state_dir + "/" + kStateFile)) (void)save();
  }
}

Status Lab::down() {
  std::vector<std::string> problems;
  bool have_state_dir = !st_.state_dir.empty() && fs::exists(st_.state_dir);
  auto save_if = [&] {
    if (have_state_dir) (void)save();
  };
  for (auto& n : st_.nodes) {
    if (!n.agent) continue;
    auto r = terminate_process(*n.agent, SIGTERM, 10s);
    if (!r)
      problems.push_back(fmt::format("stopping the agent of {}: {}", n.name, r.error().str()));
    else
      last_agent_exit_ = *r;
    n.agent.reset();
    save_if();
  }
  for (const auto& s : st_.servers) {
    auto r = terminate_process(s, SIGTERM, 3s);
    if (!r) problems.push_back(fmt::format("stopping {}: {}", s.what, r.error().str()));
  }
  st_.servers.clear();
  save_if();
  for (const auto& n : st_.nodes) {
    bool cleaned = false;
    if (netns_exists(n.name) && !st_.weir_binary.empty()) {
      auto r = run_weir_on(n.name, {"bpf", "cleanup"}, 60s);
      if (!r) spdlog::debug("lab {}: weir bpf cleanup on {}: {}", st_.id, n.name, r.error().str());
      cleaned = r.ok();
    }
    if (!cleaned && !n.pin_root.empty()) {
      // The node namespace is gone (or cleanup failed): the agent's files beside the pins
      // (/run/weir/<pin root name>) are still removed, and only those.
      for (const auto& l : dataplane::remove_state_files(dataplane::default_state_dir(n.pin_root)))
        spdlog::debug("lab {}: {}", st_.id, l);
    }
  }
  for (auto it = st_.netns.rbegin(); it != st_.netns.rend(); ++it) {
    if (!netns_exists(*it)) continue;
    if (auto s = ip_cmd({"netns", "del", *it}); !s) problems.push_back(s.error().str());
  }
  for (const auto& n : st_.nodes) {
    if (n.pin_root.empty() || !fs::exists(n.pin_root)) continue;
    if (removable_pin_root(n.pin_root)) {
      std::error_code ec;
      fs::remove_all(n.pin_root, ec);
      if (ec) problems.push_back(fmt::format("removing pin root {}: {}", n.pin_root, ec.message()));
    } else {
      spdlog::warn("lab {}: pin root {} left in place (not a /sys/fs/bpf/weir-* path)", st_.id,
                   n.pin_root);
    }
  }
  if (!problems.empty()) {
    save_if();
    return make_error("lab {}: teardown incomplete (state kept in {}): {}", st_.id, st_.state_dir,
                      fmt::join(problems, "; "));
  }
  if (have_state_dir) {
    std::error_code ec;
    fs::remove_all(st_.state_dir, ec);
    if (ec) return make_error("lab {}: removing {}: {}", st_.id, st_.state_dir, ec.message());
  }
  stop_guardian(/*stand_down=*/false);  // it sees EOF, finds no record, exits
  owned_ = false;
  spdlog::debug("lab {}: down", st_.id);
  return {};
}

// ---------------------------------------------------------------- Lab: topology

Result<Pod> Lab::pod(const std::string& name) const {
  for (const auto& p : st_.pods)
    if (p.name == name) return p;
  return Error{ENOENT, fmt::format("lab {} has no pod '{}'", st_.id, name)};
}

std::vector<Pod> Lab::pods_of(const std::string& node) const {
  const LabNode* n = find_node(node);
  std::vector<Pod> out;
  if (n == nullptr) return out;
  for (const auto& p : st_.pods)
    if (p.node == n->name) out.push_back(p);
  return out;
}

const LabNode* Lab::find_node(const std::string& name) const {
  if (name.empty()) return &st_.nodes.at(0);
  for (const auto& n : st_.nodes)
    if (n.name == name || (cluster() && n.name == fmt::format("weir-{}-{}", st_.id, name))) return &n;
  return nullptr;
}

LabNode* Lab::find_node(const std::string& name) {
  return const_cast<LabNode*>(std::as_const(*this).find_node(name));
}

Result<LabNode> Lab::node(const std::string& name) const {
  const LabNode* n = find_node(name);
  if (n == nullptr) return Error{ENOENT, fmt::format("lab {} has no node '{}'", st_.id, name)};
  return *n;
}

// ---------------------------------------------------------------- Lab: agent

bool Lab::agent_running(const std::string& node) const {
  const LabNode* n = find_node(node);
  return n != nullptr && n->agent && process_alive(*n->agent);
}

pid_t Lab::agent_pid(const std::string& node) const {
  const LabNode* n = find_node(node);
  return n != nullptr && n->agent ? n->agent->pid : 0;
}

std::string Lab::agent_log_path(const std::string& node) const {
  const LabNode* n = find_node(node);
  return n != nullptr ? n->agent_log : std::string();
}

std::string Lab::agent_log(const std::string& node) const {
  auto t = read_file(agent_log_path(node));
  return t ? *t : std::string();
}

Status Lab::start_agent(const std::string& node, uint64_t drop_capabilities) {
  std::vector<LabNode*> targets;
  if (node.empty()) {
    for (auto& n : st_.nodes)
      if (!(n.agent && process_alive(*n.agent))) targets.push_back(&n);
  } else {
    LabNode* n = find_node(node);
    if (n == nullptr) return Error{ENOENT, fmt::format("lab {} has no node '{}'", st_.id, node)};
    if (n->agent && process_alive(*n->agent))
      return Error{EBUSY, fmt::format("lab {}: the agent of {} is already running (pid {})", st_.id,
                                      n->name, n->agent->pid)};
    targets.push_back(n);
  }
  // Spawn them all, then wait for each: the agents verify their programs side by side.
  std::vector<std::pair<LabNode*, off_t>> started;
  std::optional<Error> failed;
  for (LabNode* n : targets) {
    std::vector<std::string> argv{st_.weir_binary, "--pin-root", n->pin_root, "--log-level",
                                  st_.agent_log_level, "agent", "--datastore", datastore_spec(),
                                  "--node", n->name, "--tc-mode", st_.agent_tc_mode};
    if (!st_.agent_metrics_listen.empty()) {
      argv.emplace_back("--metrics-listen");
      argv.push_back(st_.agent_metrics_listen);
    }
    {
      std::ofstream marker(n->agent_log, std::ios::app);
      std::string without;
      for (int cap = 0; cap < 64; ++cap)
        if (caps::has(drop_capabilities, cap)) without += (without.empty() ? ", without " : " ") + caps::name(cap);
      marker << fmt::format("---- weir lab {}: starting {} (in netns {}{})\n", st_.id, join_argv(argv),
                            n->name, without);
    }
    off_t offset = file_size(n->agent_log);
    SpawnOptions so;
    so.netns = n->name;
    so.output_path = n->agent_log;
    so.drop_capabilities = drop_capabilities;
    so.on_forked = [this, n](const ProcessRecord& r) {
      n->agent = r;
      n->agent->what = "agent " + n->name;
      return save();
    };
    auto rec = spawn(argv, so);
    if (!rec) {
      failed = rec.error().wrap(fmt::format("starting the agent of {}", n->name));
      break;
    }
    started.emplace_back(n, offset);
  }
  auto deadline = Clock::now() + st_.agent_start_timeout;
  std::vector<std::string> problems;
  for (auto [n, offset] : started) {
    ProcessRecord agent = *n->agent;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    int w = wait_for_log(n->agent_log, offset, kAgentStartLine, agent, std::max(left, 0ms));
    if (w == 1) {
      spdlog::debug("lab {}: agent of {} (pid {}) started", st_.id, n->name, agent.pid);
      continue;
    }
    std::string how;
    if (w == -1) {
      auto ex = wait_process(agent, 5s);
      how = ex ? "exited (" + ex->str() + ")" : "died";
      if (ex) last_agent_exit_ = *ex;
    } else {
      (void)terminate_process(agent, SIGTERM, 5s);
      how = fmt::format("did not log \"{}\" within {} ms (stopped)", kAgentStartLine,
                        st_.agent_start_timeout.count());
    }
    n->agent.reset();
    (void)save();
    problems.push_back(fmt::format("{} {} before it was ready; {}:\n{}",
                                   cluster() ? "the agent of " + n->name : "agent", how,
                                   n->agent_log, file_tail(n->agent_log, 30)));
  }
  if (failed) return *failed;
  if (!problems.empty()) return make_error("{}", fmt::join(problems, "\n"));
  return {};
}

Status Lab::stop_agent(int sig, const std::string& node) {
  std::vector<LabNode*> targets;
  if (node.empty() && cluster()) {
    for (auto& n : st_.nodes)
      if (n.agent) targets.push_back(&n);
    if (targets.empty()) return Error{ENOENT, fmt::format("lab {}: no agent recorded", st_.id)};
  } else {
    LabNode* n = find_node(node);
    if (n == nullptr) return Error{ENOENT, fmt::format("lab {} has no node '{}'", st_.id, node)};
    if (!n->agent)
      return Error{ENOENT, cluster() ? fmt::format("lab {}: no agent recorded on {}", st_.id, n->name)
                                     : fmt::format("lab {}: no agent recorded", st_.id)};
    targets.push_back(n);
  }
  std::vector<std::string> problems;
  for (LabNode* n : targets) {
    ProcessRecord agent = *n->agent;
    auto r = terminate_process(agent, sig, 15s);
    n->agent.reset();
    (void)save();
    if (!r) {
      problems.push_back(r.error().wrap("stopping the agent of " + n->name).str());
      continue;
    }
    last_agent_exit_ = *r;
    bool ok = r->success() || (sig == SIGKILL && !r->exited && r->signal == SIGKILL);
    if (!ok)
      problems.push_back(fmt::format("agent (pid {}) {} after signal {}; {}:\n{}", agent.pid, r->str(),
                                     sig, n->agent_log, file_tail(n->agent_log, 20)));
  }
  if (!problems.empty()) return make_error("{}", fmt::join(problems, "\n"));
  return {};
}

// ---------------------------------------------------------------- Lab: datastore

namespace {
Status check_resource_name(const std::string& f) {
  if (f.empty() || f.find('/') != std::string::npos || f[0] == '.')
    return make_error("resource file name '{}': must be a plain name not starting with '.'", f);
  return {};
}
}  // namespace

std::string Lab::datastore_spec() const {
  if (st_.datastore != "etcd") return "dir:" + st_.datastore_dir;
  std::vector<std::string> urls;
  urls.reserve(static_cast<size_t>(st_.etcd_members));
  for (int i = 0; i < st_.etcd_members; ++i) urls.push_back(etcd_url(i));
  return fmt::format("etcd:{}", fmt::join(urls, ","));
}

namespace {

constexpr const char* kEtcdWhat = "etcd";

// The refs of a lab file's resources ({} when the file does not exist).
Result<std::vector<datastore::ResourceRef>> file_refs(const std::string& path, const std::string& name) {
  auto text = read_file(path);
  if (!text) return std::vector<datastore::ResourceRef>{};
  return datastore::refs_of({{name, *text}});
}

bool same_ref(const datastore::ResourceRef& a, const datastore::ResourceRef& b) {
  return a.kind == b.kind && a.ns == b.ns && a.name == b.name;
}

}  // namespace

std::string Lab::etcd_netns() const { return cluster() ? st_.underlay_netns : node_netns(); }

namespace {
constexpr uint16_t kEtcdClientPorts[] = {2379, 22379, 32379};
std::string etcd_member_what(int i) { return fmt::format("{} member {}", kEtcdWhat, i); }
bool is_etcd_member(const ProcessRecord& r) { return r.what.rfind(kEtcdWhat, 0) == 0; }
}  // namespace

std::string Lab::etcd_url(int member) const {
  std::string host = "127.0.0.1";
  if (cluster()) {
    auto ul = parse_cidr(st_.underlay_cidr);
    if (ul) host = ip_str(ul->network + 1);
  }
  return fmt::format("http://{}:{}", host, kEtcdClientPorts[member]);
}

Status Lab::start_etcd(int member) {
  if (st_.datastore != "etcd") return make_error("lab {}: its datastore is not etcd", st_.id);
  if (member < -1 || member >= st_.etcd_members)
    return make_error("lab {}: etcd member {} does not exist (it has {})", st_.id, member,
                      st_.etcd_members);
  std::vector<std::string> peers;
  peers.reserve(static_cast<size_t>(st_.etcd_members));
  for (int i = 0; i < st_.etcd_members; ++i)
    peers.push_back(fmt::format("lab{}=http://127.0.0.1:{}", i, kEtcdClientPorts[i] + 1));
  for (int i = 0; i < st_.etcd_members; ++i) {
    if (member != -1 && i != member) continue;
    if (std::any_of(st_.servers.begin(), st_.servers.end(), [&](const ProcessRecord& s) {
          return s.what == etcd_member_what(i) && process_alive(s);
        }))
      continue;
    std::string data = fmt::format("{}/etcd{}", st_.state_dir, i);
    std::error_code ec;
    bool existing = fs::exists(data, ec);
    auto argv = etcd_member_argv({fmt::format("lab{}", i), data, etcd_url(i),
                                  fmt::format("http://127.0.0.1:{}", kEtcdClientPorts[i] + 1),
                                  fmt::format("{}", fmt::join(peers, ",")), "weir-lab-" + st_.id,
                                  existing});
    SpawnOptions so;
    so.netns = etcd_netns();
    so.output_path = fmt::format("{}/etcd{}.log", st_.state_dir, i);
    so.new_session = true;
    so.on_forked = [this, i](const ProcessRecord& r) {
      st_.servers.push_back(r);
      st_.servers.back().what = etcd_member_what(i);
      return save();
    };
    auto rec = spawn(argv, so);
    if (!rec) return rec.error().wrap(fmt::format("starting etcd member {}", i));
  }
  std::string eps = datastore_spec().substr(5);
  return in_netns(etcd_netns(), [&] { return wait_etcd_ready(eps, 30s); });
}

Status Lab::stop_etcd(int member) {
  if (st_.datastore != "etcd") return make_error("lab {}: its datastore is not etcd", st_.id);
  if (member < -1 || member >= st_.etcd_members)
    return make_error("lab {}: etcd member {} does not exist (it has {})", st_.id, member,
                      st_.etcd_members);
  auto chosen = [&](const ProcessRecord& s) {
    return member == -1 ? is_etcd_member(s) : s.what == etcd_member_what(member);
  };
  for (const auto& s : st_.servers) {
    if (!chosen(s)) continue;
    auto r = terminate_process(s, SIGKILL, 10s);
    if (!r) return r.error().wrap("stopping " + s.what);
  }
  std::erase_if(st_.servers, chosen);
  return save();
}

Status Lab::write_resource(const std::string& filename, const std::string& yaml) const {
  WEIR_TRY(check_resource_name(filename));
  if (st_.datastore == "etcd") {
    std::string path = st_.datastore_dir + "/" + filename;
    auto before = file_refs(path, filename);
    if (!before) return before.error();
    auto now = datastore::refs_of({{filename, yaml}});
    if (!now) return now.error();
    std::vector<datastore::ResourceRef> gone;
    for (const auto& r : *before)
      if (std::none_of(now->begin(), now->end(), [&](const auto& n) { return same_ref(r, n); }))
        gone.push_back(r);
    std::string spec = datastore_spec();
    auto applied = in_netns(etcd_netns(), [&]() -> Status {
      auto store = datastore::open_store(spec);
      if (!store) return store.error();
      auto a = datastore::apply_resources(**store, {{filename, yaml}});
      if (!a) return a.error();
      if (!gone.empty()) {
        auto d = datastore::delete_resources(**store, gone);
        if (!d) return d.error();
      }
      return {};
    });
    if (!applied) return applied.error().wrap(fmt::format("lab {}: applying {}", st_.id, filename));
  }
  return write_file_atomic(st_.datastore_dir, filename, yaml);
}

Status Lab::remove_resource(const std::string& filename) const {
  WEIR_TRY(check_resource_name(filename));
  std::string p = st_.datastore_dir + "/" + filename;
  if (st_.datastore == "etcd") {
    auto refs = file_refs(p, filename);
    if (!refs) return refs.error();
    std::string spec = datastore_spec();
    auto deleted = in_netns(etcd_netns(), [&]() -> Status {
      auto store = datastore::open_store(spec);
      if (!store) return store.error();
      auto d = datastore::delete_resources(**store, *refs);
      if (!d) return d.error();
      return {};
    });
    if (!deleted) return deleted.error().wrap(fmt::format("lab {}: removing {}", st_.id, filename));
  }
  if (::unlink(p.c_str()) != 0) return errno_error("removing " + p);
  return {};
}

Status Lab::write_service(const std::string& filename, const ServiceDef& svc,
                          const std::vector<BackendDef>& backends) const {
  return write_resource(filename, service_with_slice_yaml(svc, backends));
}

Result<std::vector<BackendDef>> Lab::backends(const std::vector<std::string>& pod_names,
                                              bool ready) const {
  std::vector<BackendDef> out;
  for (const auto& n : pod_names) {
    auto p = pod(n);
    if (!p) return p.error();
    out.push_back(BackendDef{p->ip, ready, p->node, p->name});
  }
  return out;
}

// ---------------------------------------------------------------- Lab: commands

Result<std::string> Lab::run_weir(const std::vector<std::string>& args,
                                  std::chrono::milliseconds timeout) const {
  return run_weir_on("", args, timeout);
}

Result<std::string> Lab::run_weir_on(const std::string& node, const std::vector<std::string>& args,
                                     std::chrono::milliseconds timeout) const {
  const LabNode* n = find_node(node);
  if (n == nullptr) return Error{ENOENT, fmt::format("lab {} has no node '{}'", st_.id, node)};
  std::vector<std::string> argv{st_.weir_binary, "--pin-root", n->pin_root};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_checked(argv, RunOptions::in(n->name, timeout));
}

Result<ProcessRecord> Lab::start_server(const std::string& pod_name,
                                        const std::vector<uint16_t>& tcp_ports,
                                        const std::vector<uint16_t>& udp_ports) {
  auto p = pod(pod_name);
  if (!p) return p.error();
  std::vector<std::string> argv{st_.weir_binary, "lab", "serve", "--name", p->name};
  for (auto port : tcp_ports) {
    argv.emplace_back("--tcp");
    argv.push_back(std::to_string(port));
  }
  for (auto port : udp_ports) {
    argv.emplace_back("--udp");
    argv.push_back(std::to_string(port));
  }
  std::string log = fmt::format("{}/serve-{}.log", st_.state_dir, p->name);
  off_t offset = file_size(log);
  SpawnOptions so;
  so.netns = p->netns;
  so.output_path = log;
  std::string what = "serve " + p->name;
  so.on_forked = [&](const ProcessRecord& r) {
    st_.servers.push_back(r);
    st_.servers.back().what = what;
    return save();
  };
  auto rec = spawn(argv, so);
  if (!rec) return rec.error().wrap("starting a server in " + p->name);
  rec->what = what;
  int w = wait_for_log(log, offset, "ready", *rec, 10s);
  if (w == 1) return *rec;
  (void)terminate_process(*rec, SIGTERM, 2s);
  std::erase_if(st_.servers, [&](const ProcessRecord& s) { return s.pid == rec->pid; });
  (void)save();
  return make_error("server in {} {}; {}:\n{}", p->name,
                    w == -1 ? "exited" : "did not become ready in 10 s", log, file_tail(log, 10));
}

Status Lab::stop_server(const std::string& pod_name) {
  std::vector<std::string> problems;
  std::string what = "serve " + pod_name;
  for (const auto& s : st_.servers) {
    if (s.what != what) continue;
    auto r = terminate_process(s, SIGTERM, 3s);
    if (!r) problems.push_back(r.error().str());
  }
  std::erase_if(st_.servers, [&](const ProcessRecord& s) { return s.what == what; });
  WEIR_TRY(save());
  if (!problems.empty()) return make_error("{}", fmt::join(problems, "; "));
  return {};
}

// ---------------------------------------------------------------- Lab: kernel state

namespace {
std::string prog_name(uint32_t id) {
  int fd = bpf_prog_get_fd_by_id(id);
  if (fd < 0) return "";
  Fd owner(fd);
  bpf_prog_info info{};
  uint32_t len = sizeof info;
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) return "";
  return info.name;
}
}  // namespace

bool bpf_prog_exists(uint32_t id) {
  int fd = bpf_prog_get_fd_by_id(id);
  if (fd >= 0) {
    ::close(fd);
    return true;
  }
  return errno != ENOENT;
}

Result<std::vector<AttachedProgram>> Lab::attached_programs() const {
  std::vector<AttachedProgram> out;
  static const std::regex id_re(R"(\bid (\d+))");
  for (const auto& n : st_.nodes) {
    std::vector<std::string> ifaces;
    for (const auto& p : st_.pods)
      if (p.node == n.name) ifaces.push_back(p.host_if);
    if (cluster()) ifaces.emplace_back("eth0");  // its underlay interface
    const std::string node = cluster() ? n.name : "";
    if (!netns_exists(n.name)) continue;
    auto tcx = in_netns(n.name, [&]() -> Status {
      for (const auto& ifname : ifaces) {
        unsigned ifindex = ::if_nametoindex(ifname.c_str());
        if (ifindex == 0) continue;  // interface gone
        for (auto [type, hook] :
             {std::pair{kBpfTcxIngress, "tcx ingress"}, std::pair{kBpfTcxEgress, "tcx egress"}}) {
          uint32_t ids[64];
          uint32_t cnt = 64;
          uint32_t flags = 0;
          int r = bpf_prog_query(static_cast<int>(ifindex), static_cast<bpf_attach_type>(type), 0,
                                 &flags, ids, &cnt);
          if (r != 0) continue;  // no tcx on this kernel (EINVAL) or nothing attached
          for (uint32_t i = 0; i < cnt; ++i)
            out.push_back(AttachedProgram{node, ifname, hook, ids[i], prog_name(ids[i])});
        }
      }
      return {};
    });
    if (!tcx) return tcx.error();
    for (const auto& ifname : ifaces) {
      for (const char* dir : {"ingress", "egress"}) {
        auto r = run_process({"tc", "-n", n.name, "filter", "show", "dev", ifname, dir});
        if (!r || !r->status.success()) continue;  // no clsact qdisc, or interface gone
        std::istringstream lines(r->out);
        std::string line;
        while (std::getline(lines, line)) {
          std::smatch m;
          if (line.find(" bpf ") == std::string::npos || !std::regex_search(line, m, id_re)) continue;
          uint32_t id = static_cast<uint32_t>(std::stoul(m[1]));
          out.push_back(AttachedProgram{node, ifname, std::string("tc ") + dir, id, prog_name(id)});
        }
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------- guardian

int run_guardian(const std::string& state_dir, int fd) {
  struct sigaction ign {};
  ign.sa_handler = SIG_IGN;
  for (int s : {SIGINT, SIGHUP, SIGPIPE, SIGQUIT}) ::sigaction(s, &ign, nullptr);
  char c = 0;
  ssize_t r;
  do {
    r = ::read(fd, &c, 1);
  } while (r < 0 && errno == EINTR);
  if (r == 1 && c == 'r') return 0;                         // released: the lab stays
  if (!fs::exists(state_dir + "/" + kStateFile)) return 0;  // torn down by its owner
  auto lab = Lab::load(state_dir);
  if (!lab) {
    fmt::print(stderr, "weir lab guard: {}\n", lab.error().str());
    return 1;
  }
  fmt::print(stderr,
             "weir lab guard: the owner of lab {} exited without tearing it down; "
             "removing it\n",
             lab->id());
  if (auto s = lab->down(); !s) {
    fmt::print(stderr, "weir lab guard: {}\n", s.error().str());
    return 1;
  }
  fmt::print(stderr, "weir lab guard: lab {} removed\n", lab->id());
  return 0;
}

}  // namespace weir::lab
