// Helpers shared by the model, calc and datastore unit tests.
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "model/parse.h"

namespace weir::testing {

// Contents of tests/data/<name>.
inline std::string testdata(const std::string& name) {
  std::ifstream in(std::string(WEIR_TESTDATA) + "/" + name);
  if (!in) throw std::runtime_error("missing test data file " + name);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// build_snapshot() over the given test data files (read from tests/data).
inline model::SnapshotResult load_testdata(const std::vector<std::string>& names) {
  std::vector<model::SourceText> srcs;
  for (const auto& n : names) srcs.push_back({n, testdata(n)});
  return model::build_snapshot(srcs);
}

// build_snapshot() over one in-memory file.
inline model::SnapshotResult load_text(const std::string& file, const std::string& text) {
  return model::build_snapshot({{file, text}});
}

inline std::string dump(const model::ValidationErrors& errs) {
  std::string out;
  for (const auto& e : errs) out += "  " + e.str() + "\n";
  return out;
}

// Passes when `errs` holds an error with exactly this file, resource and field whose message
// contains `message_part`.
inline ::testing::AssertionResult HasError(const model::ValidationErrors& errs,
                                           const std::string& file, const std::string& resource,
                                           const std::string& field,
                                           const std::string& message_part) {
  for (const auto& e : errs) {
    if (e.file == file && e.resource == resource && e.field == field &&
        e.message.find(message_part) != std::string::npos)
      return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "no error {" << file << " | " << resource << " | "
                                       << field << " | ..." << message_part << "...} among:\n"
                                       << dump(errs);
}

}  // namespace weir::testing
