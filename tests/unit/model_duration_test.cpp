// model/duration.h: Go-style durations.
#include <gtest/gtest.h>

#include "model/duration.h"

namespace weir::model {
namespace {

using namespace std::chrono_literals;

std::chrono::nanoseconds parse_ok(const char* s) {
  auto r = parse_duration(s);
  EXPECT_TRUE(r.ok()) << s << ": " << (r.ok() ? "" : r.error().msg);
  return r.ok() ? *r : std::chrono::nanoseconds(-999);
}

TEST(Duration, ParsesGoSyntax) {
  EXPECT_EQ(parse_ok("0"), 0ns);
  EXPECT_EQ(parse_ok("1s"), 1s);
  EXPECT_EQ(parse_ok("500ms"), 500ms);
  EXPECT_EQ(parse_ok("1m30s"), 90s);
  EXPECT_EQ(parse_ok("1h"), 1h);
  EXPECT_EQ(parse_ok("2h45m"), 2h + 45min);
  EXPECT_EQ(parse_ok("1.5h"), 90min);
  EXPECT_EQ(parse_ok(".5s"), 500ms);
  EXPECT_EQ(parse_ok("1.s"), 1s);
  EXPECT_EQ(parse_ok("10us"), 10us);
  EXPECT_EQ(parse_ok("10\xc2\xb5s"), 10us);
  EXPECT_EQ(parse_ok("10\xce\xbcs"), 10us);
  EXPECT_EQ(parse_ok("7ns"), 7ns);
  EXPECT_EQ(parse_ok("1.000000001s"), 1000000001ns);
  EXPECT_EQ(parse_ok("0.0000000001s"), 0ns);  // below 1ns truncates
  EXPECT_EQ(parse_ok("+5s"), 5s);
  EXPECT_EQ(parse_ok("-5s"), -5s);
  EXPECT_EQ(parse_ok("1h1m1s1ms1us1ns"), 1h + 1min + 1s + 1ms + 1us + 1ns);
  EXPECT_EQ(parse_ok("2562047h47m16.854775807s"), std::chrono::nanoseconds(INT64_MAX));
}

TEST(Duration, RejectsBadInput) {
  struct Case {
    const char* in;
    const char* msg;
  } cases[] = {
      {"", "empty"},
      {"5", "missing unit"},
      {"1m5", "missing unit"},
      {"1d", "unknown unit \"d\""},
      {"1sec", "expected a number"},
      {"s", "expected a number"},
      {".s", "expected a number"},
      {"1 s", "unknown unit \" s\""},
      {"-", "empty"},
      {"2562047h47m16.854775808s", "out of range"},
      {"99999999999999999999h", "out of range"},
  };
  for (const auto& c : cases) {
    auto r = parse_duration(c.in);
    ASSERT_FALSE(r.ok()) << c.in;
    EXPECT_NE(r.error().msg.find(c.msg), std::string::npos) << c.in << ": " << r.error().msg;
    EXPECT_NE(r.error().msg.find(std::string("\"") + c.in + "\""), std::string::npos)
        << "error quotes the input: " << r.error().msg;
  }
}

TEST(Duration, FormatsLikeGo) {
  EXPECT_EQ(format_duration(0ns), "0s");
  EXPECT_EQ(format_duration(1s), "1s");
  EXPECT_EQ(format_duration(90s), "1m30s");
  EXPECT_EQ(format_duration(1h), "1h0m0s");
  EXPECT_EQ(format_duration(10min), "10m0s");
  EXPECT_EQ(format_duration(1500ms), "1.5s");
  EXPECT_EQ(format_duration(500ms), "500ms");
  EXPECT_EQ(format_duration(1500us), "1.5ms");
  EXPECT_EQ(format_duration(2us), "2\xc2\xb5s");
  EXPECT_EQ(format_duration(7ns), "7ns");
  EXPECT_EQ(format_duration(-90s), "-1m30s");
  EXPECT_EQ(format_duration(26h + 3min + 500ms), "26h3m0.5s");
}

TEST(Duration, FormatParseRoundTrip) {
  for (std::chrono::nanoseconds d : std::initializer_list<std::chrono::nanoseconds>{
           0ns, 1ns, 999ns, 1us, 1500us, 1s, 61s, 3601s, 10min, 1h, 1h + 1ns}) {
    auto r = parse_duration(format_duration(d));
    ASSERT_TRUE(r.ok()) << format_duration(d);
    EXPECT_EQ(*r, d) << format_duration(d);
  }
}

}  // namespace
}  // namespace weir::model
