#include "util/file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "util/fd.h"

namespace weir {

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
  if (std::rename(tmp.c_str(), dst.c_str()) != 0) {
    Error e = errno_error(fmt::format("renaming {} to {}", tmp, dst));
    ::unlink(tmp.c_str());
    return e;
  }
  return {};
}

}  // namespace weir
