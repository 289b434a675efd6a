// Internal to src/model: the parsing context and field helpers shared by parse.cpp and the
// per-kind parsers in other files (parse_policy.cpp). Not part of the public model API.
#pragma once

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <charconv>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "model/duration.h"
#include "model/parse.h"
#include "model/yaml_input.h"

namespace weir::model::parse_detail {

inline int line_of(const YAML::Node& n) {
  if (!n.IsDefined()) return 0;
  YAML::Mark m = n.Mark();
  return m.line >= 0 ? m.line + 1 : 0;
}

// Looks like an IPv6 literal (only used to tell "IPv6, ignored" from "garbage").
inline bool looks_like_ipv6(std::string_view s) {
  if (s.find(':') == std::string_view::npos) return false;
  for (char c : s) {
    bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
              c == ':' || c == '.';
    if (!ok) return false;
  }
  return true;
}

// Optional '-' then only digits: a numeric targetPort (checked for range), not a port name.
inline bool looks_like_integer(std::string_view s) {
  if (!s.empty() && s[0] == '-') s.remove_prefix(1);
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

// The value in double quotes, clipped (validation.h: clip()) when long.
inline std::string quote(std::string_view s) { return fmt::format("\"{}\"", clip(s)); }

// Parsing context for one resource: collects errors and warnings naming file, resource, field.
class Ctx {
 public:
  Ctx(const std::string& file, ValidationErrors& errors, std::vector<Warning>& warnings,
      std::string resource, const YAML::Node& root)
      : file_(file),
        errors_(errors),
        warnings_(warnings),
        resource_(std::move(resource)),
        start_(errors.size()),
        root_line_(line_of(root)) {}

  void set_resource(std::string r) { resource_ = std::move(r); }
  const std::string& resource() const { return resource_; }
  bool failed() const { return errors_.size() > start_; }
  int root_line() const { return root_line_; }

  // Error at `field`; `at` is the node the error is about (or its parent when it is missing).
  void error(const std::string& field, const YAML::Node& at, std::string msg) {
    int line = line_of(at);
    errors_.push_back({file_, resource_, field, std::move(msg), line ? line : root_line_, 0});
  }
  void warn(const std::string& field, const YAML::Node& at, std::string msg) {
    int line = line_of(at);
    warnings_.push_back({file_, resource_, field, std::move(msg), line ? line : root_line_, 0});
  }

  // ---- typed field access. `parent` must be a map (or undefined/null).

  // The child node; undefined when parent is not a map or the key is absent. Null values count
  // as absent (Kubernetes omits or nulls optional fields interchangeably).
  static YAML::Node child(const YAML::Node& parent, const char* key) {
    if (!parent.IsDefined() || !parent.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
    YAML::Node n = parent[key];
    if (!n.IsDefined() || n.IsNull()) return YAML::Node(YAML::NodeType::Undefined);
    return n;
  }

  // A map child: nullopt-like undefined node when absent; error when not a map.
  YAML::Node map(const YAML::Node& parent, const char* key, const std::string& path,
                 bool required) {
    YAML::Node n = child(parent, key);
    if (!n.IsDefined()) {
      if (required) error(path, parent, "is required");
      return n;
    }
    if (!n.IsMap()) {
      error(path, n, "must be a mapping");
      return YAML::Node(YAML::NodeType::Undefined);
    }
    return n;
  }

  YAML::Node seq(const YAML::Node& parent, const char* key, const std::string& path,
                 bool required) {
    YAML::Node n = child(parent, key);
    if (!n.IsDefined()) {
      if (required) error(path, parent, "is required");
      return n;
    }
    if (!n.IsSequence()) {
      error(path, n, "must be a list");
      return YAML::Node(YAML::NodeType::Undefined);
    }
    return n;
  }

  // A string field: error when the node is a map or list, or a plain number or boolean
  // (Kubernetes decodes `name: 123` as a number and rejects it for a string field).
  std::optional<std::string> scalar(const YAML::Node& n, const std::string& path) {
    auto s = raw_scalar(n, path, "a string");
    if (!s) return std::nullopt;
    ScalarType t = scalar_type(n);
    if (t == ScalarType::String) return s;
    error(path, n,
          fmt::format("{} is {}, not a string (write it in quotes: \"{}\")", clip(*s), describe(t),
                      clip(*s)));
    return std::nullopt;
  }

  // A scalar's text whatever its type, for fields that parse it themselves (integers,
  // booleans, int-or-string); error "must be <what>" when it is a map or list.
  std::optional<std::string> raw_scalar(const YAML::Node& n, const std::string& path,
                                        std::string_view what) {
    if (!n.IsDefined()) return std::nullopt;
    if (!n.IsScalar()) {
      error(path, n, fmt::format("must be {}", what));
      return std::nullopt;
    }
    return n.Scalar();
  }

  // True (after an error) when a scalar of the right form is written as a string: a quoted
  // "80" for an integer, a quoted "true" for a boolean. Kubernetes decodes those as strings and
  // rejects them; other text falls through to the field's own message ("is not an integer").
  bool quoted_instead_of(const YAML::Node& n, const std::string& path, const std::string& s,
                         ScalarType want) {
    if (scalar_type(n) != ScalarType::String) return false;
    ScalarType as_plain = plain_scalar_type(s);
    if (as_plain != want && !(want == ScalarType::Float && as_plain == ScalarType::Int))
      return false;
    error(path, n,
          fmt::format("{} is a string, not {} (write it without quotes)", quote(s),
                      describe(want)));
    return true;
  }

  std::optional<std::string> str(const YAML::Node& parent, const char* key, const std::string& path,
                                 bool required) {
    YAML::Node n = child(parent, key);
    if (!n.IsDefined()) {
      if (required) error(path, parent, "is required");
      return std::nullopt;
    }
    return scalar(n, path);
  }

  // An integer in [lo, hi].
  std::optional<int64_t> integer(const YAML::Node& n, const std::string& path, int64_t lo,
                                 int64_t hi) {
    auto s = raw_scalar(n, path, "an integer");
    if (!s || quoted_instead_of(n, path, *s, ScalarType::Int)) return std::nullopt;
    int64_t v = 0;
    const char* b = s->data();
    const char* e = b + s->size();
    auto [p, ec] = std::from_chars(b, e, v);
    if (ec == std::errc::result_out_of_range) {
      error(path, n, fmt::format("{} is out of range {}..{}", clip(*s), lo, hi));
      return std::nullopt;
    }
    if (ec != std::errc() || p != e || s->empty()) {
      error(path, n, fmt::format("{} is not an integer", quote(*s)));
      return std::nullopt;
    }
    if (v < lo || v > hi) {
      error(path, n, fmt::format("{} is out of range {}..{}", v, lo, hi));
      return std::nullopt;
    }
    return v;
  }

  std::optional<int64_t> integer(const YAML::Node& parent, const char* key, const std::string& path,
                                 int64_t lo, int64_t hi, bool required) {
    YAML::Node n = child(parent, key);
    if (!n.IsDefined()) {
      if (required) error(path, parent, "is required");
      return std::nullopt;
    }
    return integer(n, path, lo, hi);
  }

  std::optional<bool> boolean(const YAML::Node& parent, const char* key, const std::string& path) {
    YAML::Node n = child(parent, key);
    auto s = raw_scalar(n, path, "a boolean");
    if (!s || quoted_instead_of(n, path, *s, ScalarType::Bool)) return std::nullopt;
    if (*s == "true" || *s == "True" || *s == "TRUE") return true;
    if (*s == "false" || *s == "False" || *s == "FALSE") return false;
    error(path, n, fmt::format("{} is not a boolean (true or false)", quote(*s)));
    return std::nullopt;
  }

  std::optional<Protocol> protocol(const YAML::Node& parent, const std::string& path) {
    YAML::Node n = child(parent, "protocol");
    auto s = scalar(n, path);
    if (!s) return Protocol::TCP;
    if (auto p = parse_protocol(*s)) return p;
    error(path, n, fmt::format("invalid protocol {}: must be TCP, UDP or SCTP", quote(*s)));
    return std::nullopt;
  }

  // Bounds of a duration field: at least `min` (or exactly 0 when `zero_ok`), at most `max`.
  struct DurationRange {
    std::chrono::nanoseconds min, max;
    bool zero_ok = false;
  };

  std::optional<std::chrono::nanoseconds> duration(const YAML::Node& parent, const char* key,
                                                   const std::string& path, DurationRange r) {
    YAML::Node n = child(parent, key);
    auto s = raw_scalar(n, path, "a duration");
    if (!s) return std::nullopt;
    auto d = parse_duration(*s);
    if (!d.ok()) {
      error(path, n, d.error().msg);
      return std::nullopt;
    }
    if (d->count() == 0 && r.zero_ok) return *d;
    if (d->count() <= 0) {
      error(path, n,
            fmt::format("{} must be {}", quote(*s), r.zero_ok ? "zero or positive" : "positive"));
      return std::nullopt;
    }
    if (*d < r.min) {
      error(path, n,
            fmt::format("{} is below the minimum of {}", quote(*s), format_duration(r.min)));
      return std::nullopt;
    }
    if (*d > r.max) {
      error(path, n,
            fmt::format("{} is above the maximum of {}", quote(*s), format_duration(r.max)));
      return std::nullopt;
    }
    return *d;
  }

  // Warns about keys of a weir.dev map that weir does not know (typos would otherwise be
  // silently ignored).
  void warn_unknown_keys(const YAML::Node& m, const std::string& path,
                         std::initializer_list<std::string_view> known) {
    if (!m.IsDefined() || !m.IsMap()) return;
    for (const auto& kv : m) {
      if (!kv.first.IsScalar()) continue;
      std::string k = kv.first.Scalar();
      bool found = false;
      for (auto kk : known) found = found || kk == k;
      if (!found)
        warn(path.empty() ? clip(k) : path + "." + clip(k), kv.first, "unknown field ignored");
    }
  }

 private:
  const std::string& file_;
  ValidationErrors& errors_;
  std::vector<Warning>& warnings_;
  std::string resource_;
  size_t start_;
  int root_line_;
};

enum class CidrParse { Ok, Ipv6, Invalid };

// "a.b.c.d/n" (host bits are cleared), or with allow_bare a plain address (= /32).
inline CidrParse parse_cidr(std::string_view s, bool allow_bare, Cidr& out) {
  size_t slash = s.find('/');
  std::string_view addr = slash == std::string_view::npos ? s : s.substr(0, slash);
  if (looks_like_ipv6(addr)) return CidrParse::Ipv6;
  auto ip = Ipv4::parse(addr);
  if (!ip) return CidrParse::Invalid;
  unsigned len = 32;
  if (slash == std::string_view::npos) {
    if (!allow_bare) return CidrParse::Invalid;
  } else {
    std::string_view ls = s.substr(slash + 1);
    if (ls.empty() || ls.size() > 2) return CidrParse::Invalid;
    for (char ch : ls)
      if (ch < '0' || ch > '9') return CidrParse::Invalid;
    auto [p, ec] = std::from_chars(ls.data(), ls.data() + ls.size(), len);
    if (ec != std::errc() || len > 32) return CidrParse::Invalid;
  }
  out = Cidr{Ipv4{ip->value & Cidr::netmask(len)}, static_cast<uint8_t>(len)};
  return CidrParse::Ok;
}

// An int-or-string port (Service targetPort, NetworkPolicy port), read as Kubernetes reads
// it: an unquoted integer is a number (checked against lo..hi), a string is a port name,
// returned as is for the caller to check. A quoted number is a string and no valid name (a
// name needs a letter), so `"8080"` is an error, as in Kubernetes. nullopt after an error.
inline std::optional<std::variant<int64_t, std::string>> int_or_string(Ctx& c,
                                                                       const YAML::Node& n,
                                                                       const std::string& path,
                                                                       int64_t lo, int64_t hi) {
  auto s = c.raw_scalar(n, path, "a port number or name");
  if (!s) return std::nullopt;
  switch (scalar_type(n)) {
    case ScalarType::Int:
      if (auto v = c.integer(n, path, lo, hi)) return *v;
      return std::nullopt;
    case ScalarType::String:
      if (looks_like_integer(*s)) {
        c.error(path, n,
                fmt::format("{} is a string: write a port number without quotes (a quoted "
                            "value is a port name, and a name needs a letter)",
                            quote(*s)));
        return std::nullopt;
      }
      return *s;
    default:
      c.error(path, n,
              fmt::format("{} is {}: expected a port number or a port name", clip(*s),
                          describe(scalar_type(n))));
      return std::nullopt;
  }
}

inline std::string idx(const std::string& path, size_t i) { return fmt::format("{}[{}]", path, i); }

// metadata: name, namespace, labels. Sets the context's resource name once the name is known.
inline ObjectMeta parse_meta(Ctx& c, const YAML::Node& root, std::string_view kind, bool namespaced) {
  ObjectMeta m;
  YAML::Node md = c.map(root, "metadata", "metadata", true);
  auto name = c.str(md, "name", "metadata.name", md.IsDefined());
  if (namespaced) {
    m.ns = "default";
    if (auto ns = c.str(md, "namespace", "metadata.namespace", false)) {
      if (!is_dns_label(*ns))
        c.error("metadata.namespace", Ctx::child(md, "namespace"),
                fmt::format("{} is not a valid namespace: must be a lowercase RFC 1123 label",
                            quote(*ns)));
      else
        m.ns = *ns;
    }
  }
  if (name) {
    if (!is_dns_subdomain(*name)) {
      c.error("metadata.name", Ctx::child(md, "name"),
              fmt::format("{} is not a valid name: must be a lowercase RFC 1123 subdomain "
                          "(a-z, 0-9, '-', '.')",
                          quote(*name)));
    } else {
      m.name = *name;
      c.set_resource(namespaced ? fmt::format("{} {}/{}", kind, m.ns, m.name)
                                : fmt::format("{} {}", kind, m.name));
    }
  }
  YAML::Node labels = c.map(md, "labels", "metadata.labels", false);
  if (labels.IsDefined()) {
    for (const auto& kv : labels) {
      std::string k = kv.first.IsScalar() ? kv.first.Scalar() : "";
      std::string path = fmt::format("metadata.labels[\"{}\"]", clip(k));
      if (kv.second.IsNull()) {
        m.labels[k] = "";
        continue;
      }
      if (auto v = c.scalar(kv.second, path)) m.labels[k] = *v;
    }
  }
  return m;
}

// Parses "a.b.c.d" or (allow_cidr32) "a.b.c.d/32". IPv6 literals produce *is_v6 = true.
inline std::optional<Ipv4> parse_ip_field(Ctx& c, const YAML::Node& n, const std::string& path,
                                   bool allow_cidr32, bool* is_v6 = nullptr) {
  auto s = c.scalar(n, path);
  if (!s) {
    if (!n.IsDefined()) c.error(path, n, "is required");
    return std::nullopt;
  }
  std::string_view v = *s;
  std::string_view addr = v;
  if (allow_cidr32) {
    size_t slash = v.find('/');
    if (slash != std::string_view::npos) {
      addr = v.substr(0, slash);
      std::string_view len = v.substr(slash + 1);
      if (len != "32") {
        if (Ipv4::parse(addr) && !len.empty()) {
          c.error(path, n, fmt::format("{}: only /32 prefixes are supported", quote(v)));
          return std::nullopt;
        }
        c.error(path, n, fmt::format("{} is not an IPv4 address", quote(v)));
        return std::nullopt;
      }
    }
  }
  if (auto ip = Ipv4::parse(addr)) return ip;
  if (is_v6 && looks_like_ipv6(addr)) {
    *is_v6 = true;
    return std::nullopt;
  }
  c.error(path, n, fmt::format("{} is not an IPv4 address", quote(v)));
  return std::nullopt;
}

}  // namespace weir::model::parse_detail
