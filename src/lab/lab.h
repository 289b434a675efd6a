// The lab: a one-node topology of network namespaces for the demo, the e2e tests and the
// benchmarks (docs/lab.md has the diagram).
//
//   node netns  weir-<id>-node   (ip_forward=1; the agent runs here)
//     weir<id>p<N>  <-veth->  eth0 in weir-<id>-pod<N>   (pod IP/32, default via 169.254.1.1)
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
  int pods = 3;                           // 1..99
  std::string pod_cidr = "10.65.0.0/24";  // pod N gets network + N + 1 (pod1 = .2)
  std::string state_dir;                  // default /run/weir-lab-<id>
  std::string pin_root;                   // default /sys/fs/bpf/weir-lab-<id>
  std::string weir_binary;                // default: /proc/self/exe resolved
  bool start_agent = true;                // start the agent at the end of up()
  std::string agent_log_level = "info";
  std::string agent_tc_mode = "auto";     // the agent's --tc-mode
  // Where the agent reads its resources: "dir" (the lab's directory) or "etcd" (an etcd member
  // the lab runs in the node netns on 127.0.0.1:2379, data in the state dir; the lab writes
  // resources with `weir apply`'s code and keeps a copy of each file in its directory).
  std::string datastore = "dir";
  std::chrono::milliseconds min_sync_period = 200ms;  // DataplaneConfig, fast tests
  std::chrono::milliseconds conntrack_scan_period = 1000ms;
  // How long the agent may take to load its programs ("BPF enabled"). The wait ends as soon as
  // it logs that: natively a second or two, but the 6.1 verifier under qemu TCG
  // (scripts/test-kernel.sh) needs ~30 s for the object on a busy machine.
  std::chrono::milliseconds agent_start_timeout = 120s;
  // Start a guardian process that runs down() from the record if this process dies without
  // doing it (crash, SIGKILL). release() tells it to stand down.
  bool guard = true;
};

struct Pod {
  std::string name;     // "pod1"
  std::string netns;    // "weir-<id>-pod1"
  std::string ip;       // "10.65.0.2"
  std::string mac;      // pod-side eth0 MAC, "02:77:ab:cd:ef:01"
  std::string host_if;  // host-side veth in the node netns, "weir<id>p1"
};

// The record in <state_dir>/state.json.
struct LabState {
  std::string id;
  std::string state_dir;
  std::string datastore_dir;
  std::string pin_root;
  std::string node_netns;  // also the node name
  std::string pod_cidr;
  std::string weir_binary;
  std::string agent_log_level = "info";
  std::string agent_tc_mode = "auto";
  std::chrono::milliseconds agent_start_timeout = 120s;
  std::string datastore = "dir";  // "dir" or "etcd" (see LabSpec)
  std::vector<std::string> netns;  // namespaces this lab created (recorded before creation)
  std::vector<Pod> pods;           // recorded before their veth is created
  std::optional<ProcessRecord> agent;
  std::vector<ProcessRecord> servers;
  std::optional<ProcessRecord> guardian;
  bool complete = false;  // up() finished

  std::string to_json() const;
  static Result<LabState> from_json(const std::string& text, const std::string& what);
};

// A program attached to one of the lab's interfaces (see Lab::attached_programs).
struct AttachedProgram {
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
  const std::string& node_netns() const { return st_.node_netns; }
  const std::string& node_name() const { return st_.node_netns; }
  const std::vector<Pod>& pods() const { return st_.pods; }
  Result<Pod> pod(const std::string& name) const;
  const std::string& state_dir() const { return st_.state_dir; }
  const std::string& datastore_dir() const { return st_.datastore_dir; }
  const std::string& pin_root() const { return st_.pin_root; }
  const std::string& weir_binary() const { return st_.weir_binary; }
  const LabState& state() const { return st_; }

  // ---- agent
  // `weir --pin-root P --log-level L agent --datastore dir:D --node N` inside the node netns,
  // output appended to agent_log_path(). Waits until the log says "BPF enabled"; if the agent
  // dies or the timeout passes, the Error carries the end of the log.
  Status start_agent();
  // Sends `sig` and waits for the agent to exit (SIGKILL after 15 s). Ok when it exited with
  // code 0 (or was killed by `sig` when sig is SIGKILL); otherwise the Error reports the exit
  // status and the log tail. The agent is no longer recorded either way.
  Status stop_agent(int sig = SIGTERM);
  pid_t agent_pid() const { return st_.agent ? st_.agent->pid : 0; }
  bool agent_running() const;
  std::optional<ExitStatus> last_agent_exit() const { return last_agent_exit_; }
  std::string agent_log_path() const { return st_.state_dir + "/agent.log"; }
  std::string agent_log() const;  // the whole log ("" when none)

  // ---- datastore
  // The agent's --datastore: "dir:<datastore dir>" or "etcd:http://127.0.0.1:2379".
  std::string datastore_spec() const;
  // etcd datastore: kills the lab's etcd member (SIGKILL: a crash), and starts it again on its
  // data (waiting until it answers). Errors for a dir datastore.
  Status stop_etcd();
  Status start_etcd();
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
  // A backend per pod name ("pod2" -> that pod's IP), ready, on this node.
  Result<std::vector<BackendDef>> backends(const std::vector<std::string>& pod_names,
                                           bool ready = true) const;

  // ---- commands and namespaces
  // Runs `weir --pin-root <pin_root> args...` inside the node netns; its stdout, or an Error
  // with the exit status and stderr.
  Result<std::string> run_weir(const std::vector<std::string>& args,
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
  // The BPF programs attached to the pods' host-side interfaces: tcx (BPF_PROG_QUERY) and
  // clsact filters (`tc filter show`).
  Result<std::vector<AttachedProgram>> attached_programs() const;

 private:
  explicit Lab(LabState st, bool owned) : st_(std::move(st)), owned_(owned) {}
  Status save() const;
  Status create_topology(const LabSpec& spec);
  Status start_guardian();
  void stop_guardian(bool stand_down);

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
