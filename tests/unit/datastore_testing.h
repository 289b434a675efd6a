// Helpers shared by the datastore unit tests.
#pragma once

#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include "model_testing.h"

namespace weir::testing {

// A temporary directory /tmp/weir-<pid>-XXXXXX, removed on destruction (also when a test fails).
class TempDir {
 public:
  TempDir() {
    std::string tmpl = "/tmp/weir-" + std::to_string(::getpid()) + "-XXXXXX";
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

  void write(const std::string& name, const std::string& text) const {
    std::ofstream out(path_ / name, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    if (!out) throw std::runtime_error("writing " + name);
  }
  void copy_testdata(const std::string& name) const { write(name, testdata(name)); }

 private:
  std::filesystem::path path_;
};

}  // namespace weir::testing
