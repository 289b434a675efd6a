// An etcd cluster weir starts and owns: for the lab (`weir lab up --datastore etcd`), the tests
// and the benchmarks. Every member listens on 127.0.0.1 (or inside a namespace the caller made)
// on ports picked free, keeps its data in a directory of its own (removed on stop), and is
// stopped by its recorded pid, never by name. Never a system-wide etcd.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "lab/process.h"
#include "util/result.h"

namespace weir::lab {

struct EtcdClusterOptions {
  int members = 1;
  // Where the members' data directories go: a new directory "weir-etcd-<tag>-XXXXXX" in it,
  // removed with the cluster.
  std::filesystem::path parent = std::filesystem::temp_directory_path();
  std::string tag = "test";
  std::string netns;  // run the members in this namespace ("" = this one)
  std::string listen_ip = "127.0.0.1";
  std::chrono::milliseconds ready_timeout{20000};
};

class EtcdCluster {
 public:
  // Starts every member and waits until the cluster answers a linearizable read.
  static Result<std::unique_ptr<EtcdCluster>> start(const EtcdClusterOptions& o);
  // Stops every member (SIGTERM, then SIGKILL) and removes the data.
  ~EtcdCluster();
  EtcdCluster(const EtcdCluster&) = delete;
  EtcdCluster& operator=(const EtcdCluster&) = delete;

  int size() const { return int(members_.size()); }
  // "http://127.0.0.1:P1,http://127.0.0.1:P2,...": every member's client URL.
  std::string endpoints() const;
  std::string endpoint(int i) const;
  // SIGKILLs member i (a crash: no graceful leave).
  Status kill_member(int i);
  // Starts member i again on its data directory and ports (after kill_member()).
  Status restart_member(int i);
  bool member_running(int i) const;
  const std::filesystem::path& dir() const { return dir_; }
  // Every member's record (for a lab's record file).
  std::vector<ProcessRecord> records() const;

 private:
  struct Member {
    std::string name;
    uint16_t client_port = 0, peer_port = 0;
    ProcessRecord proc;
  };
  EtcdCluster() = default;
  Status spawn_member(int i, bool existing);
  std::string initial_cluster() const;

  EtcdClusterOptions opts_;
  std::filesystem::path dir_;
  std::string token_;
  std::vector<Member> members_;
};

// How one member runs: `etcd` with these flags (fast elections for a lab on one machine, warn-level
// logs). With `existing`, a member that rejoins on its data directory.
struct EtcdMemberSpec {
  std::string name, data_dir, client_url, peer_url, initial_cluster, token;
  bool existing = false;
};
std::vector<std::string> etcd_member_argv(const EtcdMemberSpec& m);

// Waits until a linearizable read through `endpoints` succeeds, at most `timeout`.
Status wait_etcd_ready(const std::string& endpoints, std::chrono::milliseconds timeout);

}  // namespace weir::lab
