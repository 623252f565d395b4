#include "shared/process_metrics.h"

#include <set>

#include "gtest/gtest.h"

namespace tessera {
namespace {

TEST(ProcStatTest, ParsesFieldsAfterACommandNameWithSpacesAndParentheses) {
  // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt
  // cmajflt utime stime cutime cstime priority nice threads itreal starttime
  // vsize rss ...
  const std::string stat =
      "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 150 0 0 20 0 4 0 1000 "
      "123456789 2048 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
  ProcStat st;
  ASSERT_TRUE(ParseProcStat(stat, 100, &st));
  EXPECT_DOUBLE_EQ(st.cpu_seconds, 4.0);
  EXPECT_DOUBLE_EQ(st.start_ticks, 1000);
  EXPECT_DOUBLE_EQ(st.virtual_bytes, 123456789);
  EXPECT_DOUBLE_EQ(st.resident_pages, 2048);
  EXPECT_FALSE(ParseProcStat("garbage", 100, &st));
}

TEST(ProcessMetricsTest, ExportsTheStandardFamiliesOfThisProcess) {
  std::set<std::string> names;
  for (const prometheus::MetricFamily& f : CollectProcessMetrics()) {
    names.insert(f.name);
    ASSERT_EQ(f.metric.size(), 1u) << f.name;
  }
  for (const char* want : {"process_cpu_seconds_total", "process_resident_memory_bytes",
                           "process_virtual_memory_bytes", "process_start_time_seconds",
                           "process_open_fds", "process_max_fds"}) {
    EXPECT_EQ(names.count(want), 1u) << want;
  }
  for (const prometheus::MetricFamily& f : CollectProcessMetrics()) {
    if (f.name == "process_resident_memory_bytes")
      EXPECT_GT(f.metric[0].gauge.value, 1e5);
    if (f.name == "process_open_fds") EXPECT_GE(f.metric[0].gauge.value, 3);
  }
}

}  // namespace
}  // namespace tessera
