#include "lab/lab.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <net/if.h>
#include <spdlog/spdlog.h>
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

#include "dataplane/policy_info.h"
#include "datastore/store.h"
#include "lab/etcd_server.h"

namespace weir::lab {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kStateFile = "state.json";
// The lab's etcd member (etcd datastore), on the node netns's loopback.
constexpr const char* kLabEtcdUrl = "http://127.0.0.1:2379";
constexpr const char* kAgentStartLine = "BPF enabled";
constexpr const char* kGatewayIp = "169.254.1.1";
constexpr uint32_t kBpfTcxIngress = 46;  // BPF_TCX_INGRESS (kernel 6.6+; not in libbpf 1.1)
constexpr uint32_t kBpfTcxEgress = 47;   // BPF_TCX_EGRESS

// ---------------------------------------------------------------- small helpers

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return errno_error("reading " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Status write_file_atomic(const std::string& dir, const std::string& name, const std::string& data) {
  std::string tmp = fmt::format("{}/.{}.tmp-{}", dir, name, ::getpid());
  std::string dst = dir + "/" + name;
  {
    Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd) return errno_error("creating " + tmp);
    const char* p = data.data();
    size_t left = data.size();
    while (left > 0) {
      ssize_t w = ::write(fd.get(), p, left);
      if (w < 0) {
        if (errno == EINTR) continue;
        Error e = errno_error("writing " + tmp);
        ::unlink(tmp.c_str());
        return e;
      }
      p += w;
      left -= static_cast<size_t>(w);
    }
  }
  if (::rename(tmp.c_str(), dst.c_str()) != 0) {
    Error e = errno_error(fmt::format("renaming {} to {}", tmp, dst));
    ::unlink(tmp.c_str());
    return e;
  }
  return {};
}

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
  j["version"] = 1;
  j["id"] = id;
  j["state_dir"] = state_dir;
  j["datastore_dir"] = datastore_dir;
  j["pin_root"] = pin_root;
  j["node_netns"] = node_netns;
  j["pod_cidr"] = pod_cidr;
  j["weir_binary"] = weir_binary;
  j["agent_log_level"] = agent_log_level;
  j["agent_tc_mode"] = agent_tc_mode;
  j["agent_start_timeout_ms"] = agent_start_timeout.count();
  j["datastore"] = datastore;
  j["netns"] = netns;
  j["pods"] = json::array();
  for (const auto& p : pods)
    j["pods"].push_back({{"name", p.name},
                         {"netns", p.netns},
                         {"ip", p.ip},
                         {"mac", p.mac},
                         {"host_if", p.host_if}});
  j["agent"] = agent ? to_j(*agent) : json(nullptr);
  j["servers"] = json::array();
  for (const auto& s : servers) j["servers"].push_back(to_j(s));
  j["guardian"] = guardian ? to_j(*guardian) : json(nullptr);
  j["complete"] = complete;
  return j.dump(2) + "\n";
}

Result<LabState> LabState::from_json(const std::string& text, const std::string& what) {
  try {
    json j = json::parse(text);
    LabState s;
    s.id = j.at("id").get<std::string>();
    s.state_dir = j.at("state_dir").get<std::string>();
    s.datastore_dir = j.at("datastore_dir").get<std::string>();
    s.pin_root = j.at("pin_root").get<std::string>();
    s.node_netns = j.at("node_netns").get<std::string>();
    s.pod_cidr = j.value("pod_cidr", "");
    s.weir_binary = j.at("weir_binary").get<std::string>();
    s.agent_log_level = j.value("agent_log_level", "info");
    s.agent_tc_mode = j.value("agent_tc_mode", "auto");
    s.agent_start_timeout = std::chrono::milliseconds(j.value("agent_start_timeout_ms", 120000));
    s.datastore = j.value("datastore", "dir");
    s.netns = j.at("netns").get<std::vector<std::string>>();
    for (const auto& p : j.at("pods"))
      s.pods.push_back(Pod{p.at("name").get<std::string>(), p.at("netns").get<std::string>(),
                           p.at("ip").get<std::string>(), p.at("mac").get<std::string>(),
                           p.at("host_if").get<std::string>()});
    if (!j.at("agent").is_null()) s.agent = proc_from_j(j.at("agent"));
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
  return fmt::format("{} {} prog id {}{}", ifname, hook, prog_id,
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
  if (spec.pods < 1 || spec.pods > 99) return make_error("pods must be 1..99, got {}", spec.pods);
  std::string id = spec.run_id.empty() ? make_id() : spec.run_id;
  if (!valid_id(id)) return make_error("run id '{}': use 1..8 characters of [a-z0-9]", id);
  size_t if_len = 4 + id.size() + 1 + std::to_string(spec.pods).size();
  if (if_len > 15)
    return make_error(
        "run id '{}' is too long for {} pods: interface names weir{}p{} would have "
        "{} characters (max 15)",
        id, spec.pods, id, spec.pods, if_len);
  auto cidr = parse_cidr(spec.pod_cidr);
  if (!cidr) return cidr.error();
  uint64_t size = 1ULL << (32 - cidr->len);
  if (static_cast<uint64_t>(spec.pods) + 2 > size - 1)
    return make_error("pod CIDR {} is too small for {} pods", spec.pod_cidr, spec.pods);

  LabState st;
  st.id = id;
  st.state_dir = spec.state_dir.empty() ? default_state_dir(id) : spec.state_dir;
  st.datastore_dir = st.state_dir + "/datastore";
  st.pin_root = spec.pin_root.empty() ? "/sys/fs/bpf/weir-lab-" + id : spec.pin_root;
  if (st.pin_root.find('.') != std::string::npos)
    return make_error("pin root '{}': bpffs names may not contain dots", st.pin_root);
  st.node_netns = "weir-" + id + "-node";
  st.pod_cidr = spec.pod_cidr;
  st.agent_log_level = spec.agent_log_level;
  st.agent_tc_mode = spec.agent_tc_mode;
  st.agent_start_timeout = spec.agent_start_timeout;
  if (spec.datastore != "dir" && spec.datastore != "etcd")
    return make_error("lab datastore \"{}\": dir or etcd", spec.datastore);
  st.datastore = spec.datastore;
  if (spec.datastore == "etcd")
    if (auto e = find_program("etcd"); !e) return e.error().wrap("the lab's etcd datastore needs etcd-server");
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
  if (netns_exists(st.node_netns))
    return Error{EEXIST, fmt::format("network namespace {} already exists: a lab with id {} is "
                                     "running or was left behind",
                                     st.node_netns, id)};
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
  if (auto s = lab.create_topology(spec); !s)
    return s.error().wrap(fmt::format("lab {}: building the topology", id));
  lab.st_.complete = true;
  WEIR_TRY(lab.save());
  spdlog::debug("lab {}: topology up ({} pods)", id, lab.st_.pods.size());
  if (spec.start_agent) {
    if (auto s = lab.start_agent(); !s) return s.error().wrap(fmt::format("lab {}", id));
  }
  return lab;
}

Status Lab::create_topology(const LabSpec& spec) {
  const std::string node = st_.node_netns;
  auto cidr = parse_cidr(spec.pod_cidr);
  if (!cidr) return cidr.error();
  auto idb = id_bytes(st_.id);

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
  WEIR_TRY(set_sysctl(node, "net.ipv4.ip_forward", "1"));
  WEIR_TRY(set_sysctl(node, "net.ipv4.conf.all.rp_filter", "0"));
  WEIR_TRY(set_sysctl(node, "net.ipv4.conf.default.rp_filter", "0"));
  (void)set_sysctl(node, "net.ipv6.conf.all.disable_ipv6", "1");  // no IPv6 noise (if any)
  (void)set_sysctl(node, "net.ipv6.conf.default.disable_ipv6", "1");
  // The pods' gateway 169.254.1.1 is a local address of the node netns (on lo): the node
  // answers ARP for it on every host-side veth with that veth's MAC, which is what proxy ARP
  // gives a Calico node whose default route leaves through another device. (The lab node has
  // no such device, and kernels without the dummy driver exist.) proxy_arp=1 is still set on
  // the host-side veths, as on a real node.
  WEIR_TRY(set_sysctl(node, "net.ipv4.conf.all.arp_ignore", "0"));
  WEIR_TRY(set_sysctl(node, "net.ipv4.conf.default.arp_ignore", "0"));
  WEIR_TRY(ip_batch(node, {"link set lo up", fmt::format("addr add {}/32 dev lo", kGatewayIp)}));
  if (etcd) {
    WEIR_TRY(start_etcd());
    WEIR_TRY(write_config());
  }

  for (int n = 1; n <= spec.pods; ++n) {
    Pod p;
    p.name = fmt::format("pod{}", n);
    p.netns = fmt::format("weir-{}-pod{}", st_.id, n);
    p.ip = ip_str(cidr->network + static_cast<uint32_t>(n) + 1);
    p.mac = fmt::format("02:77:{:02x}:{:02x}:{:02x}:{:02x}", idb[0], idb[1], idb[2], n);
    p.host_if = fmt::format("weir{}p{}", st_.id, n);
    st_.pods.push_back(p);
    st_.netns.push_back(p.netns);
    WEIR_TRY(save());
    WEIR_TRY(ip_cmd({"netns", "add", p.netns}));
    (void)set_sysctl(p.netns, "net.ipv6.conf.all.disable_ipv6", "1");
    (void)set_sysctl(p.netns, "net.ipv6.conf.default.disable_ipv6", "1");
    // The veth is created inside the node netns with its peer directly in the pod netns:
    // nothing ever appears in the root namespace.
    WEIR_TRY(ip_batch(node, {fmt::format("link add {} type veth peer name eth0 address {} netns {}",
                                         p.host_if, p.mac, p.netns)}));
    WEIR_TRY(ip_batch(
        p.netns, {"link set lo up", fmt::format("addr add {}/32 dev eth0", p.ip),
                  "link set eth0 up", fmt::format("route add {} dev eth0 scope link", kGatewayIp),
                  fmt::format("route add default via {} dev eth0", kGatewayIp)}));
    WEIR_TRY(set_sysctl_path(node, fmt::format("net/ipv4/conf/{}/proxy_arp", p.host_if), "1"));
    WEIR_TRY(ip_batch(node, {fmt::format("link set {} up", p.host_if),
                             fmt::format("route add {}/32 dev {}", p.ip, p.host_if)}));
    WEIR_TRY(write_resource(fmt::format("wep-{}.yaml", p.name),
                            workload_endpoint_yaml(p.name, node, p.host_if, p.ip, p.mac)));
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
  if (st_.agent) {
    auto r = terminate_process(*st_.agent, SIGTERM, 10s);
    if (!r)
      problems.push_back("stopping the agent: " + r.error().str());
    else
      last_agent_exit_ = *r;
    st_.agent.reset();
    save_if();
  }
  for (const auto& s : st_.servers) {
    auto r = terminate_process(s, SIGTERM, 3s);
    if (!r) problems.push_back(fmt::format("stopping {}: {}", s.what, r.error().str()));
  }
  st_.servers.clear();
  save_if();
  bool cleaned = false;
  if (netns_exists(st_.node_netns) && !st_.weir_binary.empty()) {
    auto r = run_weir({"bpf", "cleanup"}, 60s);
    if (!r) spdlog::debug("lab {}: weir bpf cleanup: {}", st_.id, r.error().str());
    cleaned = r.ok();
  }
  if (!cleaned && !st_.pin_root.empty()) {
    // The node namespace is gone (or cleanup failed): the agent's files beside the pins
    // (/run/weir/<pin root name>) are still removed, and only those.
    for (const auto& l : dataplane::remove_state_files(dataplane::default_state_dir(st_.pin_root)))
      spdlog::debug("lab {}: {}", st_.id, l);
  }
  for (auto it = st_.netns.rbegin(); it != st_.netns.rend(); ++it) {
    if (!netns_exists(*it)) continue;
    if (auto s = ip_cmd({"netns", "del", *it}); !s) problems.push_back(s.error().str());
  }
  if (!st_.pin_root.empty() && fs::exists(st_.pin_root)) {
    if (removable_pin_root(st_.pin_root)) {
      std::error_code ec;
      fs::remove_all(st_.pin_root, ec);
      if (ec)
        problems.push_back(fmt::format("removing pin root {}: {}", st_.pin_root, ec.message()));
    } else {
      spdlog::warn("lab {}: pin root {} left in place (not a /sys/fs/bpf/weir-* path)", st_.id,
                   st_.pin_root);
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

// ---------------------------------------------------------------- Lab: agent

bool Lab::agent_running() const { return st_.agent && process_alive(*st_.agent); }

std::string Lab::agent_log() const {
  auto t = read_file(agent_log_path());
  return t ? *t : std::string();
}

Status Lab::start_agent() {
  if (agent_running())
    return Error{EBUSY, fmt::format("lab {}: the agent is already running (pid {})", st_.id,
                                    st_.agent->pid)};
  std::vector<std::string> argv{st_.weir_binary,
                                "--pin-root",
                                st_.pin_root,
                                "--log-level",
                                st_.agent_log_level,
                                "agent",
                                "--datastore",
                                datastore_spec(),
                                "--node",
                                st_.node_netns,
                                "--tc-mode",
                                st_.agent_tc_mode};
  std::string log = agent_log_path();
  {
    std::ofstream marker(log, std::ios::app);
    marker << fmt::format("---- weir lab {}: starting {} (in netns {})\n", st_.id, join_argv(argv),
                          st_.node_netns);
  }
  off_t offset = file_size(log);
  SpawnOptions so;
  so.netns = st_.node_netns;
  so.output_path = log;
  so.on_forked = [this](const ProcessRecord& r) {
    st_.agent = r;
    st_.agent->what = "agent";
    return save();
  };
  auto rec = spawn(argv, so);
  if (!rec) return rec.error().wrap("starting the agent");
  ProcessRecord agent = *st_.agent;
  int w = wait_for_log(log, offset, kAgentStartLine, agent, st_.agent_start_timeout);
  if (w == 1) {
    spdlog::debug("lab {}: agent pid {} started", st_.id, agent.pid);
    return {};
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
  st_.agent.reset();
  (void)save();
  return make_error("agent {} before it was ready; {}:\n{}", how, log, file_tail(log, 30));
}

Status Lab::stop_agent(int sig) {
  if (!st_.agent) return Error{ENOENT, fmt::format("lab {}: no agent recorded", st_.id)};
  ProcessRecord agent = *st_.agent;
  auto r = terminate_process(agent, sig, 15s);
  st_.agent.reset();
  (void)save();
  if (!r) return r.error().wrap("stopping the agent");
  last_agent_exit_ = *r;
  bool ok = r->success() || (sig == SIGKILL && !r->exited && r->signal == SIGKILL);
  if (!ok)
    return make_error("agent (pid {}) {} after signal {}; {}:\n{}", agent.pid, r->str(), sig,
                      agent_log_path(), file_tail(agent_log_path(), 20));
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
  return st_.datastore == "etcd" ? std::string("etcd:") + kLabEtcdUrl : "dir:" + st_.datastore_dir;
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

Status Lab::start_etcd() {
  if (st_.datastore != "etcd") return make_error("lab {}: its datastore is not etcd", st_.id);
  for (const auto& s : st_.servers)
    if (s.what == kEtcdWhat && process_alive(s)) return {};
  std::string data = st_.state_dir + "/etcd";
  std::error_code ec;
  bool existing = fs::exists(data, ec);
  auto argv = etcd_member_argv({"lab", data, kLabEtcdUrl, "http://127.0.0.1:2380",
                                "lab=http://127.0.0.1:2380", "weir-lab-" + st_.id, existing});
  SpawnOptions so;
  so.netns = st_.node_netns;
  so.output_path = st_.state_dir + "/etcd.log";
  so.new_session = true;
  so.on_forked = [this](const ProcessRecord& r) {
    st_.servers.push_back(r);
    st_.servers.back().what = kEtcdWhat;
    return save();
  };
  auto rec = spawn(argv, so);
  if (!rec) return rec.error().wrap("starting etcd");
  return in_netns(st_.node_netns, [] { return wait_etcd_ready(kLabEtcdUrl, 30s); });
}

Status Lab::stop_etcd() {
  if (st_.datastore != "etcd") return make_error("lab {}: its datastore is not etcd", st_.id);
  for (const auto& s : st_.servers) {
    if (s.what != kEtcdWhat) continue;
    auto r = terminate_process(s, SIGKILL, 10s);
    if (!r) return r.error().wrap("stopping etcd");
  }
  std::erase_if(st_.servers, [](const ProcessRecord& s) { return s.what == kEtcdWhat; });
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
    auto applied = in_netns(st_.node_netns, [&]() -> Status {
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
    auto deleted = in_netns(st_.node_netns, [&]() -> Status {
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
    out.push_back(BackendDef{p->ip, ready, st_.node_netns, p->name});
  }
  return out;
}

// ---------------------------------------------------------------- Lab: commands

Result<std::string> Lab::run_weir(const std::vector<std::string>& args,
                                  std::chrono::milliseconds timeout) const {
  std::vector<std::string> argv{st_.weir_binary, "--pin-root", st_.pin_root};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_checked(argv, RunOptions::in(st_.node_netns, timeout));
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
  auto tcx = in_netns(st_.node_netns, [&]() -> Status {
    for (const auto& p : st_.pods) {
      unsigned ifindex = ::if_nametoindex(p.host_if.c_str());
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
          out.push_back(AttachedProgram{p.host_if, hook, ids[i], prog_name(ids[i])});
      }
    }
    return {};
  });
  if (!tcx) return tcx.error();
  static const std::regex id_re(R"(\bid (\d+))");
  for (const auto& p : st_.pods) {
    for (const char* dir : {"ingress", "egress"}) {
      auto r = run_process({"tc", "-n", st_.node_netns, "filter", "show", "dev", p.host_if, dir});
      if (!r || !r->status.success()) continue;  // no clsact qdisc, or interface gone
      std::istringstream lines(r->out);
      std::string line;
      while (std::getline(lines, line)) {
        std::smatch m;
        if (line.find(" bpf ") == std::string::npos || !std::regex_search(line, m, id_re)) continue;
        uint32_t id = static_cast<uint32_t>(std::stoul(m[1]));
        out.push_back(AttachedProgram{p.host_if, std::string("tc ") + dir, id, prog_name(id)});
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
