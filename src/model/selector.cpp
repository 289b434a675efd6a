// Selector parser, normaliser and evaluator. See selector.h and docs/selectors.md.
#include "model/selector.h"

#include <algorithm>
#include <optional>
#include <utility>

#include <fmt/format.h>

namespace weir::model {

namespace {

enum class Op : uint8_t {
  All,         // all()
  Has,         // has(key)
  Eq,          // key == values[0]
  Ne,          // key != values[0]     (true when key is absent)
  In,          // key in {values}      (values sorted, unique)
  NotIn,       // key not in {values}  (true when key is absent)
  Contains,    // key contains values[0]
  StartsWith,  // key starts with values[0]
  EndsWith,    // key ends with values[0]
  Not,         // !children[0]
  And,         // children[0] && children[1] && ...
  Or,          // children[0] || children[1] || ...
};

struct Node {
  Op op = Op::All;
  std::string key;
  std::vector<std::string> values;
  std::vector<Node> children;
  std::string text;  // canonical spelling, set by normalize()
};

Node leaf(Op op, std::string key = {}, std::vector<std::string> values = {}) {
  Node n;
  n.op = op;
  n.key = std::move(key);
  n.values = std::move(values);
  return n;
}

Node compound(Op op, std::vector<Node> children) {
  Node n;
  n.op = op;
  n.children = std::move(children);
  return n;
}

bool is_false(const Node& n) { return n.op == Op::Not && n.children[0].op == Op::All; }

// ---------------------------------------------------------------- canonical text

// Double quotes, unless the value holds one (values cannot hold both: there is no escape).
std::string quote(const std::string& v) {
  if (v.find('"') == std::string::npos) return "\"" + v + "\"";
  return "'" + v + "'";
}

std::string value_set(const std::vector<std::string>& values) {
  std::string s = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) s += ", ";
    s += quote(values[i]);
  }
  return s + "}";
}

std::string render(const Node& n) {
  switch (n.op) {
    case Op::All: return "all()";
    case Op::Has: return "has(" + n.key + ")";
    case Op::Eq: return n.key + " == " + quote(n.values[0]);
    case Op::Ne: return n.key + " != " + quote(n.values[0]);
    case Op::In: return n.key + " in " + value_set(n.values);
    case Op::NotIn: return n.key + " not in " + value_set(n.values);
    case Op::Contains: return n.key + " contains " + quote(n.values[0]);
    case Op::StartsWith: return n.key + " starts with " + quote(n.values[0]);
    case Op::EndsWith: return n.key + " ends with " + quote(n.values[0]);
    case Op::Not: {
      const Node& c = n.children[0];
      if (c.op == Op::All || c.op == Op::Has) return "!" + c.text;
      return "!(" + c.text + ")";
    }
    case Op::And:
    case Op::Or: {
      std::string s;
      for (const Node& c : n.children) {
        if (!s.empty()) s += n.op == Op::And ? " && " : " || ";
        if (n.op == Op::And && c.op == Op::Or) {
          s += "(" + c.text + ")";
        } else {
          s += c.text;
        }
      }
      return s;
    }
  }
  return {};
}

Node finish(Node n) {
  n.text = render(n);
  return n;
}

void sort_unique(std::vector<std::string>& v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
}

// A membership leaf with its value set normalised: sorted, unique, and a single value written
// as == / != (k in {'a'} is k == 'a'; k not in {'a'} is k != 'a').
Node membership(Op op, std::string key, std::vector<std::string> values) {
  sort_unique(values);
  if (values.size() == 1) return finish(leaf(op == Op::In ? Op::Eq : Op::Ne, std::move(key),
                                             std::move(values)));
  return finish(leaf(op, std::move(key), std::move(values)));
}

Node normalize(Node n);

// && and ||: flatten, apply the identities of true/false, merge same-key membership tests
// (k == a || k in {b, c} -> k in {a, b, c}; k != a && k not in {b} -> k not in {a, b}),
// then sort operands by canonical text and remove duplicates.
Node normalize_junction(Node n) {
  const Op op = n.op;
  const bool is_and = op == Op::And;
  std::vector<Node> flat;
  for (Node& c : n.children) {
    Node nc = normalize(std::move(c));
    if (nc.op == op) {
      for (Node& g : nc.children) flat.push_back(std::move(g));
    } else {
      flat.push_back(std::move(nc));
    }
  }

  // Absorbing and neutral elements: false && x = false, true || x = true.
  const auto absorbing = [&](const Node& c) { return is_and ? is_false(c) : c.op == Op::All; };
  const auto neutral = [&](const Node& c) { return is_and ? c.op == Op::All : is_false(c); };
  for (const Node& c : flat) {
    if (absorbing(c)) return finish(is_and ? compound(Op::Not, {finish(leaf(Op::All))})
                                           : leaf(Op::All));
  }

  // Merge membership tests on the same key: positive ones under ||, negative ones under &&.
  const Op single = is_and ? Op::Ne : Op::Eq;
  const Op multi = is_and ? Op::NotIn : Op::In;
  std::map<std::string, std::vector<std::string>> merged;
  std::vector<Node> rest;
  for (Node& c : flat) {
    if (neutral(c)) continue;
    if (c.op == single || c.op == multi) {
      auto& vals = merged[c.key];
      vals.insert(vals.end(), c.values.begin(), c.values.end());
    } else {
      rest.push_back(std::move(c));
    }
  }
  for (auto& [key, vals] : merged) rest.push_back(membership(multi, key, std::move(vals)));

  std::sort(rest.begin(), rest.end(), [](const Node& a, const Node& b) { return a.text < b.text; });
  rest.erase(std::unique(rest.begin(), rest.end(),
                         [](const Node& a, const Node& b) { return a.text == b.text; }),
             rest.end());
  if (rest.empty()) {
    return finish(is_and ? leaf(Op::All) : compound(Op::Not, {finish(leaf(Op::All))}));
  }
  if (rest.size() == 1) return std::move(rest[0]);
  return finish(compound(op, std::move(rest)));
}

// Rewrites a raw parse tree into its normal form and sets every node's canonical text.
// Recursion depth is bounded by the parser's nesting limit.
Node normalize(Node n) {
  switch (n.op) {
    case Op::In:
    case Op::NotIn:
      return membership(n.op, std::move(n.key), std::move(n.values));
    case Op::Not: {
      Node c = normalize(std::move(n.children[0]));
      switch (c.op) {
        case Op::Not: return std::move(c.children[0]);  // !!x = x
        // Exact complements under the absent-key rules: !(k == v) is k != v, and so on.
        case Op::Eq: c.op = Op::Ne; return finish(std::move(c));
        case Op::Ne: c.op = Op::Eq; return finish(std::move(c));
        case Op::In: c.op = Op::NotIn; return finish(std::move(c));
        case Op::NotIn: c.op = Op::In; return finish(std::move(c));
        default: {
          std::vector<Node> kids;
          kids.push_back(std::move(c));
          return finish(compound(Op::Not, std::move(kids)));
        }
      }
    }
    case Op::And:
    case Op::Or:
      return normalize_junction(std::move(n));
    default:
      return finish(std::move(n));
  }
}

// ---------------------------------------------------------------- evaluation

bool eval(const Node& n, const Labels& labels) {
  switch (n.op) {
    case Op::All: return true;
    case Op::Has: return labels.find(n.key) != labels.end();
    case Op::Not: return !eval(n.children[0], labels);
    case Op::And:
      for (const Node& c : n.children) {
        if (!eval(c, labels)) return false;
      }
      return true;
    case Op::Or:
      for (const Node& c : n.children) {
        if (eval(c, labels)) return true;
      }
      return false;
    default: break;
  }
  auto it = labels.find(n.key);
  const bool present = it != labels.end();
  switch (n.op) {
    case Op::Eq: return present && it->second == n.values[0];
    case Op::Ne: return !present || it->second != n.values[0];
    case Op::In:
      return present && std::binary_search(n.values.begin(), n.values.end(), it->second);
    case Op::NotIn:
      return !present || !std::binary_search(n.values.begin(), n.values.end(), it->second);
    case Op::Contains: return present && it->second.find(n.values[0]) != std::string::npos;
    case Op::StartsWith:
      return present && std::string_view(it->second).starts_with(n.values[0]);
    case Op::EndsWith: return present && std::string_view(it->second).ends_with(n.values[0]);
    default: return false;
  }
}

// ---------------------------------------------------------------- parser

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alnum(char c) { return is_alpha(c) || is_digit(c); }
bool is_key_char(char c) { return is_alnum(c) || c == '.' || c == '_' || c == '-' || c == '/'; }

constexpr const char* kExpectExpr =
    "expected a selector expression (a label key, has(...), all(), '!' or '(')";
constexpr const char* kExpectOp =
    "expected an operator (==, !=, in, not in, contains, starts with, ends with)";

// Recursive descent over
//   selector := [ or ] EOF
//   or       := and ( "||" and )*
//   and      := unary ( "&&" unary )*
//   unary    := "!" unary | primary
//   primary  := "(" or ")" | "all" "(" ")" | "has" "(" key ")" | key op
//   op       := ("==" | "!=" | "contains" | "starts" "with" | "ends" "with") string
//             | ("in" | "not" "in") "{" [ string ( "," string )* ] "}"
// Each function returns false after recording the first error.
class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}

  std::variant<Node, SelectorError> run() {
    Node root;
    skip_ws();
    if (at_end()) return leaf(Op::All);
    if (!parse_or(root)) return *err_;
    skip_ws();
    if (!at_end()) {
      fail(pos_, "expected '&&', '||' or the end of the selector");
      return *err_;
    }
    return root;
  }

 private:
  bool at_end() const { return pos_ >= s_.size(); }
  char peek() const { return at_end() ? '\0' : s_[pos_]; }
  bool looking_at(std::string_view t) const { return s_.substr(pos_).starts_with(t); }
  void skip_ws() {
    while (!at_end() && is_space(s_[pos_])) ++pos_;
  }
  bool fail(size_t at, std::string msg) {
    if (!err_) err_ = SelectorError{at + 1, std::move(msg)};
    return false;
  }
  bool enter(size_t at) {
    if (++depth_ > kMaxSelectorDepth) {
      return fail(at, fmt::format("nesting deeper than {} levels", kMaxSelectorDepth));
    }
    return true;
  }

  bool parse_or(Node& out) {
    std::vector<Node> terms(1);
    if (!parse_and(terms[0])) return false;
    for (;;) {
      skip_ws();
      if (!looking_at("||")) break;
      pos_ += 2;
      terms.emplace_back();
      if (!parse_and(terms.back())) return false;
    }
    out = terms.size() == 1 ? std::move(terms[0]) : compound(Op::Or, std::move(terms));
    return true;
  }

  bool parse_and(Node& out) {
    std::vector<Node> terms(1);
    if (!parse_unary(terms[0])) return false;
    for (;;) {
      skip_ws();
      if (!looking_at("&&")) break;
      pos_ += 2;
      terms.emplace_back();
      if (!parse_unary(terms.back())) return false;
    }
    out = terms.size() == 1 ? std::move(terms[0]) : compound(Op::And, std::move(terms));
    return true;
  }

  bool parse_unary(Node& out) {
    skip_ws();
    if (peek() != '!') return parse_primary(out);
    if (!enter(pos_)) return false;
    ++pos_;
    std::vector<Node> kids(1);
    if (!parse_unary(kids[0])) return false;
    --depth_;
    out = compound(Op::Not, std::move(kids));
    return true;
  }

  bool parse_primary(Node& out) {
    skip_ws();
    const size_t start = pos_;
    if (peek() == '(') {
      if (!enter(pos_)) return false;
      ++pos_;
      if (!parse_or(out)) return false;
      skip_ws();
      if (peek() != ')') return fail(pos_, "expected '&&', '||' or ')'");
      ++pos_;
      --depth_;
      return true;
    }
    if (at_end() || !is_key_char(peek())) return fail(pos_, kExpectExpr);

    std::string word = read_key_chars();
    const size_t after_word = pos_;
    skip_ws();
    if ((word == "has" || word == "all") && peek() == '(') {
      ++pos_;
      if (word == "all") {
        skip_ws();
        if (peek() != ')') return fail(pos_, "expected ')': all() takes no argument");
        ++pos_;
        out = leaf(Op::All);
        return true;
      }
      std::string key;
      if (!parse_key(key)) return false;
      skip_ws();
      if (peek() != ')') return fail(pos_, "expected ')'");
      ++pos_;
      out = leaf(Op::Has, std::move(key));
      return true;
    }
    pos_ = after_word;
    if (std::string why = check_label_key(word); !why.empty()) {
      return fail(start, fmt::format("invalid label key \"{}\": {}", word, why));
    }
    return parse_comparison(std::move(word), out);
  }

  bool parse_comparison(std::string key, Node& out) {
    skip_ws();
    const size_t op_at = pos_;
    Op op;
    if (looking_at("==")) {
      pos_ += 2;
      op = Op::Eq;
    } else if (looking_at("!=")) {
      pos_ += 2;
      op = Op::Ne;
    } else {
      std::string w = read_word();
      if (w == "in") {
        op = Op::In;
      } else if (w == "not") {
        skip_ws();
        const size_t at = pos_;
        if (read_word() != "in") return fail(at, "expected 'in' after 'not'");
        op = Op::NotIn;
      } else if (w == "contains") {
        op = Op::Contains;
      } else if (w == "starts" || w == "ends") {
        skip_ws();
        const size_t at = pos_;
        if (read_word() != "with") return fail(at, fmt::format("expected 'with' after '{}'", w));
        op = w == "starts" ? Op::StartsWith : Op::EndsWith;
      } else {
        return fail(op_at, kExpectOp);
      }
    }
    std::vector<std::string> values;
    if (op == Op::In || op == Op::NotIn) {
      if (!parse_set(values)) return false;
    } else {
      values.emplace_back();
      if (!parse_string(values[0])) return false;
    }
    out = leaf(op, std::move(key), std::move(values));
    return true;
  }

  std::string read_key_chars() {
    const size_t b = pos_;
    while (!at_end() && is_key_char(s_[pos_])) ++pos_;
    return std::string(s_.substr(b, pos_ - b));
  }

  std::string read_word() {
    const size_t b = pos_;
    while (!at_end() && is_alpha(s_[pos_])) ++pos_;
    return std::string(s_.substr(b, pos_ - b));
  }

  bool parse_key(std::string& out) {
    skip_ws();
    const size_t start = pos_;
    if (at_end() || !is_key_char(peek())) return fail(pos_, "expected a label key");
    out = read_key_chars();
    if (std::string why = check_label_key(out); !why.empty()) {
      return fail(start, fmt::format("invalid label key \"{}\": {}", out, why));
    }
    return true;
  }

  bool parse_string(std::string& out) {
    skip_ws();
    const char q = peek();
    if (q != '\'' && q != '"') return fail(pos_, "expected a quoted string");
    const size_t open = pos_;
    ++pos_;
    const size_t b = pos_;
    while (!at_end() && s_[pos_] != q) {
      const auto c = static_cast<unsigned char>(s_[pos_]);
      if (c < 0x20 || c == 0x7f) return fail(pos_, "control character in a quoted string");
      ++pos_;
    }
    if (at_end()) return fail(open, "unterminated string");
    out = std::string(s_.substr(b, pos_ - b));
    ++pos_;
    return true;
  }

  bool parse_set(std::vector<std::string>& out) {
    skip_ws();
    if (peek() != '{') return fail(pos_, "expected '{'");
    ++pos_;
    skip_ws();
    if (peek() == '}') {
      ++pos_;
      return true;
    }
    for (;;) {
      out.emplace_back();
      if (!parse_string(out.back())) return false;
      skip_ws();
      if (peek() == '}') {
        ++pos_;
        return true;
      }
      if (peek() != ',') return fail(pos_, "expected ',' or '}'");
      ++pos_;
    }
  }

  std::string_view s_;
  size_t pos_ = 0;
  size_t depth_ = 0;
  std::optional<SelectorError> err_;
};

// The input as shown in an error message: control characters replaced, long input shortened.
std::string excerpt(std::string_view text) {
  constexpr size_t kMax = 80;
  std::string s(text.substr(0, kMax));
  for (char& c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) c = '?';
  }
  if (text.size() > kMax) s += "...";
  return s;
}

bool is_dns_subdomain(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  size_t label_start = 0;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i < s.size() && s[i] != '.') {
      const char c = s[i];
      if (!((c >= 'a' && c <= 'z') || is_digit(c) || c == '-')) return false;
      continue;
    }
    const std::string_view label = s.substr(label_start, i - label_start);
    if (label.empty() || label.front() == '-' || label.back() == '-') return false;
    label_start = i + 1;
  }
  return true;
}

// Kubernetes "qualified name" part / label value body: [A-Za-z0-9._-], alphanumeric ends.
std::string check_name(std::string_view s, std::string_view what) {
  if (s.size() > 63) return fmt::format("{} longer than 63 characters", what);
  for (char c : s) {
    if (!is_alnum(c) && c != '.' && c != '_' && c != '-') {
      return fmt::format("{} may contain only letters, digits, '.', '_' and '-'", what);
    }
  }
  if (!is_alnum(s.front()) || !is_alnum(s.back())) {
    return fmt::format("{} must start and end with a letter or digit", what);
  }
  return {};
}

std::shared_ptr<const SelectorNode> all_root();

}  // namespace

// The shared, immutable tree behind a Selector.
struct SelectorNode {
  Node root;
  uint64_t id = 0;
};

namespace {

std::shared_ptr<const SelectorNode> make_root(Node normalized) {
  auto n = std::make_shared<SelectorNode>();
  n->id = fnv1a64(normalized.text);
  n->root = std::move(normalized);
  return n;
}

std::shared_ptr<const SelectorNode> all_root() {
  static const std::shared_ptr<const SelectorNode> all = make_root(normalize(leaf(Op::All)));
  return all;
}

}  // namespace

// ---------------------------------------------------------------- public API

Selector::Selector() : root_(all_root()) {}
Selector::Selector(std::shared_ptr<const SelectorNode> root) : root_(std::move(root)) {}

bool Selector::matches(const Labels& labels) const { return eval(root_->root, labels); }
const std::string& Selector::canonical() const { return root_->root.text; }
uint64_t Selector::id() const { return root_->id; }
bool Selector::is_all() const { return root_->root.op == Op::All; }

std::variant<Selector, SelectorError> parse_selector_detailed(std::string_view text) {
  if (text.size() > kMaxSelectorLength) {
    return SelectorError{kMaxSelectorLength + 1,
                         fmt::format("selector longer than {} bytes ({} bytes)", kMaxSelectorLength,
                                     text.size())};
  }
  auto parsed = Parser(text).run();
  if (auto* e = std::get_if<SelectorError>(&parsed)) return *e;
  return Selector(make_root(normalize(std::move(std::get<Node>(parsed)))));
}

Result<Selector> parse_selector(std::string_view text) {
  auto r = parse_selector_detailed(text);
  if (auto* e = std::get_if<SelectorError>(&r)) {
    return make_error("selector \"{}\": column {}: {}", excerpt(text), e->column, e->message);
  }
  return std::get<Selector>(std::move(r));
}

Result<Selector> from_label_selector(const Labels& match_labels,
                                     const std::vector<LabelSelectorRequirement>& match_expressions) {
  std::vector<Node> terms;
  for (const auto& [k, v] : match_labels) {
    if (std::string why = check_label_key(k); !why.empty()) {
      return make_error("matchLabels: invalid label key \"{}\": {}", k, why);
    }
    if (std::string why = check_label_value(v); !why.empty()) {
      return make_error(R"(matchLabels["{}"]: invalid label value "{}": {})", k, v, why);
    }
    terms.push_back(leaf(Op::Eq, k, {v}));
  }
  for (size_t i = 0; i < match_expressions.size(); ++i) {
    const LabelSelectorRequirement& req = match_expressions[i];
    if (std::string why = check_label_key(req.key); !why.empty()) {
      return make_error("matchExpressions[{}]: invalid label key \"{}\": {}", i, req.key, why);
    }
    for (const std::string& v : req.values) {
      if (std::string why = check_label_value(v); !why.empty()) {
        return make_error(R"(matchExpressions[{}] (key "{}"): invalid label value "{}": {})", i,
                          req.key, v, why);
      }
    }
    if (req.op == "In" || req.op == "NotIn") {
      if (req.values.empty()) {
        return make_error("matchExpressions[{}] (key \"{}\"): operator {} needs at least one value",
                          i, req.key, req.op);
      }
      terms.push_back(leaf(req.op == "In" ? Op::In : Op::NotIn, req.key, req.values));
    } else if (req.op == "Exists" || req.op == "DoesNotExist") {
      if (!req.values.empty()) {
        return make_error("matchExpressions[{}] (key \"{}\"): operator {} takes no values (got {})",
                          i, req.key, req.op, req.values.size());
      }
      Node has = leaf(Op::Has, req.key);
      if (req.op == "Exists") {
        terms.push_back(std::move(has));
      } else {
        std::vector<Node> kids;
        kids.push_back(std::move(has));
        terms.push_back(compound(Op::Not, std::move(kids)));
      }
    } else {
      return make_error(
          "matchExpressions[{}] (key \"{}\"): unknown operator \"{}\" (want In, NotIn, Exists or "
          "DoesNotExist)",
          i, req.key, req.op);
    }
  }
  return Selector(make_root(normalize(compound(Op::And, std::move(terms)))));
}

std::string check_label_key(std::string_view key) {
  if (key.empty()) return "empty label key";
  std::string_view name = key;
  if (const size_t slash = key.find('/'); slash != std::string_view::npos) {
    if (key.find('/', slash + 1) != std::string_view::npos) return "more than one '/'";
    const std::string_view prefix = key.substr(0, slash);
    name = key.substr(slash + 1);
    if (prefix.empty()) return "empty prefix before '/'";
    if (prefix.size() > 253) return "prefix longer than 253 characters";
    if (!is_dns_subdomain(prefix)) {
      return fmt::format(
          "prefix \"{}\" is not a DNS subdomain (lowercase letters, digits, '-' and '.')", prefix);
    }
    if (name.empty()) return "empty name after '/'";
  }
  return check_name(name, "name");
}

std::string check_label_value(std::string_view value) {
  if (value.empty()) return {};
  return check_name(value, "value");
}

uint64_t fnv1a64(std::string_view data) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : data) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::string format_set_id(uint64_t id) { return fmt::format("0x{:016x}", id); }

}  // namespace weir::model
