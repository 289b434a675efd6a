// Child processes for the lab: run a command (optionally inside a named network namespace) and
// capture its output, spawn long-lived daemons with their pid recorded before they exec, and
// signal/wait for processes by a (pid, start time) record so that a recycled pid is never hit.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "util/fd.h"
#include "util/result.h"

namespace weir::lab {

// A process weir started, identified beyond its pid: the kernel start time (field 22 of
// /proc/<pid>/stat, in clock ticks since boot) distinguishes it from a later process that
// reuses the pid.
struct ProcessRecord {
  pid_t pid = 0;
  uint64_t start_time = 0;
  std::string what;  // "agent", "serve pod2", "guardian": for messages

  bool valid() const { return pid > 0; }
};

// The start time of `pid`, or an Error (ENOENT when the process does not exist).
Result<uint64_t> process_start_time(pid_t pid);

// True while the recorded process exists (a zombie counts as gone) and is the same process.
bool process_alive(const ProcessRecord& rec);

// Absolute path of `name`: returned as is when it contains '/', else searched in $PATH, then in
// /usr/sbin, /sbin, /usr/bin, /bin. Error ENOENT naming the program when not found.
Result<std::string> find_program(const std::string& name);

// How a child's exit is reported.
struct ExitStatus {
  bool exited = false;  // exited normally with `code`
  int code = 0;
  int signal = 0;        // killed by this signal (when !exited)
  bool unknown = false;  // it exited, but it was not our child: the status is not known

  bool success() const { return unknown || (exited && code == 0); }
  static ExitStatus from_wait(int wstatus);
  // "exit code 1", "killed by signal 9 (Killed)".
  std::string str() const;
};

struct RunOptions {
  std::string netns;                         // run inside /run/netns/<netns> when not empty
  std::chrono::milliseconds timeout{30000};  // the child is SIGKILLed after this
  std::string stdin_data;                    // written to the child's stdin, then closed

  static RunOptions in(std::string netns_name,
                       std::chrono::milliseconds t = std::chrono::milliseconds(30000)) {
    RunOptions o;
    o.netns = std::move(netns_name);
    o.timeout = t;
    return o;
  }
};

struct RunResult {
  ExitStatus status;
  std::string out;
  std::string err;
};

// Runs argv[0] (resolved with find_program) with argv, waits for it and captures stdout and
// stderr. An Error only when the process could not be run or timed out; a non-zero exit is
// reported in RunResult::status.
Result<RunResult> run_process(const std::vector<std::string>& argv, const RunOptions& opts = {});

// run_process(), then an Error when the exit status is not 0: "<cmd...>: exit code N: <stderr>".
Result<std::string> run_checked(const std::vector<std::string>& argv, const RunOptions& opts = {});

// "ip -n ns link add ..." style joining for messages (no quoting beyond what is readable).
std::string join_argv(const std::vector<std::string>& argv);

struct SpawnOptions {
  std::string netns;            // setns() into /run/netns/<netns> before exec when not empty
  std::string output_path;      // stdout+stderr appended to this file ("" = /dev/null)
  bool inherit_stderr = false;  // keep the parent's stderr instead of output_path for fd 2
  bool new_session = false;     // setsid(): keep terminal signals (Ctrl-C) away from the child
  int pass_fd = -1;             // made available to the child as fd 3
  // Capabilities (bit N = capability N) the child loses before exec: dropped from its bounding
  // set, its inheritable set and its ambient set, so that the program runs without them even as
  // root (what `weir lab agent start --drop-cap` does to see how the agent fares without one).
  uint64_t drop_capabilities = 0;
  // Called in the parent with the record of the forked child BEFORE the child is allowed to
  // exec: record the pid somewhere durable here. An Error kills the child and is returned.
  std::function<Status(const ProcessRecord&)> on_forked;
};

// Forks and execs argv (argv[0] resolved with find_program); stdin is /dev/null and every fd
// other than 0-2 (and 3 when pass_fd is set) is closed in the child. Returns the record.
Result<ProcessRecord> spawn(const std::vector<std::string>& argv, const SpawnOptions& opts);

// Sends `sig` to the recorded process if it is still the same process (pidfd based). Ok when
// the process is already gone.
Status signal_process(const ProcessRecord& rec, int sig);

// Waits until the recorded process has exited, at most `timeout`. When it is our child it is
// reaped and its ExitStatus returned; when it is not our child (a lab loaded from its record
// by another process), an ExitStatus with unknown=true is returned once it is gone.
// Error ETIMEDOUT when it still runs after `timeout`.
Result<ExitStatus> wait_process(const ProcessRecord& rec, std::chrono::milliseconds timeout);

// SIGTERM (or `sig`), wait up to `grace`, then SIGKILL and wait again. Returns how it ended.
Result<ExitStatus> terminate_process(const ProcessRecord& rec, int sig = 15,
                                     std::chrono::milliseconds grace = std::chrono::seconds(10));

// Opens /run/netns/<name> (O_RDONLY|O_CLOEXEC). Error naming the namespace.
Result<Fd> open_netns(const std::string& name);

}  // namespace weir::lab
