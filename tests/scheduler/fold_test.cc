#include "scheduler/core/fold.h"

#include <algorithm>
#include <random>

#include "gtest/gtest.h"

namespace tessera::scheduler {
namespace {

using json = nlohmann::json;

absl::StatusOr<json> FoldAll(const std::vector<json>& results, AggregateSpec spec = {}) {
  Folder f(std::move(spec));
  for (size_t i = 0; i < results.size(); ++i) {
    absl::Status s = f.Add(static_cast<int64_t>(i), results[i]);
    if (!s.ok()) return s;
  }
  return f.value();
}

AggregateSpec Fields(std::map<std::string, Reducer> fields,
                     Reducer def = Reducer::kAuto) {
  AggregateSpec s;
  s.default_reducer = def;
  s.fields = std::move(fields);
  return s;
}

TEST(FoldTest, AutoAddsNumbersMergesObjectsAndConcatenatesArrays) {
  auto out = FoldAll({
      json{{"primes", 4}, {"stats", {{"created", 1}}}, {"codes", {"a"}}, {"kind", "x"}},
      json{{"primes", 3},
           {"stats", {{"created", 2}, {"deleted", 1}}},
           {"codes", {"b", "c"}},
           {"kind", "x"}},
  });
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, (json{{"primes", 7},
                        {"stats", {{"created", 3}, {"deleted", 1}}},
                        {"codes", {"a", "b", "c"}},
                        {"kind", "x"}}));
}

TEST(FoldTest, AutoRefusesUnequalStringsAndNamesTheField) {
  auto out = FoldAll({json{{"a", {{"kind", "x"}}}}, json{{"a", {{"kind", "y"}}}}});
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("a.kind"), std::string::npos) << out.status();
  EXPECT_NE(out.status().message().find("shard 1"), std::string::npos) << out.status();
}

TEST(FoldTest, AutoRefusesMixedTypes) {
  EXPECT_FALSE(FoldAll({json{{"a", 1}}, json{{"a", "1"}}}).ok());
}

TEST(FoldTest, SumAddsRecursivelyAndRefusesStrings) {
  auto out = FoldAll({json{{"c", {{"x", 1.5}}}}, json{{"c", {{"x", 2}}}}},
                     Fields({{"c", Reducer::kSum}}));
  ASSERT_TRUE(out.ok());
  EXPECT_DOUBLE_EQ((*out)["c"]["x"].get<double>(), 3.5);
  EXPECT_FALSE(FoldAll({json{{"c", "a"}}}, Fields({{"c", Reducer::kSum}})).ok());
}

TEST(FoldTest, IntegersOfMixedSignsStayIntegers) {
  auto out = FoldAll({json::parse(R"({"n": 5})"), json::parse(R"({"n": -3})")});
  ASSERT_TRUE(out.ok());
  EXPECT_TRUE((*out)["n"].is_number_integer());
  EXPECT_EQ(out->dump(), R"({"n":2})");
}

TEST(FoldTest, SumFallsBackToDoubleOnIntegerOverflow) {
  auto out = FoldAll({json{{"n", INT64_MAX}}, json{{"n", 1}}});
  ASSERT_TRUE(out.ok());
  EXPECT_TRUE((*out)["n"].is_number_float());
}

TEST(FoldTest, MergeUnitesObjectsAndRefusesAKeyFromTwoShards) {
  auto spec = Fields({{"codes", Reducer::kMerge}});
  auto ok =
      FoldAll({json{{"codes", {{"1", {"a"}}}}}, json{{"codes", {{"2", {"b"}}}}}}, spec);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ((*ok)["codes"], (json{{"1", {"a"}}, {"2", {"b"}}}));
  auto dup = FoldAll({json{{"codes", {{"1", 1}}}}, json{{"codes", {{"1", 2}}}}}, spec);
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(dup.status().message().find("\"1\" produced by two shards"),
            std::string::npos);
}

TEST(FoldTest, ConcatKeepsShardOrderAndWrapsSingleValues) {
  auto out = FoldAll({json{{"v", 1}}, json{{"v", {2, 3}}}, json{{"v", "x"}}},
                     Fields({{"v", Reducer::kConcat}}));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ((*out)["v"], (json{1, 2, 3, "x"}));
}

TEST(FoldTest, MinAndMaxCompareNumbersAndStrings) {
  auto spec =
      Fields({{"lo", Reducer::kMin}, {"hi", Reducer::kMax}, {"s", Reducer::kMin}});
  auto out = FoldAll(
      {json{{"lo", 5}, {"hi", 5}, {"s", "b"}}, json{{"lo", 2}, {"hi", 9}, {"s", "a"}},
       json{{"lo", 7}, {"hi", 1}, {"s", "c"}}},
      spec);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ((*out)["lo"], 2);
  EXPECT_EQ((*out)["hi"], 9);
  EXPECT_EQ((*out)["s"], "a");
  EXPECT_FALSE(FoldAll({json{{"lo", 1}}, json{{"lo", "a"}}}, spec).ok());
}

TEST(FoldTest, FirstKeepsTheLowestShardsValue) {
  auto out =
      FoldAll({json{{"v", "a"}}, json{{"v", "b"}}}, Fields({{"v", Reducer::kFirst}}));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ((*out)["v"], "a");
}

TEST(FoldTest, NestedFieldPathOverridesApply) {
  auto out = FoldAll({json{{"s", {{"names", {"a"}}, {"n", 1}}}},
                      json{{"s", {{"names", {"b"}}, {"n", 1}}}}},
                     Fields({{"s.names", Reducer::kFirst}}));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ((*out)["s"], (json{{"names", {"a"}}, {"n", 2}}));
}

TEST(FoldTest, DefaultReducerAppliesToEveryTopLevelField) {
  auto out = FoldAll({json{{"a", 3}, {"b", 1}}, json{{"a", 1}, {"b", 4}}},
                     Fields({{"b", Reducer::kMax}}, Reducer::kMin));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ((*out)["a"], 1);
  EXPECT_EQ((*out)["b"], 4);
}

TEST(FoldTest, DefaultMergeUnitesShardResultsAndRefusesADuplicateKey) {
  AggregateSpec merge;
  merge.default_reducer = Reducer::kMerge;
  auto out = FoldAll({json{{"1", {"a", "b"}}}, json{{"2", {"c"}}}}, merge);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, (json{{"1", {"a", "b"}}, {"2", {"c"}}}));
  auto dup = FoldAll({json{{"1", {"a"}}}, json{{"1", {"a"}}}}, merge);
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(dup.status().message().find("\"1\" produced by two shards"),
            std::string::npos);
}

TEST(FoldTest, RefusesANonObjectResult) {
  EXPECT_FALSE(FoldAll({json::array({1})}).ok());
}

TEST(FoldTest, AFailedAddFailsEveryLaterAdd) {
  Folder f;
  ASSERT_TRUE(f.Add(0, json{{"a", 1}}).ok());
  absl::Status first = f.Add(1, json{{"a", "x"}});
  ASSERT_FALSE(first.ok());
  EXPECT_EQ(f.Add(2, json{{"a", 2}}), first);
}

TEST(FoldTest, ConcatOfManyShardsKeepsEveryElementInOrder) {
  Folder f(Fields({{"v", Reducer::kConcat}}));
  for (int i = 0; i < 20000; ++i) ASSERT_TRUE(f.Add(i, json{{"v", {i}}}).ok());
  ASSERT_EQ(f.value()["v"].size(), 20000u);
  EXPECT_EQ(f.value()["v"][19999], 19999);
}

TEST(FoldTest, ParsesEveryReducerNameAndRefusesUnknownOnes) {
  for (const char* name : {"auto", "sum", "merge", "concat", "min", "max", "first"}) {
    auto r = ParseReducer(name);
    ASSERT_TRUE(r.ok()) << name;
    EXPECT_EQ(ReducerName(*r), name);
  }
  EXPECT_EQ(*ParseReducer(""), Reducer::kAuto);
  auto bad = ParseReducer("avg");
  ASSERT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("avg"), std::string::npos);
}

}  // namespace
}  // namespace tessera::scheduler
