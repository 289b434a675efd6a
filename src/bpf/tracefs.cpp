#include "bpf/tracefs.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sched.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "bpf/bpffs.h"
#include "util/fd.h"
#include "util/file.h"

namespace weir::bpf {
namespace {

constexpr long kTracefsMagic = 0x74726163;  // TRACEFS_MAGIC (linux/magic.h)
constexpr const char* kTracefs = "/sys/kernel/tracing";
constexpr const char* kDebugfsTracing = "/sys/kernel/debug/tracing";

bool is_tracefs(const char* dir) {
  struct statfs st {};
  return ::statfs(dir, &st) == 0 && st.f_type == kTracefsMagic;
}

}  // namespace

Result<std::string> tracefs_dir(bool mount_if_missing) {
  if (is_tracefs(kTracefs)) return std::string(kTracefs);
  if (is_tracefs(kDebugfsTracing)) return std::string(kDebugfsTracing);
  if (!mount_if_missing) {
    return Error{ENOENT, fmt::format("tracefs is not mounted (neither {} nor {}): mount it with `mount -t tracefs "
                                     "tracefs {}`",
                                     kTracefs, kDebugfsTracing, kTracefs)};
  }
  WEIR_TRY(mkdirs(kTracefs));
  if (::mount("tracefs", kTracefs, "tracefs", 0, nullptr) != 0)
    return errno_error(std::string("mounting tracefs on ") + kTracefs);
  spdlog::info("mounted tracefs on {} (the kernel trace buffer was not reachable)", kTracefs);
  return std::string(kTracefs);
}

Result<unsigned> ensure_trace_buffer(unsigned kb) {
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return errno_error("pipe");
  Fd rd(pipefd[0]), wr(pipefd[1]);
  // Everything the child needs, built before the fork: after it, only system calls.
  const std::string want = std::to_string(kb);
  const std::string tracefs_path = std::string(kTracefs) + "/buffer_size_kb";
  const std::string debugfs_path = std::string(kDebugfsTracing) + "/buffer_size_kb";
  const pid_t pid = ::fork();
  if (pid < 0) return errno_error("fork");
  if (pid == 0) {
    rd.reset();
    unsigned before = 0;
    int rc = 1;
    if (::unshare(CLONE_NEWNS) == 0 && ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0) {
      const char* path = is_tracefs(kTracefs)          ? tracefs_path.c_str()
                         : is_tracefs(kDebugfsTracing) ? debugfs_path.c_str()
                                                       : nullptr;
      if (path == nullptr && ::mount("tracefs", kTracefs, "tracefs", 0, nullptr) == 0) path = tracefs_path.c_str();
      if (path != nullptr) {
        char buf[64] = {};
        int fd = ::open(path, O_RDWR | O_CLOEXEC);
        if (fd >= 0 && ::read(fd, buf, sizeof(buf) - 1) > 0) {
          before = static_cast<unsigned>(std::strtoul(buf, nullptr, 10));
          const bool big_enough = before >= kb && std::strstr(buf, "expanded") == nullptr;
          rc = big_enough || ::pwrite(fd, want.data(), want.size(), 0) == static_cast<ssize_t>(want.size()) ? 0 : 1;
        }
        if (fd >= 0) ::close(fd);
      }
    }
    (void)!::write(wr.get(), &before, sizeof(before));
    ::_exit(rc);
  }
  wr.reset();
  unsigned before = 0;
  const bool got = ::read(rd.get(), &before, sizeof(before)) == static_cast<ssize_t>(sizeof(before));
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return errno_error("waitpid");
  if (!got || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return make_error("could not make the kernel trace buffer {} KiB per CPU (tracefs buffer_size_kb)", kb);
  return before;
}

Result<std::string> read_trace() {
  auto dir = tracefs_dir();
  if (!dir) return dir.error();
  return read_file(*dir + "/trace");
}

Status follow_trace(const std::function<bool(const std::string&)>& line) {
  auto dir = tracefs_dir();
  if (!dir) return dir.error();
  const std::string path = *dir + "/trace_pipe";
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno_error("opening " + path);
  std::string pending;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("reading " + path);
    }
    if (n == 0) return {};
    pending.append(buf, static_cast<size_t>(n));
    size_t start = 0;
    for (size_t nl = pending.find('\n'); nl != std::string::npos; nl = pending.find('\n', start)) {
      if (!line(pending.substr(start, nl - start))) return {};
      start = nl + 1;
    }
    pending.erase(0, start);
  }
}

}  // namespace weir::bpf
