// Prometheus text exposition format (version 0.0.4), written by hand: what `weir agent
// --metrics-listen` serves at /metrics. Pure: no I/O.
//
//   prom::Writer w;
//   w.family("weir_sync_total", "counter", "Syncs of the datastore's state, by result.");
//   w.sample("weir_sync_total", {{"result", "ok"}}, 12);
//   prom::Histogram h(prom::kDurationBuckets);
//   h.observe(0.004);
//   w.family("weir_sync_duration_seconds", "histogram", "...");
//   w.histogram("weir_sync_duration_seconds", {{"phase", "calc"}}, h);
//   std::string text = w.str();
//
// Each family is announced once (# HELP, # TYPE) before its samples; label values are escaped
// (backslash, double quote, newline); non-finite values print as +Inf, -Inf, NaN.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace weir::prom {

using Labels = std::vector<std::pair<std::string, std::string>>;

// Bucket upper bounds (seconds) for durations from 100 us to 10 s.
inline const std::vector<double> kDurationBuckets = {0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                     0.025,  0.05,   0.1,   0.25,   0.5,   1,
                                                     2.5,    5,      10};

// A cumulative histogram: counts per upper bound (the +Inf bucket is count()).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds = kDurationBuckets);
  void observe(double v);
  const std::vector<double>& bounds() const { return bounds_; }
  // Observations <= bounds()[i] (cumulative, as exposed).
  uint64_t cumulative(size_t i) const;
  uint64_t count() const { return count_; }
  double sum() const { return sum_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> per_bucket_;  // observations in (bounds[i-1], bounds[i]]
  uint64_t count_ = 0;
  double sum_ = 0;
};

// `v` as the format writes numbers: integers without a fraction, others in shortest form.
std::string format_value(double v);
// A label value escaped for the format.
std::string escape_label_value(const std::string& v);

class Writer {
 public:
  // # HELP and # TYPE lines (type: counter, gauge, histogram, untyped).
  void family(const std::string& name, const std::string& type, const std::string& help);
  void sample(const std::string& name, const Labels& labels, double value);
  // name_bucket{...,le="..."} for every bound and +Inf, name_sum, name_count.
  void histogram(const std::string& name, const Labels& labels, const Histogram& h);
  const std::string& str() const { return out_; }

 private:
  std::string out_;
};

}  // namespace weir::prom
