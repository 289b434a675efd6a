#include "model/yaml_json.h"

#include <charconv>
#include <cmath>
#include <cstdlib>

#include "model/yaml_input.h"

namespace weir::model {

using json = nlohmann::json;

namespace {

json int_scalar(const std::string& s) {
  std::string_view v = s;
  bool neg = false;
  if (!v.empty() && (v[0] == '-' || v[0] == '+')) {
    neg = v[0] == '-';
    v.remove_prefix(1);
  }
  int base = 10;
  if (v.size() > 2 && v[0] == '0' && (v[1] == 'x' || v[1] == 'o')) {
    base = v[1] == 'x' ? 16 : 8;
    v.remove_prefix(2);
  }
  uint64_t u = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), u, base);
  if (ec != std::errc() || p != v.data() + v.size()) return s;
  if (!neg && u <= uint64_t(INT64_MAX)) return int64_t(u);
  if (neg && u <= uint64_t(INT64_MAX) + 1)
    return u == uint64_t(INT64_MAX) + 1 ? INT64_MIN : -int64_t(u);
  return s;
}

json float_scalar(const std::string& s) {
  char* end = nullptr;
  double d = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || !std::isfinite(d)) return s;  // .inf, .nan: no JSON number
  return d;
}

void emit(YAML::Emitter& out, const json& j) {
  switch (j.type()) {
    case json::value_t::object:
      out << YAML::BeginMap;
      for (const auto& [k, v] : j.items()) {
        out << YAML::Key;
        if (plain_scalar_type(k) != ScalarType::String || k.empty() || k == "null" || k == "~")
          out << YAML::DoubleQuoted;
        out << k << YAML::Value;
        emit(out, v);
      }
      out << YAML::EndMap;
      break;
    case json::value_t::array:
      out << YAML::BeginSeq;
      for (const auto& v : j) emit(out, v);
      out << YAML::EndSeq;
      break;
    case json::value_t::string: {
      const auto& s = j.get_ref<const std::string&>();
      if (s.empty() || plain_scalar_type(s) != ScalarType::String || s == "null" || s == "~" ||
          s == "Null" || s == "NULL")
        out << YAML::DoubleQuoted;
      out << s;
      break;
    }
    case json::value_t::boolean:
      out << j.get<bool>();
      break;
    case json::value_t::number_integer:
      out << j.get<int64_t>();
      break;
    case json::value_t::number_unsigned:
      out << j.get<uint64_t>();
      break;
    case json::value_t::number_float:
      out << j.get<double>();
      break;
    default:
      out << YAML::Null;
      break;
  }
}

}  // namespace

json yaml_to_json(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map: {
      json o = json::object();
      for (const auto& kv : n) o[kv.first.Scalar()] = yaml_to_json(kv.second);
      return o;
    }
    case YAML::NodeType::Sequence: {
      json a = json::array();
      for (const auto& v : n) a.push_back(yaml_to_json(v));
      return a;
    }
    case YAML::NodeType::Scalar:
      switch (scalar_type(n)) {
        case ScalarType::Null:
          return nullptr;
        case ScalarType::Bool:
          return n.Scalar()[0] == 't' || n.Scalar()[0] == 'T';
        case ScalarType::Int:
          return int_scalar(n.Scalar());
        case ScalarType::Float:
          return float_scalar(n.Scalar());
        case ScalarType::String:
          return n.Scalar();
      }
      return n.Scalar();
    default:
      return nullptr;
  }
}

std::string json_to_yaml(const json& j) {
  YAML::Emitter out;
  out.SetIndent(2);
  emit(out, j);
  return std::string(out.c_str()) + "\n";
}

}  // namespace weir::model
