// A shell command for the BPF tests' setup (ip, tc): its exit code, and its output (stdout and
// stderr) in *out when given.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace weir::test {

inline int sh(const std::string& cmd, std::string* out = nullptr) {
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return -1;
  std::string s;
  char buf[512];
  while (size_t n = fread(buf, 1, sizeof(buf), p)) s.append(buf, n);
  int rc = ::pclose(p);
  if (out != nullptr) *out = s;
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

}  // namespace weir::test
