// Conversions between the YAML weir reads and JSON, for `weir apply` (which stores resources as
// JSON) and `weir get -o yaml|json`. Scalars are typed as the parser types them (yaml_input.h:
// the YAML 1.2 core schema, quoted scalars are strings), so a value means the same on both
// sides.
#pragma once

#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>
#include <string>

namespace weir::model {

// A document as JSON: mappings become objects (keys as strings), sequences arrays, scalars
// null, booleans, integers (int64; larger ones stay strings), numbers or strings.
nlohmann::json yaml_to_json(const YAML::Node& n);

// JSON as a block-style YAML document (no leading "---"); a string that would read back as
// another type ("true", "80", "null", "") is quoted.
std::string json_to_yaml(const nlohmann::json& j);

}  // namespace weir::model
