// model/selector.h: parsing, evaluation, canonical form, ids, errors, limits, Kubernetes
// LabelSelector conversion.
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "model/selector.h"

namespace weir::model {
namespace {

Selector sel(std::string_view text) {
  auto r = parse_selector(text);
  EXPECT_TRUE(r.ok()) << text << ": " << r.error().str();
  return r.ok() ? *r : Selector();
}

SelectorError err(std::string_view text) {
  auto r = parse_selector_detailed(text);
  if (auto* e = std::get_if<SelectorError>(&r)) return *e;
  ADD_FAILURE() << "expected a syntax error for: " << text << " (got "
                << std::get<Selector>(r).canonical() << ")";
  return {};
}

const Labels kWeb = {{"app", "web"},
                     {"tier", "frontend"},
                     {"env", "prod"},
                     {"app.kubernetes.io/name", "shop"}};
const Labels kNone = {};

struct EvalCase {
  const char* selector;
  const Labels* labels;
  bool want;
};

// ---------------------------------------------------------------- evaluation table

TEST(Selector, EvaluationTable) {
  const EvalCase cases[] = {
      // all() and the empty selector
      {"", &kNone, true},
      {"   ", &kNone, true},
      {"all()", &kNone, true},
      {"all()", &kWeb, true},
      {"!all()", &kWeb, false},
      // has
      {"has(app)", &kWeb, true},
      {"has(app)", &kNone, false},
      {"has(missing)", &kWeb, false},
      {"!has(app)", &kWeb, false},
      {"!has(app)", &kNone, true},
      // == and != (!= matches an absent key)
      {"app == 'web'", &kWeb, true},
      {"app == 'db'", &kWeb, false},
      {"app == 'web'", &kNone, false},
      {"app == ''", &kNone, false},
      {"app != 'web'", &kWeb, false},
      {"app != 'db'", &kWeb, true},
      {"app != 'web'", &kNone, true},
      // in / not in (not in matches an absent key)
      {"app in {'web', 'db'}", &kWeb, true},
      {"app in {'db'}", &kWeb, false},
      {"app in {'web'}", &kNone, false},
      {"app in {}", &kWeb, false},
      {"app not in {'web'}", &kWeb, false},
      {"app not in {'db', 'api'}", &kWeb, true},
      {"app not in {'web'}", &kNone, true},
      {"app not in {}", &kWeb, true},
      // contains / starts with / ends with need the key
      {"app contains 'e'", &kWeb, true},
      {"app contains 'web'", &kWeb, true},
      {"app contains 'x'", &kWeb, false},
      {"app contains ''", &kWeb, true},
      {"app contains ''", &kNone, false},
      {"app starts with 'we'", &kWeb, true},
      {"app starts with 'eb'", &kWeb, false},
      {"app ends with 'eb'", &kWeb, true},
      {"app ends with 'we'", &kWeb, false},
      {"app ends with 'b'", &kNone, false},
      // quoting
      {"app == \"web\"", &kWeb, true},
      {"tier in {\"frontend\", 'backend'}", &kWeb, true},
      // label key syntax
      {"app.kubernetes.io/name == 'shop'", &kWeb, true},
      {"has(app.kubernetes.io/name)", &kWeb, true},
      {"has(app.kubernetes.io/other)", &kWeb, false},
      // precedence: ! > && > ||
      {"app == 'web' || has(x) && tier == 'backend'", &kWeb, true},
      {"has(x) && tier == 'backend' || app == 'web'", &kWeb, true},
      {"!has(app) || tier == 'frontend'", &kWeb, true},
      {"!app == 'web'", &kWeb, false},
      {"!app == 'db' && env == 'prod'", &kWeb, true},
      // parentheses
      {"(app == 'db' || app == 'web') && env == 'prod'", &kWeb, true},
      {"app == 'db' || (app == 'web' && env == 'dev')", &kWeb, false},
      {"!(app == 'web' && env == 'prod')", &kWeb, false},
      {"!(app == 'db') && env == 'prod'", &kWeb, true},
      {"!!has(app)", &kWeb, true},
      {"((((has(app)))))", &kWeb, true},
      // whitespace anywhere (and none)
      {"  app=='web'&&env=='prod'  ", &kWeb, true},
      {"\tapp\n==\r'web'", &kWeb, true},
      {"has ( app )", &kWeb, true},
      {"all ( )", &kNone, true},
      {"app in{'web'}", &kWeb, true},
      {"!(app=='db')||has(x)", &kWeb, true},
  };
  for (const EvalCase& c : cases) {
    Selector s = sel(c.selector);
    EXPECT_EQ(s.matches(*c.labels), c.want) << c.selector << "  (canonical: " << s.canonical() << ")";
    // The canonical spelling parses back to the same selector with the same verdict.
    Selector again = sel(s.canonical());
    EXPECT_EQ(again.canonical(), s.canonical()) << c.selector;
    EXPECT_EQ(again.matches(*c.labels), c.want) << s.canonical();
  }
}

TEST(Selector, KeywordsAreOrdinaryKeysOutsideTheirPosition) {
  const Labels l = {{"has", "yes"}, {"all", "x"}, {"in", "a"}, {"not", "b"}};
  EXPECT_TRUE(sel("has == 'yes'").matches(l));
  EXPECT_TRUE(sel("all == 'x'").matches(l));
  EXPECT_TRUE(sel("in in {'a'}").matches(l));
  EXPECT_TRUE(sel("not not in {'a'}").matches(l));
  EXPECT_TRUE(sel("has(has) && has(in)").matches(l));
}

TEST(Selector, ValuesMayHoldTheOtherQuote) {
  const Labels l = {{"msg", "it's \"ok\""}};
  EXPECT_TRUE(sel("msg contains \"it's\"").matches(l));
  EXPECT_TRUE(sel("msg ends with '\"ok\"'").matches(l));
  // Canonical text uses whichever quote the value does not hold, and parses back.
  Selector s = sel("msg contains \"it's\"");
  EXPECT_EQ(s.canonical(), "msg contains \"it's\"");
  Selector t = sel("msg ends with '\"ok\"'");
  EXPECT_EQ(t.canonical(), "msg ends with '\"ok\"'");
  EXPECT_EQ(sel(t.canonical()), t);
}

// ---------------------------------------------------------------- canonical form and ids

TEST(Selector, CanonicalText) {
  const std::pair<const char*, const char*> cases[] = {
      {"", "all()"},
      {"app=='web'", "app == \"web\""},
      {"app in {'b','a','a'}", "app in {\"a\", \"b\"}"},
      {"app in {'a'}", "app == \"a\""},
      {"app not in {'a'}", "app != \"a\""},
      {"app == 'a' || app == 'b'", "app in {\"a\", \"b\"}"},
      {"x != 'a' && x not in {'c', 'b'}", "x not in {\"a\", \"b\", \"c\"}"},
      {"b == '2' && (c == '3' || a == '1')", "(a == \"1\" || c == \"3\") && b == \"2\""},
      {"!(app == 'web')", "app != \"web\""},
      {"!(k in {'a','b'})", "k not in {\"a\", \"b\"}"},
      {"!!has(a)", "has(a)"},
      {"!has(a)", "!has(a)"},
      {"!(a contains 'x')", "!(a contains \"x\")"},
      {"!(has(a) && has(b))", "!(has(a) && has(b))"},
      {"all() && has(a)", "has(a)"},
      {"has(a) || all()", "all()"},
      {"has(a) && !all()", "!all()"},
      {"has(a) || !all()", "has(a)"},
      {"has(a) && has(a)", "has(a)"},
      {"(has(a) && has(b)) && has(c)", "has(a) && has(b) && has(c)"},
      {"a starts with 'p' || a ends with 's'", "a ends with \"s\" || a starts with \"p\""},
  };
  for (const auto& [in, want] : cases) {
    EXPECT_EQ(sel(in).canonical(), want) << in;
  }
}

TEST(Selector, EquivalentSpellingsShareCanonicalTextAndId) {
  const std::vector<std::vector<const char*>> groups = {
      {"app=='web'", "app == \"web\"", "  app  ==  'web' ", "(app == 'web')", "!(app != 'web')",
       "app in {'web'}", "app in {'web', 'web'}"},
      {"app in {'b','a'}", "app in {\"a\", \"b\"}", "app == 'a' || app == 'b'",
       "app in {'a'} || app == \"b\"", "app == 'b' || app == 'a' || app == 'a'"},
      {"a == '1' && b == '2'", "b == '2' && a == '1'", "(a == '1') && ((b == '2'))",
       "a == '1' && b == '2' && a == '1'"},
      {"x not in {'a','b'}", "x != 'a' && x != 'b'", "!(x in {'b', 'a'})"},
      {"has(a)", "!!has(a)", "all() && has(a)", "has(a) && all()"},
      {"", "all()", "  ", "all() || has(a)"},
  };
  for (const auto& g : groups) {
    const Selector first = sel(g[0]);
    for (const char* other : g) {
      const Selector s = sel(other);
      EXPECT_EQ(s.canonical(), first.canonical()) << other << " vs " << g[0];
      EXPECT_EQ(s.id(), first.id()) << other;
      EXPECT_TRUE(s == first) << other;
    }
  }
}

TEST(Selector, DifferentSelectorsHaveDifferentIds) {
  const char* texts[] = {"all()",
                         "!all()",
                         "has(app)",
                         "!has(app)",
                         "app == 'web'",
                         "app != 'web'",
                         "app == 'Web'",
                         "app in {'web', 'db'}",
                         "app not in {'web', 'db'}",
                         "app contains 'web'",
                         "app starts with 'web'",
                         "app ends with 'web'",
                         "has(a) && has(b)",
                         "has(a) || has(b)",
                         "has(a) && has(b) || has(c)",
                         "has(a) && (has(b) || has(c))",
                         "app.kubernetes.io/name == 'web'",
                         "app in {}"};
  std::set<uint64_t> ids;
  std::set<std::string> canon;
  for (const char* t : texts) {
    const Selector s = sel(t);
    EXPECT_TRUE(ids.insert(s.id()).second) << t;
    EXPECT_TRUE(canon.insert(s.canonical()).second) << t;
  }
}

TEST(Selector, IdIsFnv1aOfCanonicalText) {
  // Published FNV-1a 64 test vectors.
  EXPECT_EQ(fnv1a64(""), 0xcbf29ce484222325ULL);
  EXPECT_EQ(fnv1a64("a"), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(fnv1a64("foobar"), 0x85944171f73967e8ULL);
  const Selector s = sel("app == 'web'");
  EXPECT_EQ(s.id(), fnv1a64("app == \"web\""));
  EXPECT_EQ(Selector().id(), fnv1a64("all()"));
  EXPECT_TRUE(Selector().is_all());
  EXPECT_FALSE(s.is_all());
  EXPECT_EQ(format_set_id(0x303904ae5eae5418ULL), "0x303904ae5eae5418");
  EXPECT_EQ(format_set_id(1), "0x0000000000000001");
}

// Ids are the keys of pinned ipsets entries: they must not change between versions for the same
// selector. Known answers computed independently (docs/selectors.md shows how).
TEST(Selector, IdsAreStable) {
  EXPECT_EQ(sel("app == 'web'").id(), 0x5133e7c38c070188ULL);
  EXPECT_EQ(sel("").id(), 0x68f9c1bb7305fd57ULL);
}

TEST(Selector, CopiesShareTheTree) {
  const Selector a = sel("app == 'web'");
  const Selector b = a;  // NOLINT(performance-unnecessary-copy-initialization)
  EXPECT_EQ(&a.canonical(), &b.canonical());
  EXPECT_TRUE(b.matches(kWeb));
}

// ---------------------------------------------------------------- randomized semantics

// An independent reference: random expression trees rendered with random spelling, evaluated
// directly and through parse + normalise + matches.
struct Expr {
  int kind = 0;  // 0 all 1 has 2 == 3 != 4 in 5 not in 6 contains 7 starts 8 ends 9 ! 10 && 11 ||
  std::string key;
  std::vector<std::string> vals;
  std::vector<Expr> kids;
};

const char* const kKeys[] = {"a", "b", "c"};
const char* const kVals[] = {"x", "y", "xy", ""};

Expr random_expr(std::mt19937& rng, int depth) {
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  Expr e;
  e.kind = depth <= 0 ? pick(9) : pick(12);
  e.key = kKeys[pick(3)];
  if (e.kind >= 2 && e.kind <= 8) {
    const int n = (e.kind == 4 || e.kind == 5) ? pick(4) : 1;
    for (int i = 0; i < n; ++i) e.vals.push_back(kVals[pick(4)]);
  }
  if (e.kind == 9) e.kids.push_back(random_expr(rng, depth - 1));
  if (e.kind >= 10) {
    const int n = 2 + pick(3);
    for (int i = 0; i < n; ++i) e.kids.push_back(random_expr(rng, depth - 1));
  }
  return e;
}

std::string render(const Expr& e, std::mt19937& rng) {
  auto q = [&](const std::string& v) { return rng() % 2 ? "'" + v + "'" : "\"" + v + "\""; };
  auto sp = [&]() { return std::string(rng() % 2 ? " " : ""); };
  switch (e.kind) {
    case 0: return "all(" + sp() + ")";
    case 1: return "has(" + sp() + e.key + sp() + ")";
    case 2: return e.key + sp() + "==" + sp() + q(e.vals[0]);
    case 3: return e.key + sp() + "!=" + sp() + q(e.vals[0]);
    case 4:
    case 5: {
      std::string s = e.key + (e.kind == 4 ? " in " : " not in ") + "{";
      for (size_t i = 0; i < e.vals.size(); ++i) s += (i ? "," + sp() : "") + q(e.vals[i]);
      return s + "}";
    }
    case 6: return e.key + " contains " + q(e.vals[0]);
    case 7: return e.key + " starts with " + q(e.vals[0]);
    case 8: return e.key + " ends with " + q(e.vals[0]);
    case 9: return "!(" + render(e.kids[0], rng) + ")";
    default: {
      std::string s;
      for (size_t i = 0; i < e.kids.size(); ++i) {
        if (i) s += sp() + (e.kind == 10 ? "&&" : "||") + sp();
        s += "(" + render(e.kids[i], rng) + ")";
      }
      return s;
    }
  }
}

bool reference_eval(const Expr& e, const Labels& l) {
  auto it = l.find(e.key);
  const bool present = it != l.end();
  auto in_vals = [&]() {
    for (const auto& v : e.vals) {
      if (v == it->second) return true;
    }
    return false;
  };
  switch (e.kind) {
    case 0: return true;
    case 1: return present;
    case 2: return present && it->second == e.vals[0];
    case 3: return !present || it->second != e.vals[0];
    case 4: return present && in_vals();
    case 5: return !present || !in_vals();
    case 6: return present && it->second.find(e.vals[0]) != std::string::npos;
    case 7: return present && it->second.rfind(e.vals[0], 0) == 0;
    case 8:
      return present && it->second.size() >= e.vals[0].size() &&
             it->second.compare(it->second.size() - e.vals[0].size(), e.vals[0].size(),
                                e.vals[0]) == 0;
    case 9: return !reference_eval(e.kids[0], l);
    case 10:
      for (const auto& k : e.kids) {
        if (!reference_eval(k, l)) return false;
      }
      return true;
    default:
      for (const auto& k : e.kids) {
        if (reference_eval(k, l)) return true;
      }
      return false;
  }
}

TEST(Selector, RandomExpressionsMatchReferenceSemantics) {
  std::mt19937 rng(12345);
  // Every label set over keys a, b, c with values x, y, xy, "" or absent: 5^3 = 125.
  std::vector<Labels> all_labels;
  for (int i = 0; i < 125; ++i) {
    Labels l;
    int n = i;
    for (const char* k : kKeys) {
      if (n % 5 < 4) l[k] = kVals[n % 5];
      n /= 5;
    }
    all_labels.push_back(l);
  }
  for (int iter = 0; iter < 1500; ++iter) {
    const Expr e = random_expr(rng, 1 + static_cast<int>(rng() % 4));
    const std::string text = render(e, rng);
    auto parsed = parse_selector(text);
    ASSERT_TRUE(parsed.ok()) << text << ": " << parsed.error().str();
    auto reparsed = parse_selector(parsed->canonical());
    ASSERT_TRUE(reparsed.ok()) << parsed->canonical() << ": " << reparsed.error().str();
    EXPECT_EQ(reparsed->canonical(), parsed->canonical()) << text;
    for (const Labels& l : all_labels) {
      const bool want = reference_eval(e, l);
      ASSERT_EQ(parsed->matches(l), want) << text << "\ncanonical: " << parsed->canonical();
      ASSERT_EQ(reparsed->matches(l), want) << parsed->canonical();
    }
  }
}

// ---------------------------------------------------------------- syntax errors

TEST(Selector, ErrorMessageNamesSelectorColumnAndExpectation) {
  auto r = parse_selector("app == web");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().msg, "selector \"app == web\": column 8: expected a quoted string");
}

TEST(Selector, SyntaxErrorColumns) {
  struct Case {
    const char* text;
    size_t column;
    const char* message_part;
  };
  const Case cases[] = {
      {"app == web", 8, "expected a quoted string"},
      {"app = 'web'", 5, "expected an operator"},
      {"app", 4, "expected an operator"},
      {"app is 'web'", 5, "expected an operator"},
      {"(app == 'web'", 14, "expected '&&', '||' or ')'"},
      {"app == 'web", 8, "unterminated string"},
      {"app == \"web'", 8, "unterminated string"},
      {"has(app", 8, "expected ')'"},
      {"has()", 5, "expected a label key"},
      {"all(x)", 5, "all() takes no argument"},
      {"app in {'a' 'b'}", 13, "expected ',' or '}'"},
      {"app in {'a',}", 13, "expected a quoted string"},
      {"app in {'a'", 12, "expected ',' or '}'"},
      {"app in 'a'", 8, "expected '{'"},
      {"app == 'a' &&", 14, "expected a selector expression"},
      {"app == 'a' ||   ", 17, "expected a selector expression"},
      {"app == 'a' extra", 12, "expected '&&', '||' or the end of the selector"},
      {"app == 'a' & b == 'c'", 12, "expected '&&', '||' or the end"},
      {"app == 'a')", 11, "expected '&&', '||' or the end"},
      {"&& app == 'a'", 1, "expected a selector expression"},
      {"== 'a'", 1, "expected a selector expression"},
      {"()", 2, "expected a selector expression"},
      {"!", 2, "expected a selector expression"},
      {"app not 'a'", 9, "expected 'in' after 'not'"},
      {"app starts 'a'", 12, "expected 'with' after 'starts'"},
      {"app ends wit 'a'", 10, "expected 'with' after 'ends'"},
      {"-app == 'a'", 1, "invalid label key \"-app\""},
      {"has(x) && Example.com/app == 'a'", 11, "is not a DNS subdomain"},
      {"a/b/c == 'x'", 1, "more than one '/'"},
      {"has(/x)", 5, "empty prefix"},
      {"has(x/)", 5, "empty name"},
      {"app == 'a\x01'", 10, "control character"},
      {"app == 'a' && has(b) && c ~ 'd'", 27, "expected an operator"},
  };
  for (const Case& c : cases) {
    const SelectorError e = err(c.text);
    EXPECT_EQ(e.column, c.column) << c.text << ": " << e.message;
    EXPECT_NE(e.message.find(c.message_part), std::string::npos)
        << c.text << ": got \"" << e.message << "\"";
  }
}

TEST(Selector, ErrorMessageShortensLongInput) {
  std::string prefix = "k in {";
  while (prefix.size() < 200) prefix += "'v', ";
  const std::string text = prefix + "b}";
  auto r = parse_selector(text);
  ASSERT_FALSE(r.ok());
  const std::string want = "selector \"" + text.substr(0, 80) + "...\": column " +
                           std::to_string(prefix.size() + 1) + ": expected a quoted string";
  EXPECT_EQ(r.error().msg, want);
}

TEST(Selector, LabelKeySyntax) {
  for (const char* ok : {"app", "a", "A_b-c.d", "app.kubernetes.io/name", "x/y", "k8s.io/X1",
                         "a-b.c/Name_1"}) {
    EXPECT_EQ(check_label_key(ok), "") << ok;
    EXPECT_TRUE(parse_selector(std::string("has(") + ok + ")").ok()) << ok;
  }
  const std::string name63(63, 'n');
  const std::string prefix253 = std::string(125, 'p') + "." + std::string(127, 'q');
  EXPECT_EQ(check_label_key(name63), "");
  EXPECT_EQ(check_label_key(prefix253 + "/x"), "");
  for (const std::string& bad :
       {std::string(""), std::string("/a"), std::string("a/"), std::string("A.io/x"),
        std::string("-a"), std::string("a-"), std::string("a/b/c"), std::string("a b"),
        std::string("a..b/x"), std::string("-a.io/x"), std::string("a.io-/x"), name63 + "n",
        prefix253 + "p/x", std::string("a/_x")}) {
    EXPECT_NE(check_label_key(bad), "") << bad;
  }
  EXPECT_EQ(err("has(" + name63 + "n)").column, 5u);
}

TEST(Selector, LabelValueSyntax) {
  for (const char* ok : {"", "web", "a.b_c-d", "V1"}) EXPECT_EQ(check_label_value(ok), "") << ok;
  for (const std::string& bad : {std::string("-a"), std::string("a b"), std::string(64, 'v'),
                                 std::string("a'"), std::string("_")}) {
    EXPECT_NE(check_label_value(bad), "") << bad;
  }
}

// ---------------------------------------------------------------- limits

TEST(Selector, NestingDepthLimit) {
  const auto nested = [](size_t n) {
    return std::string(n, '(') + "has(a)" + std::string(n, ')');
  };
  EXPECT_TRUE(parse_selector(nested(kMaxSelectorDepth)).ok());
  EXPECT_TRUE(sel(nested(kMaxSelectorDepth)).matches({{"a", ""}}));
  const SelectorError e = err(nested(kMaxSelectorDepth + 1));
  EXPECT_EQ(e.column, kMaxSelectorDepth + 1);
  EXPECT_NE(e.message.find("nesting deeper than 64 levels"), std::string::npos) << e.message;

  EXPECT_TRUE(parse_selector(std::string(kMaxSelectorDepth, '!') + "has(a)").ok());
  EXPECT_EQ(err(std::string(kMaxSelectorDepth + 1, '!') + "has(a)").column, kMaxSelectorDepth + 1);
  // Mixed '!' and '(' count together.
  EXPECT_EQ(err(std::string(40, '!') + std::string(40, '(') + "has(a)" + std::string(40, ')'))
                .column,
            kMaxSelectorDepth + 1);
  // Hostile input within the length limit fails cleanly, without deep recursion.
  EXPECT_EQ(err(std::string(kMaxSelectorLength, '(')).column, kMaxSelectorDepth + 1);
  EXPECT_EQ(err(std::string(kMaxSelectorLength, '!')).column, kMaxSelectorDepth + 1);
}

TEST(Selector, LengthLimit) {
  // A long flat selector is fine up to the limit.
  std::string text = "k0 == 'v'";
  for (int i = 1;; ++i) {
    const std::string term = " || k" + std::to_string(i) + " == 'v'";
    if (text.size() + term.size() > kMaxSelectorLength) break;
    text += term;
  }
  text.resize(kMaxSelectorLength, ' ');
  Selector s = sel(text);
  EXPECT_TRUE(s.matches({{"k7", "v"}}));
  EXPECT_FALSE(s.matches({{"k7", "w"}}));

  const SelectorError e = err(text + " ");
  EXPECT_EQ(e.column, kMaxSelectorLength + 1);
  EXPECT_NE(e.message.find("longer than 16384 bytes"), std::string::npos) << e.message;
  EXPECT_FALSE(parse_selector(std::string(1 << 20, '(')).ok());
}

// ---------------------------------------------------------------- Kubernetes LabelSelector

Selector k8s(const Labels& ml, const std::vector<LabelSelectorRequirement>& me) {
  auto r = from_label_selector(ml, me);
  EXPECT_TRUE(r.ok()) << r.error().str();
  return r.ok() ? *r : Selector();
}

TEST(Selector, KubernetesEmptySelectsEverything) {
  const Selector s = k8s({}, {});
  EXPECT_TRUE(s.is_all());
  EXPECT_TRUE(s.matches({}));
  EXPECT_TRUE(s.matches(kWeb));
}

TEST(Selector, KubernetesMatchLabels) {
  const Selector s = k8s({{"app", "web"}, {"tier", "frontend"}}, {});
  EXPECT_EQ(s.canonical(), "app == \"web\" && tier == \"frontend\"");
  EXPECT_TRUE(s.matches(kWeb));
  EXPECT_FALSE(s.matches({{"app", "web"}}));
  EXPECT_FALSE(s.matches({{"app", "web"}, {"tier", "backend"}}));
}

TEST(Selector, KubernetesOperators) {
  const Selector in = k8s({}, {{"env", "In", {"prod", "staging"}}});
  EXPECT_TRUE(in.matches({{"env", "prod"}}));
  EXPECT_TRUE(in.matches({{"env", "staging"}}));
  EXPECT_FALSE(in.matches({{"env", "dev"}}));
  EXPECT_FALSE(in.matches({}));

  const Selector notin = k8s({}, {{"env", "NotIn", {"prod"}}});
  EXPECT_TRUE(notin.matches({}));  // absent key: NotIn matches
  EXPECT_TRUE(notin.matches({{"env", "dev"}}));
  EXPECT_FALSE(notin.matches({{"env", "prod"}}));

  const Selector exists = k8s({}, {{"env", "Exists", {}}});
  EXPECT_TRUE(exists.matches({{"env", ""}}));
  EXPECT_FALSE(exists.matches({}));

  const Selector dne = k8s({}, {{"env", "DoesNotExist", {}}});
  EXPECT_TRUE(dne.matches({}));
  EXPECT_FALSE(dne.matches({{"env", ""}}));

  // Everything is ANDed.
  const Selector all = k8s({{"app", "web"}}, {{"env", "In", {"prod", "staging"}},
                                              {"canary", "DoesNotExist", {}},
                                              {"tier", "NotIn", {"backend"}}});
  EXPECT_TRUE(all.matches(kWeb));
  EXPECT_FALSE(all.matches({{"app", "web"}, {"env", "prod"}, {"canary", "true"}}));
  EXPECT_FALSE(all.matches({{"app", "web"}, {"env", "dev"}}));
  EXPECT_FALSE(all.matches({{"app", "db"}, {"env", "prod"}}));
  EXPECT_FALSE(all.matches({{"app", "web"}, {"env", "prod"}, {"tier", "backend"}}));

  // The same set as the selector-language spelling.
  EXPECT_EQ(all, sel("tier != 'backend' && !has(canary) && env in {'staging', 'prod'} && "
                     "app == 'web'"));
  EXPECT_EQ(all.id(), sel("app == 'web' && env in {'prod','staging'} && tier not in {'backend'} "
                          "&& !has(canary)")
                          .id());
}

TEST(Selector, KubernetesErrors) {
  struct Case {
    Labels ml;
    std::vector<LabelSelectorRequirement> me;
    const char* want;
  };
  const Case cases[] = {
      {{}, {{"env", "Equals", {"a"}}},
       "matchExpressions[0] (key \"env\"): unknown operator \"Equals\" (want In, NotIn, Exists or "
       "DoesNotExist)"},
      {{}, {{"a", "Exists", {}}, {"env", "in", {"a"}}}, "matchExpressions[1] (key \"env\"): unknown"},
      {{}, {{"env", "In", {}}}, "matchExpressions[0] (key \"env\"): operator In needs at least one"},
      {{}, {{"env", "NotIn", {}}}, "operator NotIn needs at least one value"},
      {{}, {{"env", "Exists", {"x"}}}, "operator Exists takes no values (got 1)"},
      {{}, {{"env", "DoesNotExist", {"x", "y"}}}, "operator DoesNotExist takes no values (got 2)"},
      {{}, {{"bad key", "Exists", {}}}, "matchExpressions[0]: invalid label key \"bad key\""},
      {{}, {{"env", "In", {"ok", "a b"}}}, "invalid label value \"a b\""},
      {{{"Bad.io/x", "v"}}, {}, "matchLabels: invalid label key \"Bad.io/x\""},
      {{{"app", "it's"}}, {}, "matchLabels[\"app\"]: invalid label value \"it's\""},
  };
  for (const Case& c : cases) {
    auto r = from_label_selector(c.ml, c.me);
    ASSERT_FALSE(r.ok()) << c.want;
    EXPECT_NE(r.error().msg.find(c.want), std::string::npos) << r.error().msg;
  }
}

}  // namespace
}  // namespace weir::model
