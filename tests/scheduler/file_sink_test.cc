#include "scheduler/sink/file_sink.h"

#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"
#include "shared/sha256.h"
#include "tests/util/small_disk.h"
#include "tests/util/status_matchers.h"
#include "tests/util/temp_dir.h"

namespace tessera::scheduler {
namespace {

using ::tessera::testing::IsOk;
using ::tessera::testing::StatusIs;
using ::testing::Not;

// Files in `dir`: {spare files, all others}.
std::pair<int, int> CountFiles(const std::string& dir) {
  int spares = 0, others = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    (e.path().filename().string().rfind(".spare-", 0) == 0 ? spares : others)++;
  }
  return {spares, others};
}

std::string Contents(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
}

TEST(FileSinkTest, WritesTheWholeFileAndReportsItsSha256) {
  const testing::TempDir tmp("tessera-sink");
  const std::string dir = tmp.path() + "/results";
  auto sink = FileSink::Create(dir);
  ASSERT_THAT(sink, IsOk());
  auto r = (*sink)->Write("abc123", 1, "{\"primes\": 25}\n");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->location, std::filesystem::absolute(dir).string() + "/abc123.json");
  EXPECT_EQ(r->sha256, Sha256Hex("{\"primes\": 25}\n"));
  std::ifstream in(r->location);
  std::string content((std::istreambuf_iterator<char>(in)),
                      std::istreambuf_iterator<char>());
  EXPECT_EQ(content, "{\"primes\": 25}\n");
  EXPECT_EQ((*sink)->writes(), 1);
  auto read = (*sink)->Read(r->location);
  ASSERT_THAT(read, IsOk());
  EXPECT_EQ(*read, content);
  // No temp files are left behind (spare files are kept ready, empty).
  EXPECT_EQ(CountFiles(dir).second, 1);
}

TEST(FileSinkTest, FillsSpareFilesMadeAheadAndFindsThemAgainAfterARestart) {
  const testing::TempDir tmp("tessera-sink");
  const std::string dir = tmp.path() + "/results";
  auto sink = FileSink::Create(dir);
  ASSERT_THAT(sink, IsOk());
  const int ready = CountFiles(dir).first;
  EXPECT_GT(ready, 0);
  // A spare a crash left half written: filling it truncates it first.
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    std::ofstream(e.path()) << "left over from a crash, much longer than the result";
  }
  auto r = (*sink)->Write("abc123", 1, "{\"items\": 1}\n");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(Contents(r->location), "{\"items\": 1}\n");
  EXPECT_EQ(CountFiles(dir), std::make_pair(ready - 1, 1));  // one spare became it
  (*sink)->Prepare();
  EXPECT_EQ(CountFiles(dir), std::make_pair(ready, 1));
  // A restarted scheduler uses what is there rather than making more.
  sink->reset();
  auto again = FileSink::Create(dir);
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(CountFiles(dir), std::make_pair(ready, 1));
  // With every spare gone (removed by hand), a write makes its own temp file.
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().filename().string().rfind(".spare-", 0) == 0) {
      std::filesystem::remove(e.path());
    }
  }
  auto v2 = (*again)->Write("abc123", 2, "{\"items\": 2}\n");
  ASSERT_THAT(v2, IsOk());
  EXPECT_EQ(Contents(v2->location), "{\"items\": 2}\n");
  EXPECT_EQ(CountFiles(dir).second, 2);
}

TEST(FileSinkTest, AStagedResultIsOutOfSightUntilPublished) {
  const testing::TempDir tmp("tessera-sink");
  const std::string dir = tmp.path() + "/results";
  auto sink = FileSink::Create(dir);
  ASSERT_THAT(sink, IsOk());
  auto staged = (*sink)->Stage("abc123", 2, "{\"items\": 3}\n");
  ASSERT_THAT(staged, IsOk());
  const std::string final_path =
      std::filesystem::absolute(dir).string() + "/abc123.v2.json";
  EXPECT_EQ(staged->result.location, final_path);
  EXPECT_FALSE(std::filesystem::exists(final_path));
  EXPECT_TRUE(std::filesystem::exists(staged->staged_at));
  EXPECT_EQ((*sink)->writes(), 0);
  auto published = (*sink)->Publish(*staged);
  ASSERT_THAT(published, IsOk());
  EXPECT_EQ(published->location, final_path);
  EXPECT_FALSE(std::filesystem::exists(staged->staged_at));
  EXPECT_EQ(*(*sink)->Read(final_path), "{\"items\": 3}\n");
  EXPECT_EQ((*sink)->writes(), 1);
  // The same bytes again (a restart): nothing to stage, nothing written.
  auto again = (*sink)->Stage("abc123", 2, "{\"items\": 3}\n");
  ASSERT_THAT(again, IsOk());
  EXPECT_TRUE(again->staged_at.empty());
  EXPECT_THAT((*sink)->Publish(*again), IsOk());
  EXPECT_EQ((*sink)->writes(), 1);
  // A staged path that is not the sink's own is refused.
  StagedResult foreign{{final_path, ""}, "/etc/passwd"};
  EXPECT_THAT((*sink)->Publish(foreign), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(FileSinkTest, SyncFsyncsTheDirectoryOnlyWhenSomethingWasPublished) {
  const testing::TempDir tmp("tessera-sink");
  const std::string dir = tmp.path() + "/results";
  auto sink = FileSink::Create(dir);
  ASSERT_THAT(sink, IsOk());
  auto staged = (*sink)->Stage("abc123", 1, "{\"items\": 1}\n");
  ASSERT_THAT(staged, IsOk());
  ASSERT_THAT((*sink)->Publish(*staged), IsOk());
  EXPECT_THAT((*sink)->Sync(), IsOk());
  // The directory moves away: a sync with nothing new published has nothing
  // to do and succeeds; once a result was published it must fsync the
  // directory, cannot open it, and says which.
  const std::string moved = dir + ".moved";
  std::filesystem::rename(dir, moved);
  EXPECT_THAT((*sink)->Sync(), IsOk());
  std::filesystem::rename(moved, dir);
  auto again = (*sink)->Stage("abc123", 2, "{\"items\": 2}\n");
  ASSERT_THAT(again, IsOk());
  ASSERT_THAT((*sink)->Publish(*again), IsOk());
  std::filesystem::rename(dir, moved);
  const absl::Status s = (*sink)->Sync();
  EXPECT_THAT(s, Not(IsOk()));
  EXPECT_NE(s.message().find(dir), std::string::npos) << s;
  std::filesystem::rename(moved, dir);
  // Still owed: the next sync that can reach the directory does it.
  EXPECT_THAT((*sink)->Sync(), IsOk());
  EXPECT_EQ(Contents(dir + "/abc123.v2.json"), "{\"items\": 2}\n");
}

TEST(FileSinkTest, AMissingResultFileIsDataLoss) {
  const testing::TempDir tmp("tessera-sink");
  const std::string dir = tmp.path();
  auto sink = FileSink::Create(dir);
  ASSERT_THAT(sink, IsOk());
  auto r = (*sink)->Write("gone", 1, "{}");
  ASSERT_THAT(r, IsOk());
  std::filesystem::remove(r->location);
  EXPECT_THAT((*sink)->Read(r->location), StatusIs(absl::StatusCode::kDataLoss));
}

TEST(FileSinkTest, Sha256MatchesAKnownDigest) {
  EXPECT_EQ(Sha256Hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(FileSinkTest, RefusesJobIdsThatCouldEscapeTheDirectory) {
  const testing::TempDir tmp("tessera-sink");
  auto sink = FileSink::Create(tmp.path());
  ASSERT_THAT(sink, IsOk());
  EXPECT_THAT((*sink)->Write("../x", 1, "{}"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT((*sink)->Read("/etc/passwd"), StatusIs(absl::StatusCode::kInternal));
}

TEST(FileSinkTest, ReportsAWriteFailureWithThePath) {
  const testing::TempDir tmp("tessera-sink");
  const std::string dir = tmp.path() + "/results";
  auto sink = FileSink::Create(dir);
  ASSERT_THAT(sink, IsOk());
  // The directory turns into a file: every write must fail, even as root.
  std::filesystem::remove_all(dir);
  std::ofstream(dir) << "not a directory";
  auto r = (*sink)->Write("job", 1, "{}");
  ASSERT_THAT(r, Not(IsOk()));
  EXPECT_NE(r.status().message().find(dir), std::string::npos) << r.status();
  EXPECT_FALSE(SinkErrorMayPass(r.status())) << r.status();  // not retried: permanent
  EXPECT_EQ((*sink)->writes(), 0);
}

TEST(FileSinkTest, AFullDiskIsResourceExhaustedLeavesNothingAndTheSameBytesGoInLater) {
  const testing::TempDir tmp("tessera-sink");
  const std::string dir = tmp.path();
  std::string why;
  auto disk = testing::SmallDisk::Mount(dir, 1 << 20, &why);
  if (disk == nullptr) GTEST_SKIP() << why;
  auto sink = FileSink::Create(dir + "/results");
  ASSERT_THAT(sink, IsOk());
  const std::string bytes = std::string(10000, '4') + "\n";
  ASSERT_GT(disk->Fill(), 0);
  auto staged = (*sink)->Stage("job", 1, bytes);
  ASSERT_THAT(staged, StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_TRUE(SinkErrorMayPass(staged.status()));
  EXPECT_EQ(CountFiles(dir + "/results").second, 0);  // nothing a reader could see
  disk->Free();
  auto written = (*sink)->Write("job", 1, bytes);
  ASSERT_THAT(written, IsOk());
  EXPECT_EQ(Contents(written->location), bytes);
  EXPECT_EQ((*sink)->writes(), 1);
}

TEST(FileSinkTest, PublishesQuicklyOnlyOnALocalFileSystem) {
  // A rename on a network file system may hang: the runtime must not run it
  // on the store writer's thread (ResultSink::PublishesQuickly).
  EXPECT_TRUE(FileSink::IsLocalFileSystem(EXT4_SUPER_MAGIC));
  EXPECT_TRUE(FileSink::IsLocalFileSystem(XFS_SUPER_MAGIC));
  EXPECT_TRUE(FileSink::IsLocalFileSystem(TMPFS_MAGIC));
  EXPECT_TRUE(FileSink::IsLocalFileSystem(OVERLAYFS_SUPER_MAGIC));
  EXPECT_FALSE(FileSink::IsLocalFileSystem(NFS_SUPER_MAGIC));
  EXPECT_FALSE(FileSink::IsLocalFileSystem(SMB_SUPER_MAGIC));
  EXPECT_FALSE(FileSink::IsLocalFileSystem(0xFE534D42));  // SMB2 / CIFS
  EXPECT_FALSE(FileSink::IsLocalFileSystem(0x65735546));  // FUSE (sshfs, s3fs, ...)
  const testing::TempDir tmp("tessera-sink");
  auto sink = FileSink::Create(tmp.path() + "/results");
  ASSERT_THAT(sink, IsOk());
  struct statfs fs {};
  ASSERT_EQ(::statfs(tmp.path().c_str(), &fs), 0);
  EXPECT_EQ((*sink)->PublishesQuickly(), FileSink::IsLocalFileSystem(fs.f_type))
      << "f_type 0x" << std::hex << fs.f_type;
}

}  // namespace
}  // namespace tessera::scheduler
