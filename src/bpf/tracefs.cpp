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
#include <string>

#include "bpf/bpffs.h"
#include "util/fd.h"
#include "util/file.h"

namespace weir::bpf {
namespace {

constexpr long kTracefsMagic = 0x74726163;  // TRACEFS_MAGIC (linux/magic.h)
constexpr const char* kTracefs = "/sys/kernel/tracing";
constexpr const char* kDebugfsTracing = "/sys/kernel/debug/tracing";

bool is_tracefs(const std::string& dir) {
  struct statfs st {};
  return ::statfs(dir.c_str(), &st) == 0 && st.f_type == kTracefsMagic;
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

namespace {
// The size in buffer_size_kb's text: "1408" or "7 (expanded: 1408)" (the size until a tracer
// first uses the buffer is the first number).
unsigned parse_buffer_kb(const std::string& text) { return static_cast<unsigned>(std::strtoul(text.c_str(), nullptr, 10)); }
}  // namespace

Result<unsigned> ensure_trace_buffer(unsigned kb) {
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return errno_error("pipe");
  Fd rd(pipefd[0]), wr(pipefd[1]);
  const pid_t pid = ::fork();
  if (pid < 0) return errno_error("fork");
  if (pid == 0) {
    // The child: only system calls from here on.
    rd.reset();
    unsigned before = 0;
    int rc = 1;
    if (::unshare(CLONE_NEWNS) == 0 && ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0) {
      std::string dir = is_tracefs(kTracefs) ? kTracefs : is_tracefs(kDebugfsTracing) ? kDebugfsTracing : "";
      if (dir.empty() && ::mount("tracefs", kTracefs, "tracefs", 0, nullptr) == 0) dir = kTracefs;
      if (!dir.empty()) {
        const std::string path = dir + "/buffer_size_kb";
        char buf[64] = {};
        int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
        if (fd >= 0 && ::read(fd, buf, sizeof(buf) - 1) > 0) {
          before = parse_buffer_kb(buf);
          const std::string want = std::to_string(kb);
          rc = (before >= kb && std::string(buf).find("expanded") == std::string::npos) ||
                       ::pwrite(fd, want.data(), want.size(), 0) == static_cast<ssize_t>(want.size())
                   ? 0
                   : 1;
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
