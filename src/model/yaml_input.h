// Strict reading of YAML and JSON input, after the Kubernetes API server (docs/resources.md,
// "Strict input"): bounded size and nesting, no duplicate mapping keys, typed scalars.
//
// yaml-cpp builds a node tree without these checks: a duplicate key keeps both entries (lookups
// see the first), a scalar keeps its text and its tag, and deep flow nesting costs memory
// before its own recursion guard fires. These helpers add what the parser lacks; parse.cpp
// applies them to every file before any resource is read.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "model/parse.h"

namespace weir::model {

// What a scalar holds: quoted and block scalars and `!!str` are strings; a plain scalar is
// resolved by the YAML 1.2 core schema (true/false, integers, floats, null), as Kubernetes'
// YAML-to-JSON conversion resolves it before the typed decode.
enum class ScalarType { Null, Bool, Int, Float, String };
ScalarType scalar_type(const YAML::Node& n);
// The type a plain (unquoted) scalar with this text resolves to.
ScalarType plain_scalar_type(std::string_view s);
// "null", "a boolean", "an integer", "a number", "a string".
std::string_view describe(ScalarType t);

// A cheap pass over the raw text before yaml-cpp sees it: the 1-based line where the nesting of
// flow collections ([ and {, outside quotes and comments) first exceeds `max_depth`, or 0.
// yaml-cpp scans a whole flow collection into memory before its recursion guard fires, so a
// 2 MB line of '[' costs hundreds of MB; this rejects it first. It may over-count brackets
// inside block scalars, never those inside quotes or comments.
int flow_depth_exceeded(std::string_view text, int max_depth);

// One step from a document's root to a node: the node, and how its parent reaches it (a
// mapping key, or an index into a list; neither for the root).
struct PathStep {
  YAML::Node node;
  std::string key;
  long index = -1;
};
using StructureSink =
    std::function<void(const std::vector<PathStep>& path, const YAML::Mark& at, std::string msg)>;

// Walks a document (without recursion) and reports to `sink`, with the path to the mapping or
// list concerned: a duplicate mapping key (naming the first occurrence), a key that is a list
// or mapping, nesting deeper than kMaxNestingDepth, and more than `node_budget` nodes visited
// (aliases make yaml-cpp share nodes: an alias bomb expands exponentially). `node_budget` is
// decremented by the nodes visited. Returns false when the walk stopped early (too deep, over
// budget): the document must not be read further.
bool check_structure(const YAML::Node& doc, size_t& node_budget, const StructureSink& sink);

// "spec.ports[0].port", "metadata.labels[\"kubernetes.io/service-name\"]": the field path of
// path[from..] (keys that are not plain identifiers are bracketed and quoted; long keys are
// clipped).
std::string field_path(const std::vector<PathStep>& path, size_t from);

}  // namespace weir::model
