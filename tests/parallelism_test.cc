// Collective times against nccl-tests' definitions (algorithm bandwidth = size / time, bus
// bandwidth = algorithm bandwidth x factor) and group placement against the rank order.
#include "core/parallelism.h"

#include <gtest/gtest.h>

namespace pp {
namespace {

TEST(Collectives, TimeIsSizeTimesBusFactorOverBusBandwidth) {
  // 8 ranks at 100 GB/s bus bandwidth: a 1 GB all-reduce moves 2 x 7/8 GB per rank.
  EXPECT_DOUBLE_EQ(CollectiveMs(CollectiveKind::kAllReduce, 1e9, 8, 1e11, 0), 1000.0 * 1.75 / 100);
  EXPECT_DOUBLE_EQ(CollectiveMs(CollectiveKind::kAllGather, 1e9, 8, 1e11, 0), 1000.0 * 0.875 / 100);
  EXPECT_DOUBLE_EQ(CollectiveMs(CollectiveKind::kReduceScatter, 1e9, 4, 1e11, 0), 7.5);
  EXPECT_DOUBLE_EQ(CollectiveMs(CollectiveKind::kSendRecv, 1e9, 2, 1e11, 0), 10.0);
  // Latency per ring step: 2(n-1) for an all-reduce, n-1 for the others.
  EXPECT_DOUBLE_EQ(CollectiveMs(CollectiveKind::kAllReduce, 0, 4, 1e11, 0.01), 0.06);
  EXPECT_DOUBLE_EQ(CollectiveMs(CollectiveKind::kAllToAll, 0, 4, 1e11, 0.01), 0.03);
  // One rank moves nothing.
  EXPECT_EQ(CollectiveMs(CollectiveKind::kAllReduce, 1e9, 1, 1e11, 0.01), 0);
}

TEST(Collectives, AllReduceIsReduceScatterThenAllGather) {
  for (int n : {2, 3, 8, 64}) {
    const double rs = CollectiveMs(CollectiveKind::kReduceScatter, 3e8, n, 2e11, 0);
    const double ag = CollectiveMs(CollectiveKind::kAllGather, 3e8, n, 2e11, 0);
    EXPECT_DOUBLE_EQ(CollectiveMs(CollectiveKind::kAllReduce, 3e8, n, 2e11, 0), rs + ag) << n;
  }
}

TEST(Groups, TensorInnermostPipelineOutermost) {
  ParallelLayout l;
  l.tp = 8;
  l.pp = 4;
  l.dp = 2;
  l.gpus_per_node = 8;
  EXPECT_EQ(l.gpus(), 64);
  EXPECT_TRUE(GroupInsideNode(l, CommGroup::kTensor));
  EXPECT_FALSE(GroupInsideNode(l, CommGroup::kData));
  EXPECT_FALSE(GroupInsideNode(l, CommGroup::kPipeline));
  l.tp = 2;
  l.dp = 4;
  EXPECT_TRUE(GroupInsideNode(l, CommGroup::kData));  // 2 x 4 ranks in one node
  EXPECT_EQ(GroupSize(l, CommGroup::kData), 4);
}

}  // namespace
}  // namespace pp
