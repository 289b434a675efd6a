#include "lab/process.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sched.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

namespace weir::lab {

namespace {

using Clock = std::chrono::steady_clock;

int pidfd_open(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }
int pidfd_send_signal(int pidfd, int sig) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

// Parses /proc/<pid>/stat: state (field 3) and starttime (field 22). The command name (field
// 2) may contain spaces and parentheses, so parsing starts after the last ')'.
struct StatFields {
  char state = '?';
  uint64_t start_time = 0;
};

Result<StatFields> read_stat(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  if (!in) return Error{ENOENT, fmt::format("process {} does not exist", pid)};
  std::string line;
  std::getline(in, line);
  auto close = line.rfind(')');
  if (close == std::string::npos) return make_error("/proc/{}/stat: unexpected format", pid);
  std::istringstream rest(line.substr(close + 1));
  StatFields f;
  rest >> f.state;  // field 3
  std::string skip;
  for (int field = 4; field < 22; ++field) rest >> skip;
  rest >> f.start_time;  // field 22
  if (!rest) return make_error("/proc/{}/stat: unexpected format", pid);
  return f;
}

// Opens a pidfd for the recorded process; an invalid Fd when it is gone or the pid now
// belongs to another process.
Result<Fd> open_recorded(const ProcessRecord& rec) {
  if (rec.pid <= 0) return Fd{};
  Fd pfd(pidfd_open(rec.pid));
  if (!pfd) {
    if (errno == ESRCH) return Fd{};
    return errno_error(fmt::format("pidfd_open({}) for {}", rec.pid, rec.what));
  }
  auto st = read_stat(rec.pid);
  if (!st || st->start_time != rec.start_time) return Fd{};  // reused pid: not ours
  return pfd;
}

void write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

// argv as the char* array execv wants; built before fork (no allocation in the child).
struct CArgv {
  std::vector<std::string> store;
  std::vector<char*> ptrs;
  explicit CArgv(std::vector<std::string> a) : store(std::move(a)) {
    for (auto& s : store) ptrs.push_back(s.data());
    ptrs.push_back(nullptr);
  }
};

// The part of every child that runs between fork and exec: only async-signal-safe calls.
void reset_signals_in_child() {
  sigset_t all;
  sigemptyset(&all);
  sigprocmask(SIG_SETMASK, &all, nullptr);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int s : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD}) sigaction(s, &dfl, nullptr);
}

// In a forked child before exec (async-signal-safe system calls only): drops the capabilities of
// `mask` from the bounding, inheritable and ambient sets. Root's exec then grants only what the
// bounding set still has. Returns 0 or an errno.
int drop_capabilities_in_child(uint64_t mask) {
  if (mask == 0) return 0;
  for (int cap = 0; cap < 64; ++cap)
    if (((mask >> cap) & 1U) != 0 && ::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) return errno;
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) return errno;
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (::syscall(SYS_capget, &hdr, data) != 0) return errno;
  data[0].inheritable &= ~static_cast<uint32_t>(mask);
  data[1].inheritable &= ~static_cast<uint32_t>(mask >> 32);
  if (::syscall(SYS_capset, &hdr, data) != 0) return errno;
  return 0;
}

[[noreturn]] void child_fail(int err_fd, int err) {
  if (err_fd >= 0) write_all(err_fd, reinterpret_cast<const char*>(&err), sizeof err);
  _exit(127);
}

}  // namespace

Result<uint64_t> process_start_time(pid_t pid) {
  auto st = read_stat(pid);
  if (!st) return st.error();
  return st->start_time;
}

bool process_alive(const ProcessRecord& rec) {
  if (rec.pid <= 0) return false;
  auto st = read_stat(rec.pid);
  if (!st) return false;
  return st->start_time == rec.start_time && st->state != 'Z' && st->state != 'X';
}

Result<std::string> find_program(const std::string& name) {
  if (name.empty()) return Error{ENOENT, "empty program name"};
  if (name.find('/') != std::string::npos) {
    if (::access(name.c_str(), X_OK) != 0) return errno_error(fmt::format("program {}", name));
    return name;
  }
  std::string path = std::getenv("PATH") ? std::getenv("PATH") : "";
  path += ":/usr/sbin:/sbin:/usr/bin:/bin";
  std::istringstream dirs(path);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    std::string cand = fmt::format("{}/{}", dir, name);
    struct stat sb {};
    if (::stat(cand.c_str(), &sb) == 0 && S_ISREG(sb.st_mode) && ::access(cand.c_str(), X_OK) == 0)
      return cand;
  }
  return Error{ENOENT, fmt::format("program '{}' not found in PATH or /usr/sbin, /sbin", name)};
}

ExitStatus ExitStatus::from_wait(int wstatus) {
  ExitStatus s;
  if (WIFEXITED(wstatus)) {
    s.exited = true;
    s.code = WEXITSTATUS(wstatus);
  } else if (WIFSIGNALED(wstatus)) {
    s.signal = WTERMSIG(wstatus);
  }
  return s;
}

std::string ExitStatus::str() const {
  if (unknown) return "exited (status unknown: not a child of this process)";
  if (exited) return fmt::format("exit code {}", code);
  return fmt::format("killed by signal {} ({})", signal, ::strsignal(signal));
}

std::string join_argv(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) {
    if (!s.empty()) s += ' ';
    s += a.find(' ') == std::string::npos && !a.empty() ? a : "'" + a + "'";
  }
  return s;
}

Result<Fd> open_netns(const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos)
    return Error{EINVAL, fmt::format("invalid network namespace name '{}'", name)};
  std::string path = "/run/netns/" + name;
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno_error(fmt::format("opening network namespace {} ({})", name, path));
  return fd;
}

Result<RunResult> run_process(const std::vector<std::string>& argv, const RunOptions& opts) {
  if (argv.empty()) return Error{EINVAL, "run_process: empty command"};
  auto prog = find_program(argv[0]);
  if (!prog) return prog.error();
  Fd ns;
  if (!opts.netns.empty()) {
    auto r = open_netns(opts.netns);
    if (!r) return r.error().wrap(join_argv(argv));
    ns = std::move(*r);
  }
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) != 0) return errno_error("pipe");
  Fd in_r(in[0]), in_w(in[1]);
  if (::pipe2(out, O_CLOEXEC) != 0) return errno_error("pipe");
  Fd out_r(out[0]), out_w(out[1]);
  if (::pipe2(err, O_CLOEXEC) != 0) return errno_error("pipe");
  Fd err_r(err[0]), err_w(err[1]);

  CArgv cargv(argv);
  const char* path = prog->c_str();
  pid_t pid = ::fork();
  if (pid < 0) return errno_error("fork");
  if (pid == 0) {
    reset_signals_in_child();
    if (ns && ::setns(ns.get(), CLONE_NEWNET) != 0) child_fail(-1, errno);
    // Move the pipe ends out of the way of 0-2 before dup2 (they are >= 3 anyway).
    if (::dup2(in_r.get(), 0) < 0 || ::dup2(out_w.get(), 1) < 0 || ::dup2(err_w.get(), 2) < 0)
      _exit(127);
    ::syscall(SYS_close_range, 3U, ~0U, 0U);
    ::execv(path, cargv.ptrs.data());
    const char msg[] = "exec failed\n";
    write_all(2, msg, sizeof msg - 1);
    _exit(127);
  }
  in_r.reset();
  out_w.reset();
  err_w.reset();
  if (!opts.stdin_data.empty()) {
    struct sigaction ign {
    }, old{};
    ign.sa_handler = SIG_IGN;
    ::sigaction(SIGPIPE, &ign, &old);
    write_all(in_w.get(), opts.stdin_data.data(), opts.stdin_data.size());
    ::sigaction(SIGPIPE, &old, nullptr);
  }
  in_w.reset();

  RunResult res;
  auto deadline = Clock::now() + opts.timeout;
  bool timed_out = false;
  pollfd pfds[2] = {{out_r.get(), POLLIN, 0}, {err_r.get(), POLLIN, 0}};
  std::string* sinks[2] = {&res.out, &res.err};
  int open_count = 2;
  char buf[8192];
  while (open_count > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    int n = ::poll(pfds, 2, static_cast<int>(left.count()));
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (pfds[i].fd < 0 || pfds[i].revents == 0) continue;
      ssize_t r = ::read(pfds[i].fd, buf, sizeof buf);
      if (r > 0) {
        sinks[i]->append(buf, static_cast<size_t>(r));
      } else if (r == 0 || errno != EINTR) {
        pfds[i].fd = -1;
        --open_count;
      }
    }
  }
  if (timed_out) ::kill(pid, SIGKILL);  // our own child, just forked
  int wstatus = 0;
  while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  if (timed_out)
    return Error{ETIMEDOUT, fmt::format("{}: still running after {} ms (killed); stderr: {}",
                                        join_argv(argv), opts.timeout.count(), res.err)};
  res.status = ExitStatus::from_wait(wstatus);
  return res;
}

Result<std::string> run_checked(const std::vector<std::string>& argv, const RunOptions& opts) {
  auto r = run_process(argv, opts);
  if (!r) return r.error();
  if (!r->status.success()) {
    std::string err = r->err;
    while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
    return make_error("{}{}: {}: {}", opts.netns.empty() ? "" : "[netns " + opts.netns + "] ",
                      join_argv(argv), r->status.str(), err.empty() ? r->out : err);
  }
  return std::move(r->out);
}

Result<ProcessRecord> spawn(const std::vector<std::string>& argv, const SpawnOptions& opts) {
  if (argv.empty()) return Error{EINVAL, "spawn: empty command"};
  auto prog = find_program(argv[0]);
  if (!prog) return prog.error();
  Fd ns;
  if (!opts.netns.empty()) {
    auto r = open_netns(opts.netns);
    if (!r) return r.error().wrap(join_argv(argv));
    ns = std::move(*r);
  }
  Fd output(::open(opts.output_path.empty() ? "/dev/null" : opts.output_path.c_str(),
                   O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
  if (!output) return errno_error(fmt::format("opening {}", opts.output_path));
  Fd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!devnull) return errno_error("opening /dev/null");
  int go[2], ex[2];
  if (::pipe2(go, O_CLOEXEC) != 0) return errno_error("pipe");
  Fd go_r(go[0]), go_w(go[1]);
  if (::pipe2(ex, O_CLOEXEC) != 0) return errno_error("pipe");
  Fd ex_r(ex[0]), ex_w(ex[1]);

  CArgv cargv(argv);
  const char* path = prog->c_str();
  pid_t pid = ::fork();
  if (pid < 0) return errno_error("fork");
  if (pid == 0) {
    reset_signals_in_child();
    // Move every fd we still need above 10 so that dup2 onto 0..3 cannot clobber them.
    int err_fd = ::fcntl(ex_w.get(), F_DUPFD_CLOEXEC, 10);
    char byte = 0;
    ssize_t r;
    do {
      r = ::read(go_r.get(), &byte, 1);
    } while (r < 0 && errno == EINTR);
    if (r != 1) _exit(1);  // the parent did not let us run
    if (ns && ::setns(ns.get(), CLONE_NEWNET) != 0) child_fail(err_fd, errno);
    if (opts.new_session) ::setsid();
    if (int e = drop_capabilities_in_child(opts.drop_capabilities); e != 0) child_fail(err_fd, e);
    int out_fd = ::fcntl(output.get(), F_DUPFD_CLOEXEC, 10);
    int in_fd = ::fcntl(devnull.get(), F_DUPFD_CLOEXEC, 10);
    int pass = opts.pass_fd >= 0 ? ::fcntl(opts.pass_fd, F_DUPFD_CLOEXEC, 10) : -1;
    if (out_fd < 0 || in_fd < 0 || (opts.pass_fd >= 0 && pass < 0)) child_fail(err_fd, errno);
    if (::dup2(in_fd, 0) < 0 || ::dup2(out_fd, 1) < 0) child_fail(err_fd, errno);
    if (!opts.inherit_stderr && ::dup2(out_fd, 2) < 0) child_fail(err_fd, errno);
    if (pass >= 0 && ::dup2(pass, 3) < 0) child_fail(err_fd, errno);
    unsigned first = pass >= 0 ? 4U : 3U;
    ::syscall(SYS_close_range, first, ~0U, CLOSE_RANGE_CLOEXEC);
    ::execv(path, cargv.ptrs.data());
    child_fail(err_fd, errno);
  }
  go_r.reset();
  ex_w.reset();
  auto kill_child = [&] {
    ::kill(pid, SIGKILL);  // our own child, never exec'd
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  };
  ProcessRecord rec;
  rec.pid = pid;
  rec.what = argv.size() > 1 ? argv[0] + " " + argv[1] : argv[0];
  auto st = process_start_time(pid);
  if (!st) {
    kill_child();
    return st.error().wrap("reading the start time of a child");
  }
  rec.start_time = *st;
  if (opts.on_forked) {
    auto s = opts.on_forked(rec);
    if (!s) {
      kill_child();
      return s.error();
    }
  }
  char byte = 1;
  if (::write(go_w.get(), &byte, 1) != 1) {
    kill_child();
    return errno_error("releasing the child");
  }
  go_w.reset();
  int child_errno = 0;
  ssize_t r;
  do {
    r = ::read(ex_r.get(), &child_errno, sizeof child_errno);
  } while (r < 0 && errno == EINTR);
  if (r == static_cast<ssize_t>(sizeof child_errno)) {
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    return Error{child_errno, fmt::format("starting {}{}",
                                          opts.netns.empty() ? "" : "[netns " + opts.netns + "] ",
                                          join_argv(argv))};
  }
  return rec;
}

Status signal_process(const ProcessRecord& rec, int sig) {
  auto pfd = open_recorded(rec);
  if (!pfd) return pfd.error();
  if (!*pfd) return {};
  if (pidfd_send_signal(pfd->get(), sig) != 0 && errno != ESRCH)
    return errno_error(fmt::format("signal {} to {} (pid {})", sig, rec.what, rec.pid));
  return {};
}

Result<ExitStatus> wait_process(const ProcessRecord& rec, std::chrono::milliseconds timeout) {
  ExitStatus gone;
  gone.exited = true;
  gone.unknown = true;
  if (rec.pid <= 0) return gone;
  // Our child? Then waitpid gives the real status (and reaps it).
  auto deadline = Clock::now() + timeout;
  auto pfd = open_recorded(rec);
  if (!pfd) return pfd.error();
  if (!*pfd) {
    // Gone or not ours; still reap it if it is our zombie with the same identity.
    int wstatus = 0;
    auto st = read_stat(rec.pid);
    if (st && st->start_time == rec.start_time && ::waitpid(rec.pid, &wstatus, WNOHANG) == rec.pid)
      return ExitStatus::from_wait(wstatus);
    return gone;
  }
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    pollfd p{pfd->get(), POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(0, left.count())));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("poll on pidfd");
    if (n == 0)
      return Error{ETIMEDOUT, fmt::format("{} (pid {}) still running after {} ms", rec.what,
                                          rec.pid, timeout.count())};
    break;
  }
  int wstatus = 0;
  pid_t w;
  do {
    w = ::waitpid(rec.pid, &wstatus, 0);
  } while (w < 0 && errno == EINTR);
  if (w == rec.pid) return ExitStatus::from_wait(wstatus);
  return gone;  // ECHILD: not our child; it has exited
}

Result<ExitStatus> terminate_process(const ProcessRecord& rec, int sig,
                                     std::chrono::milliseconds grace) {
  if (auto s = signal_process(rec, sig); !s) return s.error();
  auto r = wait_process(rec, grace);
  if (r || r.error().err != ETIMEDOUT) return r;
  if (auto s = signal_process(rec, SIGKILL); !s) return s.error();
  return wait_process(rec, std::chrono::seconds(5));
}

}  // namespace weir::lab
