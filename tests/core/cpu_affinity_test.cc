// CPU lists as Linux writes them, and binding the calling thread.
#include "runtime/core/cpu_affinity.h"

#include <gtest/gtest.h>

#include <thread>

namespace parnet {
namespace {

TEST(CpuAffinityTest, ParsesCpuListsAsLinuxWritesThem) {
  auto cores = ParseCpuList("8,0-3,2");
  ASSERT_TRUE(cores.ok()) << cores.status().ToString();
  EXPECT_EQ(*cores, (std::vector<int>{0, 1, 2, 3, 8}));
  EXPECT_EQ(CpuListToString(*cores), "0-3,8");
  EXPECT_EQ(CpuListToString({5}), "5");
  EXPECT_NE(ParseCpuList("3-1").status().message().find("runs backwards"), std::string::npos);
  for (const char* bad : {"", "1,", "a", "-2", "1-", "99999"}) {
    EXPECT_EQ(ParseCpuList(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST(CpuAffinityTest, BindsOnlyTheCallingThread) {
  const std::vector<int> allowed = AllowedCores();
  ASSERT_FALSE(allowed.empty());
  std::vector<int> inside;
  std::thread([&] {
    ASSERT_TRUE(BindThisThread({allowed.back()}).ok());
    inside = AllowedCores();
  }).join();
  EXPECT_EQ(inside, std::vector<int>{allowed.back()});
  EXPECT_EQ(AllowedCores(), allowed) << "the caller's own mask must not change";
  EXPECT_EQ(BindThisThread({-1}).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace parnet
