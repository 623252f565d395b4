// A fresh, empty store of every kind for value-parameterized store suites: memory,
// SQLite in a temp dir, PostgreSQL on one real server per test program (started by
// the first test that needs it, stopped by PID when the program ends) with a database
// per test. TESSERA_SKIP_POSTGRES=1 skips the PostgreSQL kind.
//
//   class MyStoreTest : public StoreTest {};
//   TEST_P(MyStoreTest, ...) { store_->Commit(...); }
//   INSTANTIATE_TEST_SUITE_P(EveryStore, MyStoreTest, EveryStoreKind(), StoreKindName);
#ifndef TESSERA_TESTS_SCHEDULER_STORE_FIXTURE_H_
#define TESSERA_TESTS_SCHEDULER_STORE_FIXTURE_H_

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "scheduler/store/memory_store.h"
#include "scheduler/store/postgres_store.h"
#include "scheduler/store/sqlite_store.h"
#include "tests/util/postgres_server.h"
#include "tests/util/process.h"
#include "tests/util/status_matchers.h"
#include "tests/util/temp_dir.h"

namespace tessera::scheduler {

struct StoreKind {
  std::string name;
  // Opens a new store; `dir` is an empty temp dir the kind may keep files in.
  std::function<std::unique_ptr<Store>(const std::string& dir)> open;
};
inline void PrintTo(const StoreKind& kind, std::ostream* os) { *os << kind.name; }

// The one PostgreSQL server of the test program.
class SharedPostgres : public ::testing::Environment {
 public:
  static SharedPostgres* Get() {
    static SharedPostgres* env = static_cast<SharedPostgres*>(
        ::testing::AddGlobalTestEnvironment(new SharedPostgres()));
    return env;
  }
  void TearDown() override { server_.reset(); }
  // A new, empty database's name, or "" (and a test failure) when the server
  // cannot start or make one.
  std::string NewDatabase() {
    if (server_ == nullptr) {
      server_ = std::make_unique<::tessera::testing::PostgresServer>();
      if (absl::Status s = server_->Start(); !s.ok()) {
        ADD_FAILURE() << s;
        server_.reset();
        return "";
      }
    }
    const std::string db = absl::StrCat("store_", ++databases_);
    if (absl::Status s = server_->CreateDatabase(db); !s.ok()) {
      ADD_FAILURE() << s;
      return "";
    }
    return db;
  }
  // A store on database `db` (again, as a restarted scheduler would open it).
  absl::StatusOr<std::unique_ptr<PostgresStore>> OpenDatabase(const std::string& db) {
    if (server_ == nullptr) return absl::FailedPreconditionError("no PostgreSQL server");
    PostgresOptions options;
    options.url = server_->Url(db);
    options.password = server_->password();
    return PostgresStore::Open(options);
  }
  // A store on a new database, or null (and a test failure) when there is none.
  std::unique_ptr<Store> Open() {
    const std::string db = NewDatabase();
    if (db.empty()) return nullptr;
    auto store = OpenDatabase(db);
    EXPECT_THAT(store, ::tessera::testing::IsOk());
    return store.ok() ? *std::move(store) : nullptr;
  }

 private:
  std::unique_ptr<::tessera::testing::PostgresServer> server_;
  int databases_ = 0;
};

inline auto EveryStoreKind() {
  return ::testing::Values(
      StoreKind{"memory",
                [](const std::string&) -> std::unique_ptr<Store> {
                  return std::make_unique<MemoryStore>();
                }},
      StoreKind{"sqlite",
                [](const std::string& dir) -> std::unique_ptr<Store> {
                  auto s = SqliteStore::Open(dir);
                  EXPECT_THAT(s, ::tessera::testing::IsOk());
                  return s.ok() ? *std::move(s) : nullptr;
                }},
      StoreKind{"postgres", [](const std::string&) -> std::unique_ptr<Store> {
                  return SharedPostgres::Get()->Open();
                }});
}

inline std::string StoreKindName(const ::testing::TestParamInfo<StoreKind>& info) {
  return info.param.name;
}

// A job record with the fields every store needs.
inline JobRecord StoreRecord(const std::string& id, int64_t seq, JobState state) {
  JobRecord r;
  r.id = id;
  r.seq = seq;
  r.state = state;
  r.spec.task = "noop";
  r.spec.range = {0, 10, 0, 2};
  return r;
}

class StoreTest : public ::testing::TestWithParam<StoreKind> {
 protected:
  void SetUp() override {
    if (GetParam().name == "postgres" && ::tessera::testing::PostgresSkipped()) {
      GTEST_SKIP() << "TESSERA_SKIP_POSTGRES=1";
    }
    tmp_.emplace("tessera-store");
    dir_ = tmp_->path();
    store_ = GetParam().open(dir_);
    ASSERT_NE(store_, nullptr);
  }
  void TearDown() override {
    store_.reset();  // closed before its dir is removed
    tmp_.reset();
  }

  std::optional<::tessera::testing::TempDir> tmp_;
  std::string dir_;
  std::unique_ptr<Store> store_;
};

}  // namespace tessera::scheduler

#endif  // TESSERA_TESTS_SCHEDULER_STORE_FIXTURE_H_
