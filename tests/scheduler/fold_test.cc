#include "scheduler/core/fold.h"

#include <algorithm>
#include <random>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/status_matchers.h"

namespace tessera::scheduler {
namespace {

using json = nlohmann::json;
using ::tessera::testing::IsOk;
using ::tessera::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

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
  ASSERT_THAT(out, IsOk());
  EXPECT_EQ(*out, (json{{"primes", 7},
                        {"stats", {{"created", 3}, {"deleted", 1}}},
                        {"codes", {"a", "b", "c"}},
                        {"kind", "x"}}));
}

TEST(FoldTest, AutoRefusesUnequalStringsAndNamesTheField) {
  auto out = FoldAll({json{{"a", {{"kind", "x"}}}}, json{{"a", {{"kind", "y"}}}}});
  ASSERT_THAT(out, StatusIs(absl::StatusCode::kInvalidArgument,
                            AllOf(HasSubstr("a.kind"), HasSubstr("shard 1"))));
}

TEST(FoldTest, AutoRefusesMixedTypes) {
  EXPECT_THAT(FoldAll({json{{"a", 1}}, json{{"a", "1"}}}), Not(IsOk()));
}

TEST(FoldTest, SumAddsRecursivelyAndRefusesStrings) {
  auto out = FoldAll({json{{"c", {{"x", 1.5}}}}, json{{"c", {{"x", 2}}}}},
                     Fields({{"c", Reducer::kSum}}));
  ASSERT_THAT(out, IsOk());
  EXPECT_DOUBLE_EQ((*out)["c"]["x"].get<double>(), 3.5);
  EXPECT_THAT(FoldAll({json{{"c", "a"}}}, Fields({{"c", Reducer::kSum}})), Not(IsOk()));
}

TEST(FoldTest, IntegersOfMixedSignsStayIntegers) {
  auto out = FoldAll({json::parse(R"({"n": 5})"), json::parse(R"({"n": -3})")});
  ASSERT_THAT(out, IsOk());
  EXPECT_TRUE((*out)["n"].is_number_integer());
  EXPECT_EQ(out->dump(), R"({"n":2})");
}

TEST(FoldTest, SumFallsBackToDoubleOnIntegerOverflow) {
  auto out = FoldAll({json{{"n", INT64_MAX}}, json{{"n", 1}}});
  ASSERT_THAT(out, IsOk());
  EXPECT_TRUE((*out)["n"].is_number_float());
}

TEST(FoldTest, MergeUnitesObjectsAndRefusesAKeyFromTwoShards) {
  auto spec = Fields({{"codes", Reducer::kMerge}});
  auto ok =
      FoldAll({json{{"codes", {{"1", {"a"}}}}}, json{{"codes", {{"2", {"b"}}}}}}, spec);
  ASSERT_THAT(ok, IsOk());
  EXPECT_EQ((*ok)["codes"], (json{{"1", {"a"}}, {"2", {"b"}}}));
  auto dup = FoldAll({json{{"codes", {{"1", 1}}}}, json{{"codes", {{"1", 2}}}}}, spec);
  ASSERT_THAT(dup, StatusIs(absl::StatusCode::kInvalidArgument,
                            HasSubstr("\"1\" produced by two shards")));
}

TEST(FoldTest, ConcatKeepsShardOrderAndWrapsSingleValues) {
  auto out = FoldAll({json{{"v", 1}}, json{{"v", {2, 3}}}, json{{"v", "x"}}},
                     Fields({{"v", Reducer::kConcat}}));
  ASSERT_THAT(out, IsOk());
  EXPECT_EQ((*out)["v"], (json{1, 2, 3, "x"}));
}

TEST(FoldTest, MinAndMaxCompareNumbersAndStrings) {
  auto spec =
      Fields({{"lo", Reducer::kMin}, {"hi", Reducer::kMax}, {"s", Reducer::kMin}});
  auto out = FoldAll(
      {json{{"lo", 5}, {"hi", 5}, {"s", "b"}}, json{{"lo", 2}, {"hi", 9}, {"s", "a"}},
       json{{"lo", 7}, {"hi", 1}, {"s", "c"}}},
      spec);
  ASSERT_THAT(out, IsOk());
  EXPECT_EQ((*out)["lo"], 2);
  EXPECT_EQ((*out)["hi"], 9);
  EXPECT_EQ((*out)["s"], "a");
  EXPECT_THAT(FoldAll({json{{"lo", 1}}, json{{"lo", "a"}}}, spec), Not(IsOk()));
}

TEST(FoldTest, FirstKeepsTheLowestShardsValue) {
  auto out =
      FoldAll({json{{"v", "a"}}, json{{"v", "b"}}}, Fields({{"v", Reducer::kFirst}}));
  ASSERT_THAT(out, IsOk());
  EXPECT_EQ((*out)["v"], "a");
}

TEST(FoldTest, NestedFieldPathOverridesApply) {
  auto out = FoldAll({json{{"s", {{"names", {"a"}}, {"n", 1}}}},
                      json{{"s", {{"names", {"b"}}, {"n", 1}}}}},
                     Fields({{"s.names", Reducer::kFirst}}));
  ASSERT_THAT(out, IsOk());
  EXPECT_EQ((*out)["s"], (json{{"names", {"a"}}, {"n", 2}}));
}

TEST(FoldTest, DefaultReducerAppliesToEveryTopLevelField) {
  auto out = FoldAll({json{{"a", 3}, {"b", 1}}, json{{"a", 1}, {"b", 4}}},
                     Fields({{"b", Reducer::kMax}}, Reducer::kMin));
  ASSERT_THAT(out, IsOk());
  EXPECT_EQ((*out)["a"], 1);
  EXPECT_EQ((*out)["b"], 4);
}

TEST(FoldTest, DefaultMergeUnitesShardResultsAndRefusesADuplicateKey) {
  AggregateSpec merge;
  merge.default_reducer = Reducer::kMerge;
  auto out = FoldAll({json{{"1", {"a", "b"}}}, json{{"2", {"c"}}}}, merge);
  ASSERT_THAT(out, IsOk());
  EXPECT_EQ(*out, (json{{"1", {"a", "b"}}, {"2", {"c"}}}));
  auto dup = FoldAll({json{{"1", {"a"}}}, json{{"1", {"a"}}}}, merge);
  ASSERT_THAT(dup, StatusIs(absl::StatusCode::kInvalidArgument,
                            HasSubstr("\"1\" produced by two shards")));
}

TEST(FoldTest, RefusesANonObjectResult) {
  EXPECT_THAT(FoldAll({json::array({1})}), Not(IsOk()));
}

TEST(FoldTest, AFailedAddFailsEveryLaterAdd) {
  Folder f;
  ASSERT_THAT(f.Add(0, json{{"a", 1}}), IsOk());
  absl::Status first = f.Add(1, json{{"a", "x"}});
  ASSERT_THAT(first, Not(IsOk()));
  EXPECT_EQ(f.Add(2, json{{"a", 2}}), first);
}

TEST(FoldTest, ConcatOfManyShardsKeepsEveryElementInOrder) {
  Folder f(Fields({{"v", Reducer::kConcat}}));
  for (int i = 0; i < 20000; ++i) ASSERT_THAT(f.Add(i, json{{"v", {i}}}), IsOk());
  ASSERT_EQ(f.value()["v"].size(), 20000u);
  EXPECT_EQ(f.value()["v"][19999], 19999);
}

TEST(FoldTest, ParsesEveryReducerNameAndRefusesUnknownOnes) {
  for (const char* name : {"auto", "sum", "merge", "concat", "min", "max", "first"}) {
    auto r = ParseReducer(name);
    ASSERT_THAT(r, IsOk()) << name;
    EXPECT_EQ(ReducerName(*r), name);
  }
  EXPECT_EQ(*ParseReducer(""), Reducer::kAuto);
  auto bad = ParseReducer("avg");
  ASSERT_THAT(bad, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("avg")));
}

}  // namespace
}  // namespace tessera::scheduler
