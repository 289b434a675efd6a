// The lab: network-namespace topologies for the demo, the e2e tests and the benchmarks
// (docs/lab.md has the diagrams).
//
// One node (the default):
//   node netns  weir-<id>-node   (ip_forward=1; the agent runs here)
//     weir<id>p<N>  <-veth->  eth0 in weir-<id>-pod<N>   (pod IP/32, default via 169.254.1.1)
//
// A cluster (LabSpec::nodes > 0, `weir lab up --nodes N`):
//   underlay netns weir-<id>-ul: bridge weirbr (.1 of the underlay CIDR; the lab's etcd)
//     n<K>  <-veth->  eth0 in node netns weir-<id>-n<K>  (underlay address .K+1)
//       weir<id>n<K>p<J>  <-veth->  eth0 in weir-<id>-n<K>-pod<J>   (pod "n<K>-pod<J>")
//   each node: its own agent, pin root, agent log, a /26 of the pod CIDR and a Node resource.
//
// Everything is named weir-<id>-* / weir<id>*, so parallel labs never collide. The state of a
// lab is recorded in <state_dir>/state.json BEFORE each object is created, so `down` can remove
// everything from the record alone: from the destructor, from `weir lab down --id ID` in another
// process, or from the guardian process that tears the lab down when its owner dies (a
// crashed test leaves nothing behind).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "lab/netns.h"
#include "lab/process.h"
#include "lab/resources.h"
#include "util/fd.h"
#include "util/result.h"

namespace weir::lab {

using namespace std::chrono_literals;

struct LabSpec {
  std::string run_id;                     // default: 6 hex digits derived from the pid
  int pods = 3;                           // pods (per node in a cluster): 1..99 (1..61 per node)
  // 0: the one-node layout. 1..20: a cluster of that many nodes joined by an underlay.
  int nodes = 0;
  // Pod addresses. "" = 10.65.0.0/24 for one node (pod N gets network + N + 1, pod1 = .2), or
  // 10.65.0.0/16 for a cluster, where node K gets the K-th /26 (its pod J: the /26's + J + 1).
  std::string pod_cidr;
  std::string underlay_cidr = "192.168.200.0/24";  // cluster: bridge .1, node K .K+1
  std::string encap = "none";             // cluster: "none" (routed) or "vxlan"
  int underlay_mtu = 1500;                // cluster: the underlay's MTU (pods get less with vxlan)
  std::string state_dir;                  // default /run/weir-lab-<id>
  std::string pin_root;                   // default /sys/fs/bpf/weir-lab-<id> (node K: -n<K>)
  std::string weir_binary;                // default: /proc/self/exe resolved
  bool start_agent = true;                // start the agents at the end of up()
  std::string agent_log_level = "info";
  std::string agent_tc_mode = "auto";     // the agent's --tc-mode
  // The agents' --metrics-listen, in each node's own netns (so every node can use the same
  // address): `weir lab exec -- curl -s http://127.0.0.1:9091/metrics`. "" = no metrics.
  std::string agent_metrics_listen = "127.0.0.1:9091";
  // Where the agents read their resources: "dir" (the lab's directory) or "etcd" (an etcd member
  // the lab runs: in the node netns on 127.0.0.1:2379, or for a cluster in the underlay netns on
  // its bridge address, which the nodes reach over the underlay; data in the state dir). The lab
  // writes resources with `weir apply`'s code and keeps a copy of each file in its directory.
  std::string datastore = "dir";
  // etcd datastore: 1 or 3 members (3: the lab can kill one and the cluster keeps a quorum). The
  // members listen on ports 2379, 22379, 32379 of the address above.
  int etcd_members = 1;
  std::chrono::milliseconds min_sync_period = 200ms;  // DataplaneConfig, fast tests
  std::chrono::milliseconds conntrack_scan_period = 1000ms;
  // How long an agent may take to load its programs ("BPF enabled"). The wait ends as soon as
  // it logs that: natively a second or two, but the 6.1 verifier under qemu TCG
  // (scripts/test-kernel.sh) needs ~30 s for the object on a busy machine.
  std::chrono::milliseconds agent_start_timeout = 120s;
  // Start a guardian process that runs down() from the record if this process dies without
  // doing it (crash, SIGKILL). release() tells it to stand down.
  bool guard = true;
};

struct Pod {
  std::string name;     // "pod1" (one node), "n2-pod1" (cluster): its WorkloadEndpoint's name
  std::string netns;    // "weir-<id>-pod1", "weir-<id>-n2-pod1"
  std::string ip;       // "10.65.0.2"
  std::string mac;      // pod-side eth0 MAC, "02:77:ab:cd:ef:01"
  std::string host_if;  // host-side veth in its node's netns, "weir<id>p1", "weir<id>n2p1"
  std::string node;     // its node's name
};

// A node of the lab.
struct LabNode {
  std::string name;         // the agent's --node and the Node resource's name: its netns
  std::string pin_root;
  std::string pod_cidr;     // its pods' block
  std::string underlay_ip;  // cluster: its address on the underlay ("" for one node)
  std::string agent_log;    // the agent's output
  std::optional<ProcessRecord> agent;
};

// The record in <state_dir>/state.json.
struct LabState {
  std::string id;
  std::string state_dir;
  std::string datastore_dir;
  std::string pod_cidr;  // the cluster's (one node: its own)
  std::string weir_binary;
  std::string agent_log_level = "info";
  std::string agent_tc_mode = "auto";
  std::string agent_metrics_listen;
  std::chrono::milliseconds agent_start_timeout = 120s;
  std::string datastore = "dir";  // "dir" or "etcd" (see LabSpec)
  int etcd_members = 1;
  std::string underlay_netns;     // cluster only
  std::string underlay_cidr;      // cluster only
  std::string encap = "none";     // cluster only: none | vxlan
  std::vector<LabNode> nodes;      // recorded before their namespace is created
  std::vector<std::string> netns;  // namespaces this lab created (recorded before creation)
  std::vector<Pod> pods;           // recorded before their veth is created
  std::vector<ProcessRecord> servers;
  std::optional<ProcessRecord> guardian;
  bool complete = false;  // up() finished

  std::string to_json() const;
  static Result<LabState> from_json(const std::string& text, const std::string& what);
};

// A program attached to one of the lab's interfaces (see Lab::attached_programs).
struct AttachedProgram {
  std::string node;
  std::string ifname;
  std::string hook;  // "tcx ingress", "tcx egress", "tc ingress", "tc egress"
  uint32_t prog_id = 0;
  std::string prog_name;  // "" when the program could not be inspected

  std::string str() const;
};

class Lab {
 public:
  // Builds the topology (and starts the agent when spec.start_agent). On failure everything
  // created so far is removed and the Error says which step failed. Needs root.
  static Result<Lab> up(const LabSpec& spec);
  // A handle on an existing lab from its record (<state_dir>/state.json). The handle does not
  // own the lab: its destructor leaves it alone, but down() tears it down.
  static Result<Lab> load(const std::string& state_dir);
  static std::string default_state_dir(const std::string& id);  // "/run/weir-lab-<id>"
  // State directories of the labs recorded on this machine (/run/weir-lab-*/state.json).
  static std::vector<std::string> list_state_dirs();

  Lab(Lab&& o) noexcept;
  Lab& operator=(Lab&& o) noexcept;
  Lab(const Lab&) = delete;
  Lab& operator=(const Lab&) = delete;
  ~Lab();  // down() unless released (or not owned); errors are logged

  // Tears everything down: agent (SIGTERM, wait), servers, `weir bpf cleanup` in the node
  // netns, the namespaces, the pin root, the state dir. Idempotent. On error the record is
  // kept so that a later down() can finish the job.
  Status down();
  // Keep the lab after this object dies (`weir lab up`): the destructor does nothing and the
  // guardian stands down.
  void release();

  // ---- topology
  const std::string& id() const { return st_.id; }
  bool cluster() const { return !st_.underlay_netns.empty(); }
  const std::vector<LabNode>& nodes() const { return st_.nodes; }
  // A node by name, or by its short name in a cluster ("n2").
  Result<LabNode> node(const std::string& name) const;
  // The first node's (the only one's, in the one-node layout).
  const std::string& node_netns() const { return st_.nodes.at(0).name; }
  const std::string& node_name() const { return st_.nodes.at(0).name; }
  const std::string& pin_root() const { return st_.nodes.at(0).pin_root; }
  const std::vector<Pod>& pods() const { return st_.pods; }
  std::vector<Pod> pods_of(const std::string& node) const;
  Result<Pod> pod(const std::string& name) const;
  const std::string& state_dir() const { return st_.state_dir; }
  const std::string& datastore_dir() const { return st_.datastore_dir; }
  const std::string& weir_binary() const { return st_.weir_binary; }
  const std::string& underlay_netns() const { return st_.underlay_netns; }
  const LabState& state() const { return st_; }

  // ---- agents (node "" = every node for start/stop, the first node for the others)
  // `weir --pin-root P --log-level L agent --datastore D --node N` inside each node's netns,
  // output appended to its agent log. Starts every agent not running (side by side: their
  // programs load at the same time) and waits until each log says "BPF enabled"; if an agent
  // dies or the timeout passes, the Error names the node and carries the end of its log.
  // `drop_capabilities` (bit N = capability N, bpf/caps.h): the agents run without them (see
  // SpawnOptions::drop_capabilities), e.g. without CAP_PERFMON, whose programs the verifier refuses.
  Status start_agent(const std::string& node = "", uint64_t drop_capabilities = 0);
  // Sends `sig` and waits for the agent(s) to exit (SIGKILL after 15 s). Ok when each exited
  // with code 0 (or was killed by `sig` when sig is SIGKILL); otherwise the Error reports the
  // exit status and the log tail. The agent is no longer recorded either way.
  Status stop_agent(int sig = SIGTERM, const std::string& node = "");
  pid_t agent_pid(const std::string& node = "") const;
  bool agent_running(const std::string& node = "") const;
  std::optional<ExitStatus> last_agent_exit() const { return last_agent_exit_; }
  std::string agent_log_path(const std::string& node = "") const;
  std::string agent_log(const std::string& node = "") const;  // the whole log ("" when none)

  // ---- datastore
  // The agents' --datastore: "dir:<datastore dir>", "etcd:http://127.0.0.1:2379" (one node) or
  // "etcd:http://<underlay .1>:2379" (cluster).
  std::string datastore_spec() const;
  // etcd datastore: kills the lab's etcd members (SIGKILL: a crash), or member `member` only;
  // starts those not running again on their data (waiting until the cluster answers). Errors for
  // a dir datastore.
  Status stop_etcd(int member = -1);
  Status start_etcd(int member = -1);
  // Atomically (temp file ".<filename>.tmp-<pid>" + rename) writes a resource file. The
  // filename must not contain '/' nor start with '.'. With the etcd datastore, the file's
  // resources are applied to etcd (as `weir apply` does: validated first) and those the
  // previous version of the file had and this one has not are deleted; the file is kept in the
  // lab's directory as the record of what was written.
  Status write_resource(const std::string& filename, const std::string& yaml) const;
  Status remove_resource(const std::string& filename) const;  // etcd: deletes its resources
  // write_resource(filename, service_yaml(svc) + endpoint_slice_yaml(svc, backends)): one file,
  // so the agent never sees a slice without its service.
  Status write_service(const std::string& filename, const ServiceDef& svc,
                       const std::vector<BackendDef>& backends) const;
  // A backend per pod name ("pod2" -> that pod's IP), ready, on the pod's node.
  Result<std::vector<BackendDef>> backends(const std::vector<std::string>& pod_names,
                                           bool ready = true) const;

  // ---- commands and namespaces
  // Runs `weir --pin-root <pin root> args...` inside the (first) node's netns; its stdout, or an
  // Error with the exit status and stderr.
  Result<std::string> run_weir(const std::vector<std::string>& args,
                               std::chrono::milliseconds timeout = 60s) const;
  // The same on the named node, with its pin root.
  Result<std::string> run_weir_on(const std::string& node, const std::vector<std::string>& args,
                                  std::chrono::milliseconds timeout = 60s) const;
  // run_weir("bpf", "nat", "dump").
  template <typename... A>
  requires(sizeof...(A) > 0 &&
           (std::is_convertible_v<A, std::string> && ...)) Result<std::string> run_weir(A&&... args)
  const { return run_weir(std::vector<std::string>{std::string(std::forward<A>(args))...}); }
  // Runs f in a thread inside `netns` (see netns.h).
  template <typename F>
  netns_result_t<F> in_netns(const std::string& netns, F&& f) const {
    return lab::in_netns(netns, std::forward<F>(f));
  }
  template <typename F>
  netns_result_t<F> in_pod(const std::string& pod_name, F&& f) const {
    auto p = pod(pod_name);
    if (!p) return netns_result_t<F>(p.error());
    return lab::in_netns(p->netns, std::forward<F>(f));
  }

  // ---- servers
  // `weir lab serve --name <pod> --tcp ... --udp ...` inside the pod's netns; waits until it
  // has bound its ports. Recorded (before exec) and killed by down().
  Result<ProcessRecord> start_server(const std::string& pod_name,
                                     const std::vector<uint16_t>& tcp_ports,
                                     const std::vector<uint16_t>& udp_ports);
  // Stops the servers of one pod.
  Status stop_server(const std::string& pod_name);

  // ---- kernel state
  // The BPF programs attached to the pods' host-side interfaces and the nodes' underlay
  // interfaces: tcx (BPF_PROG_QUERY) and clsact filters (`tc filter show`).
  Result<std::vector<AttachedProgram>> attached_programs() const;

 private:
  explicit Lab(LabState st, bool owned) : st_(std::move(st)), owned_(owned) {}
  Status save() const;
  Status create_topology(const LabSpec& spec);
  Status create_cluster(const LabSpec& spec);
  Status add_pods(const LabSpec& spec, size_t node_index);
  Status start_guardian();
  void stop_guardian(bool stand_down);
  LabNode* find_node(const std::string& name);
  const LabNode* find_node(const std::string& name) const;
  std::string etcd_netns() const;
  std::string etcd_url(int member) const;

  LabState st_;
  bool owned_ = false;
  Fd guard_pipe_;  // write end; EOF tells the guardian that we are gone
  std::optional<ExitStatus> last_agent_exit_;
};

// True while a BPF program with this id exists in the kernel.
bool bpf_prog_exists(uint32_t id);

// The guardian's main: waits on fd until EOF (owner gone: tear the lab in state_dir down if its
// record is still there) or a 'r' byte (released: exit). Used by the hidden `weir lab guard`.
int run_guardian(const std::string& state_dir, int fd);

}  // namespace weir::lab
