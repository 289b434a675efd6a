#include "model/yaml_input.h"

#include <fmt/format.h>

#include <memory>
#include <set>
#include <unordered_map>
#include <utility>

#include "model/validation.h"

namespace weir::model {

namespace {

bool all_of(std::string_view s, bool (*pred)(char)) {
  if (s.empty()) return false;
  for (char c : s)
    if (!pred(c)) return false;
  return true;
}
bool is_dec(char c) { return c >= '0' && c <= '9'; }
bool is_oct(char c) { return c >= '0' && c <= '7'; }
bool is_hex(char c) { return is_dec(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

std::string_view unsigned_part(std::string_view s) {
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) s.remove_prefix(1);
  return s;
}

bool core_int(std::string_view s) {
  if (s.size() > 2 && s[0] == '0' && s[1] == 'o') return all_of(s.substr(2), is_oct);
  if (s.size() > 2 && s[0] == '0' && s[1] == 'x') return all_of(s.substr(2), is_hex);
  return all_of(unsigned_part(s), is_dec);
}

// [-+]? ( \.[0-9]+ | [0-9]+ ( \.[0-9]* )? ) ( [eE] [-+]? [0-9]+ )?, or .inf / .nan spellings.
bool core_float(std::string_view s) {
  std::string_view u = unsigned_part(s);
  if (u == ".inf" || u == ".Inf" || u == ".INF") return true;
  if (s == ".nan" || s == ".NaN" || s == ".NAN") return true;
  size_t i = 0, digits = 0;
  while (i < u.size() && is_dec(u[i])) ++i, ++digits;
  if (i < u.size() && u[i] == '.') {
    ++i;
    while (i < u.size() && is_dec(u[i])) ++i, ++digits;
  }
  if (digits == 0) return false;
  if (i < u.size() && (u[i] == 'e' || u[i] == 'E')) {
    ++i;
    if (i < u.size() && (u[i] == '-' || u[i] == '+')) ++i;
    return all_of(u.substr(i), is_dec);
  }
  return i == u.size();
}

}  // namespace

ScalarType plain_scalar_type(std::string_view s) {
  if (s == "true" || s == "True" || s == "TRUE" || s == "false" || s == "False" || s == "FALSE")
    return ScalarType::Bool;
  if (core_int(s)) return ScalarType::Int;
  if (core_float(s)) return ScalarType::Float;
  return ScalarType::String;
}

namespace {

constexpr std::string_view kCoreTag = "tag:yaml.org,2002:";

}  // namespace

ScalarType scalar_type(const YAML::Node& n) {
  if (!n.IsDefined() || n.IsNull()) return ScalarType::Null;
  const std::string& tag = n.Tag();
  if (tag == "!") return ScalarType::String;  // quoted, literal or folded
  if (tag.rfind(kCoreTag, 0) == 0) {
    std::string_view t = std::string_view(tag).substr(kCoreTag.size());
    if (t == "str") return ScalarType::String;
    if (t == "int") return ScalarType::Int;
    if (t == "float") return ScalarType::Float;
    if (t == "bool") return ScalarType::Bool;
    if (t == "null") return ScalarType::Null;
  }
  return plain_scalar_type(n.Scalar());
}

std::string_view describe(ScalarType t) {
  switch (t) {
    case ScalarType::Null:
      return "null";
    case ScalarType::Bool:
      return "a boolean";
    case ScalarType::Int:
      return "an integer";
    case ScalarType::Float:
      return "a number";
    case ScalarType::String:
      return "a string";
  }
  return "?";
}

// ---------------------------------------------------------------- flow nesting pre-scan

namespace {

// A quote or a flow bracket opens a node when it comes first on its line or right after an
// indicator that starts one (flow entries, keys, values, list entries).
bool starts_node(char prev_nonblank) {
  switch (prev_nonblank) {
    case '\n':
    case '[':
    case '{':
    case ',':
    case ':':
    case '-':
    case '?':
      return true;
    default:
      return false;
  }
}

}  // namespace

int flow_depth_exceeded(std::string_view t, int max_depth) {
  enum class St { Plain, Single, Double, Comment } st = St::Plain;
  int depth = 0, line = 1;
  char prev = '\n', prev_nonblank = '\n';
  for (size_t i = 0; i < t.size(); ++i) {
    char c = t[i];
    if (c == '\n') ++line;
    switch (st) {
      case St::Comment:
        if (c == '\n') st = St::Plain;
        break;
      case St::Single:
        if (c == '\'' && i + 1 < t.size() && t[i + 1] == '\'') {
          ++i;  // '' is an escaped quote
        } else if (c == '\'') {
          st = St::Plain;
          prev_nonblank = c;
        }
        break;
      case St::Double:
        if (c == '\\' && i + 1 < t.size()) {
          if (t[++i] == '\n') ++line;
        } else if (c == '"') {
          st = St::Plain;
          prev_nonblank = c;
        }
        break;
      case St::Plain:
        if (c == '#' && (prev == ' ' || prev == '\t' || prev == '\n')) {
          st = St::Comment;
        } else if ((c == '\'' || c == '"') && starts_node(prev_nonblank)) {
          st = c == '\'' ? St::Single : St::Double;
        } else if ((c == '[' || c == '{') && (depth > 0 || starts_node(prev_nonblank))) {
          if (++depth > max_depth) return line;
        } else if ((c == ']' || c == '}') && depth > 0) {
          --depth;
        }
        break;
    }
    prev = c;
    if (c == '\n')
      prev_nonblank = '\n';
    else if (st == St::Plain && c != ' ' && c != '\t')
      prev_nonblank = c;
  }
  return 0;
}

// ---------------------------------------------------------------- structure walk

namespace {

bool simple_key(std::string_view k) {
  if (k.empty()) return false;
  for (char c : k) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_dec(c) || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

struct KeySeen {
  std::string_view key;
  YAML::Mark mark;
};

class Walker {
 public:
  Walker(size_t& budget, const StructureSink& sink) : budget_(budget), sink_(sink) {}

  bool run(const YAML::Node& doc) {
    if (!enter(doc, {}, -1)) return false;
    while (!frames_.empty()) {
      Frame& f = frames_.back();
      if (f.it == f.end) {
        keys_.resize(f.keys_begin);
        frames_.pop_back();
        path_.pop_back();
        continue;
      }
      auto entry = *f.it;
      ++f.it;
      long index = f.index++;
      bool ok = f.is_map ? enter(entry.second, note_key(f, entry.first), -1)
                         : enter(entry, {}, index);
      if (!ok) return false;
    }
    return true;
  }

 private:
  struct Frame {
    YAML::const_iterator it, end;
    bool is_map = false;
    long index = 0;
    size_t keys_begin = 0;  // this mapping's keys are keys_[keys_begin..]
    std::unique_ptr<std::unordered_map<std::string_view, size_t>> by_key;  // large mappings
  };
  static constexpr size_t kLinearKeys = 16;

  // Counts the node; opens a frame when it is a mapping or a list (reached by key or index).
  bool enter(const YAML::Node& n, std::string_view key, long index) {
    if (budget_ == 0) {
      path_.push_back(PathStep{n, std::string(key), index});
      sink_(path_, n.Mark(),
            "the document expands to too many nodes (aliases repeat their anchor's content; "
            "excessive aliasing is refused, as Kubernetes does)");
      return false;
    }
    --budget_;
    const bool is_map = n.IsMap();
    if (!is_map && !n.IsSequence()) return true;
    path_.push_back(PathStep{n, std::string(key), index});
    if (frames_.size() >= static_cast<size_t>(kMaxNestingDepth)) {
      sink_(path_, n.Mark(),
            fmt::format("nested deeper than {} levels of mappings and lists", kMaxNestingDepth));
      return false;
    }
    frames_.push_back({n.begin(), n.end(), is_map, 0, keys_.size(), nullptr});
    return true;
  }

  // Records a key of the mapping `f`; reports a duplicate (once, also when an alias brings the
  // mapping back) or a key that is not a scalar. Returns the key, for the path.
  std::string_view note_key(Frame& f, const YAML::Node& k) {
    if (k.IsMap() || k.IsSequence()) {
      sink_(path_, k.Mark(), "a mapping key must be a string, not a list or mapping");
      return {};
    }
    KeySeen key{k.Scalar(), k.Mark()};
    const size_t n = keys_.size() - f.keys_begin;
    const KeySeen* first = nullptr;
    if (f.by_key) {
      auto [it, fresh] = f.by_key->emplace(key.key, keys_.size());
      if (!fresh) first = &keys_[it->second];
    } else {
      for (size_t i = f.keys_begin; i < keys_.size() && !first; ++i)
        if (keys_[i].key == key.key) first = &keys_[i];
      if (n + 1 > kLinearKeys) {
        f.by_key = std::make_unique<std::unordered_map<std::string_view, size_t>>();
        for (size_t i = f.keys_begin; i < keys_.size(); ++i) f.by_key->emplace(keys_[i].key, i);
        f.by_key->emplace(key.key, keys_.size());
      }
    }
    if (first && reported_.emplace(key.mark.line, key.mark.column).second)
      report_key(key, fmt::format("duplicate key \"{}\" (first at line {}, column {})",
                                  clip(key.key), first->mark.line + 1, first->mark.column + 1));
    keys_.push_back(key);
    return key.key;
  }

  // The path ends with the duplicated key.
  void report_key(const KeySeen& k, std::string msg) {
    path_.push_back(PathStep{YAML::Node(), std::string(k.key), -1});
    sink_(path_, k.mark, std::move(msg));
    path_.pop_back();
  }

  size_t& budget_;
  const StructureSink& sink_;
  std::vector<Frame> frames_;
  std::vector<PathStep> path_;
  std::vector<KeySeen> keys_;  // the keys of every open mapping, innermost last
  std::set<std::pair<int, int>> reported_;
};

}  // namespace

bool check_structure(const YAML::Node& doc, size_t& node_budget, const StructureSink& sink) {
  return Walker(node_budget, sink).run(doc);
}

std::string field_path(const std::vector<PathStep>& path, size_t from) {
  std::string out;
  for (size_t i = from; i < path.size(); ++i) {
    const PathStep& s = path[i];
    if (s.index >= 0) {
      out += fmt::format("[{}]", s.index);
    } else if (simple_key(s.key)) {
      if (!out.empty()) out += '.';
      out += s.key;
    } else if (!s.key.empty() || i > 0) {
      out += fmt::format("[\"{}\"]", clip(s.key));
    }
  }
  return out;
}

}  // namespace weir::model
