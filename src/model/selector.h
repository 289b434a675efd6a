// Policy selectors, after Calico's selector syntax (docs/selectors.md has the full grammar).
//
//   all()                          every endpoint
//   has(k)   !has(k)               the label k is (not) present
//   k == 'v'   k != 'v'            != also matches when k is absent
//   k in {'a', 'b'}                k present and its value one of the set
//   k not in {'a', 'b'}            k absent, or its value none of the set
//   k contains 'x'                 k present and its value contains / starts with / ends with x
//   k starts with 'x'   k ends with 'x'
//   !e   e && e   e || e   (e)     precedence ! > && > ||
//
// A Selector is immutable and cheap to copy (it shares its syntax tree). canonical() is a
// normalised spelling (stable spacing, double quotes, sorted and merged `in` sets, sorted
// operands of && and ||, double negation removed, ...), so that equivalent spellings give the
// same text, and id() (64-bit FNV-1a of canonical()) is the IP set id derived from it.
//
// Pure: no syscalls, no global mutable state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "util/result.h"

namespace weir::model {

// Labels of an endpoint or namespace: key -> value.
using Labels = std::map<std::string, std::string>;

// Limits that keep hostile input cheap: the parser is recursive, so nesting is bounded.
inline constexpr size_t kMaxSelectorLength = 16384;  // bytes
inline constexpr size_t kMaxSelectorDepth = 64;      // nested '(' and '!'

struct SelectorNode;  // the syntax tree, private to selector.cpp

class Selector {
 public:
  // all(): matches every label set.
  Selector();

  // True when the labels satisfy the selector.
  bool matches(const Labels& labels) const;
  // The normalised spelling; parse_selector(canonical()) gives back an equal selector.
  const std::string& canonical() const;
  // 64-bit FNV-1a hash of canonical(): the IP set id of this selector.
  uint64_t id() const;
  // True for a selector that matches everything (canonical "all()").
  bool is_all() const;

  // Equal when the canonical spellings are equal.
  friend bool operator==(const Selector& a, const Selector& b) {
    return a.canonical() == b.canonical();
  }

  // Internal: wraps a normalised tree. Use parse_selector / from_label_selector.
  explicit Selector(std::shared_ptr<const SelectorNode> root);

 private:
  std::shared_ptr<const SelectorNode> root_;
};

// A syntax error: 1-based byte column in the input (input length + 1 for "end of input") and
// what was expected there, e.g. {8, "expected a quoted string"}.
struct SelectorError {
  size_t column = 0;
  std::string message;
};

// Parses a selector. An empty (or all-blank) selector is all(). Errors read
//   selector "app == web": column 8: expected a quoted string
Result<Selector> parse_selector(std::string_view text);

// The same parse, with the column and message of an error kept apart (for tests and editors).
std::variant<Selector, SelectorError> parse_selector_detailed(std::string_view text);

// A Kubernetes LabelSelectorRequirement (matchExpressions entry).
struct LabelSelectorRequirement {
  std::string key;
  std::string op;                   // "In", "NotIn", "Exists", "DoesNotExist" (case-sensitive)
  std::vector<std::string> values;  // non-empty for In/NotIn, empty for Exists/DoesNotExist
  bool operator==(const LabelSelectorRequirement&) const = default;
};

// Converts a Kubernetes LabelSelector with Kubernetes semantics: the AND of all matchLabels
// (k == v) and matchExpressions (In: k in {..}; NotIn: k not in {..}, true when k is absent;
// Exists: has(k); DoesNotExist: !has(k)). An empty LabelSelector selects everything (all()).
// Keys must be Kubernetes label keys and values Kubernetes label values. Errors name the entry:
//   matchExpressions[1]: unknown operator "Equals" (want In, NotIn, Exists or DoesNotExist)
Result<Selector> from_label_selector(const Labels& match_labels,
                                     const std::vector<LabelSelectorRequirement>& match_expressions);

// Syntax checks shared with the parser; an empty string when valid, else the reason.
// Label key: optional prefix (a DNS subdomain: lowercase alphanumerics, '-', '.', at most 253
// characters) and '/', then a name of 1..63 characters [A-Za-z0-9._-] that starts and ends with
// an alphanumeric character.
std::string check_label_key(std::string_view key);
// Label value: empty, or 1..63 characters [A-Za-z0-9._-] starting and ending alphanumeric.
std::string check_label_value(std::string_view value);

// 64-bit FNV-1a (offset basis 0xcbf29ce484222325, prime 0x100000001b3).
uint64_t fnv1a64(std::string_view data);

// "0x303904ae5eae5418": an IP set id as the CLI prints it (16 hex digits).
std::string format_set_id(uint64_t id);

}  // namespace weir::model
