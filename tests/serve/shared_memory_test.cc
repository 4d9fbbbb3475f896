// Triton's system shared-memory extension without the network: registration checks, slices
// checked against their region, a region kept mapped by the slices that use it, and an object
// shrunk under its mapping read as zeros and reported instead of a SIGBUS.
#include "runtime/serve/shared_memory.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <string>
#include <vector>

namespace parnet::serve {
namespace {

// A POSIX shared memory object of `bytes` bytes filled with 1, 2, 3, ...; unlinked at the end.
class ShmObject {
 public:
  explicit ShmObject(size_t bytes)
      : key_("/parnet-shm-test-" + std::to_string(getpid()) + "-" + std::to_string(next_++)) {
    fd_ = shm_open(key_.c_str(), O_CREAT | O_RDWR | O_EXCL, 0600);
    EXPECT_GE(fd_, 0) << std::strerror(errno);
    EXPECT_EQ(ftruncate(fd_, static_cast<off_t>(bytes)), 0);
    std::vector<unsigned char> data(bytes);
    for (size_t i = 0; i < bytes; ++i) data[i] = static_cast<unsigned char>(i % 251 + 1);
    EXPECT_EQ(pwrite(fd_, data.data(), bytes, 0), static_cast<ssize_t>(bytes));
  }
  ~ShmObject() {
    close(fd_);
    shm_unlink(key_.c_str());
  }
  const std::string& key() const { return key_; }
  void Shrink(size_t bytes) { ASSERT_EQ(ftruncate(fd_, static_cast<off_t>(bytes)), 0); }

 private:
  static inline int next_ = 0;
  std::string key_;
  int fd_ = -1;
};

TEST(SharedMemoryTest, RegistrationIsRefusedUnlessAllowed) {
  ShmObject object(4096);
  SharedMemoryRegions off(false);
  Status s = off.Register("r", object.key(), 0, 4096);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("--allow-client-shm"), std::string::npos) << s.message();
  EXPECT_TRUE(off.List("").value().empty());
}

TEST(SharedMemoryTest, RegisterChecksTheObjectAndTheName) {
  ShmObject object(8192);
  SharedMemoryRegions regions(true);
  EXPECT_EQ(regions.Register("r", "/parnet-no-such-object", 0, 16).code(),
            StatusCode::kInvalidArgument);
  Status too_big = regions.Register("r", object.key(), 4096, 4097);
  EXPECT_EQ(too_big.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(too_big.message().find("exceeds the 8192 bytes"), std::string::npos)
      << too_big.message();
  ASSERT_TRUE(regions.Register("r", object.key(), 4096, 4096).ok());
  EXPECT_EQ(regions.Register("r", object.key(), 0, 16).code(), StatusCode::kAlreadyExists);
  const auto listed = regions.List("r").value();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].key, object.key());
  EXPECT_EQ(listed[0].offset, 4096u);
  EXPECT_EQ(regions.List("other").status().code(), StatusCode::kNotFound);
  regions.Unregister("other");  // unknown: no error, as in Triton
  regions.Unregister("");
  EXPECT_TRUE(regions.List("").value().empty());
}

TEST(SharedMemoryTest, SlicesReadTheRegionAtItsOffsetWithinBounds) {
  ShmObject object(3 * 4096);
  SharedMemoryRegions regions(true);
  // An offset that is not a page multiple: the mapping starts at the page below it.
  ASSERT_TRUE(regions.Register("r", object.key(), 5000, 6000).ok());
  StatusOr<SharedMemorySlice> slice = regions.Slice({"r", 10, 100}, "input 'x'");
  ASSERT_TRUE(slice.ok()) << slice.status().message();
  EXPECT_EQ(slice->bytes, 100u);
  EXPECT_EQ(static_cast<unsigned char>(slice->data[0]), (5000 + 10) % 251 + 1);
  StatusOr<SharedMemorySlice> past = regions.Slice({"r", 5990, 11}, "input 'x'");
  EXPECT_EQ(past.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(past.status().message().find("input 'x'"), std::string::npos);
  EXPECT_EQ(regions.Slice({"nope", 0, 1}, "output 'y'").status().code(),
            StatusCode::kInvalidArgument);
}

TEST(SharedMemoryTest, ASliceKeepsItsRegionMappedAfterUnregister) {
  ShmObject object(4096);
  SharedMemoryRegions regions(true);
  ASSERT_TRUE(regions.Register("r", object.key(), 0, 4096).ok());
  SharedMemorySlice slice = regions.Slice({"r", 0, 4096}, "input 'x'").value();
  regions.Unregister("r");
  EXPECT_EQ(static_cast<unsigned char>(slice.data[4095]), 4095 % 251 + 1);
  EXPECT_TRUE(slice.Ok("input 'x'").ok());
}

const size_t kPage = static_cast<size_t>(sysconf(_SC_PAGESIZE));

TEST(SharedMemoryTest, AnObjectShrunkUnderItsRegionReadsZerosAndIsReported) {
  ShmObject object(4 * kPage);
  SharedMemoryRegions regions(true);
  ASSERT_TRUE(regions.Register("r", object.key(), 0, 4 * kPage).ok());
  SharedMemorySlice slice = regions.Slice({"r", 0, 4 * kPage}, "input 'x'").value();
  EXPECT_EQ(static_cast<unsigned char>(slice.data[3 * kPage]), (3 * kPage) % 251 + 1);
  object.Shrink(kPage);
  // Past the new end of the object: without the guard this read is a SIGBUS.
  volatile std::byte* past = slice.data + 2 * kPage + 7;
  EXPECT_EQ(static_cast<int>(*past), 0);
  Status s = slice.Ok("input 'x'");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("region 'r' was shrunk by its owner"), std::string::npos)
      << s.message();
  // The pages still inside the object are untouched; writes past the end go nowhere.
  EXPECT_EQ(static_cast<unsigned char>(slice.data[100]), 100 % 251 + 1);
  slice.data[3 * kPage] = std::byte{9};
}

TEST(SharedMemoryTest, AShrinkInsideTheLastPageIsReportedThoughNothingFaults) {
  ShmObject object(2 * kPage);
  SharedMemoryRegions regions(true);
  ASSERT_TRUE(regions.Register("r", object.key(), 0, 2 * kPage).ok());
  SharedMemorySlice slice = regions.Slice({"r", 0, 2 * kPage}, "output 'y'").value();
  EXPECT_TRUE(slice.Ok("output 'y'").ok());
  object.Shrink(kPage + 100);  // the kernel keeps the second page mapped, its tail zeroed
  EXPECT_EQ(static_cast<int>(slice.data[kPage + 200]), 0);
  EXPECT_EQ(slice.Ok("output 'y'").code(), StatusCode::kInvalidArgument);
}

TEST(SharedMemoryTest, ASigbusOutsideEveryRegionStillKillsTheProcess) {
  ShmObject object(kPage);
  SharedMemoryRegions regions(true);
  ASSERT_TRUE(regions.Register("r", object.key(), 0, kPage).ok());  // installs the handler
  EXPECT_DEATH(raise(SIGBUS), "");
}

}  // namespace
}  // namespace parnet::serve
