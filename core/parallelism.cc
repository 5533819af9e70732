#include "core/parallelism.h"

#include <algorithm>
#include <cstdint>

namespace pp {

std::string_view CollectiveKindName(CollectiveKind kind) {
  switch (kind) {
    case CollectiveKind::kAllReduce: return "all_reduce";
    case CollectiveKind::kAllGather: return "all_gather";
    case CollectiveKind::kReduceScatter: return "reduce_scatter";
    case CollectiveKind::kAllToAll: return "all_to_all";
    case CollectiveKind::kSendRecv: return "send_recv";
  }
  return "?";
}

std::string_view CommGroupName(CommGroup group) {
  switch (group) {
    case CommGroup::kTensor: return "tp";
    case CommGroup::kContext: return "cp";
    case CommGroup::kExpert: return "ep";
    case CommGroup::kData: return "dp";
    case CommGroup::kPipeline: return "pp";
    case CommGroup::kExpertTensor: return "etp";
    case CommGroup::kExpertData: return "edp";
  }
  return "?";
}

bool ExpertGridFits(const ParallelLayout& l) {
  const int64_t grid = int64_t{l.ep} * l.expert_tp();
  return grid > 0 && (int64_t{l.tp} * l.cp * l.dp) % grid == 0;
}

double BusFactor(CollectiveKind kind, int n) {
  if (n <= 1) return 0;
  const double r = n;
  switch (kind) {
    case CollectiveKind::kAllReduce: return 2 * (r - 1) / r;
    case CollectiveKind::kAllGather:
    case CollectiveKind::kReduceScatter:
    case CollectiveKind::kAllToAll: return (r - 1) / r;
    case CollectiveKind::kSendRecv: return 1;
  }
  return 0;
}

double CollectiveMs(CollectiveKind kind, double bytes, int n, double bus_bytes_per_s,
                    double latency_ms) {
  if (n <= 1) return 0;
  double steps = 1;
  switch (kind) {
    case CollectiveKind::kAllReduce: steps = 2.0 * (n - 1); break;
    case CollectiveKind::kAllGather:
    case CollectiveKind::kReduceScatter:
    case CollectiveKind::kAllToAll: steps = n - 1; break;
    case CollectiveKind::kSendRecv: steps = 1; break;
  }
  return steps * latency_ms + 1000.0 * bytes * BusFactor(kind, n) / bus_bytes_per_s;
}

int GroupSize(const ParallelLayout& l, CommGroup group) {
  switch (group) {
    case CommGroup::kTensor: return l.tp;
    case CommGroup::kContext: return l.cp;
    case CommGroup::kExpert: return l.ep;
    case CommGroup::kData: return l.dp;
    case CommGroup::kPipeline: return l.pp;
    case CommGroup::kExpertTensor: return l.expert_tp();
    case CommGroup::kExpertData:
      return static_cast<int>(std::clamp<int64_t>(l.expert_dp(), 1, INT32_MAX));
  }
  return 1;
}

int64_t GroupSpan(const ParallelLayout& l, CommGroup group) {
  // Rank order tp, cp, dp, pp; the MoE layers' grid etp, ep, expert data over the same
  // ranks of a stage.
  const int64_t tp = l.tp, cp = l.cp, etp = l.expert_tp();
  switch (group) {
    case CommGroup::kTensor: return tp;
    case CommGroup::kContext: return tp * cp;
    case CommGroup::kExpert: return etp * l.ep;
    case CommGroup::kExpertTensor: return etp;
    case CommGroup::kExpertData: return tp * cp * l.dp;
    case CommGroup::kData: return tp * cp * l.dp;
    case CommGroup::kPipeline: return tp * cp * l.dp * l.pp;
  }
  return 1;
}

bool GroupInsideNode(const ParallelLayout& l, CommGroup group) {
  return GroupSpan(l, group) <= l.gpus_per_node;
}

int64_t GroupMembersPerNode(const ParallelLayout& l, CommGroup group) {
  const int64_t size = GroupSize(l, group);
  const int64_t stride = std::max<int64_t>(1, GroupSpan(l, group) / std::max<int64_t>(1, size));
  return std::clamp<int64_t>(l.gpus_per_node / stride, 1, std::max<int64_t>(1, size));
}

GroupLink CollectiveLink(const ParallelLayout& layout, CommGroup group, CollectiveKind kind,
                         double node_bus_bytes_per_s, double node_latency_ms,
                         double network_bus_bytes_per_s, double network_latency_ms) {
  if (GroupInsideNode(layout, group)) return {node_bus_bytes_per_s, node_latency_ms};
  const bool ring = kind == CollectiveKind::kAllReduce || kind == CollectiveKind::kAllGather ||
                    kind == CollectiveKind::kReduceScatter;
  const double k = ring ? static_cast<double>(GroupMembersPerNode(layout, group)) : 1.0;
  return {std::min(node_bus_bytes_per_s, k * network_bus_bytes_per_s), network_latency_ms};
}

double AllToAllAcrossNodesMs(double bytes, int n, int64_t members_per_node,
                             double node_bus_bytes_per_s, double node_latency_ms,
                             double network_bus_bytes_per_s, double network_latency_ms,
                             double network_share) {
  if (n <= 1) return 0;
  const double m = static_cast<double>(std::clamp<int64_t>(members_per_node, 1, n));
  const double r = n;
  const bool forwarded = network_share < 1;
  const double node = (m - 1) * node_latency_ms +
                      1000.0 * bytes * ((forwarded ? r : m) - 1) / r / node_bus_bytes_per_s;
  const double network = (r - m) * network_latency_ms +
                         1000.0 * bytes * (r - m) / r * network_share / network_bus_bytes_per_s;
  return std::max(node, network);
}

double ExpertExchangeNetworkShare(double experts, double top_k, int n, int64_t members_per_node) {
  const double m = static_cast<double>(std::clamp<int64_t>(members_per_node, 1, n));
  const double r = n;
  if (n <= 1 || m >= r || experts <= 0 || top_k <= 0 || top_k > experts) return 1;
  // P(a given other node gets none of the k experts): choosing k of E without one node's
  // E m / n.
  const double per_node = experts * m / r;
  double none = 1;
  for (int i = 0; i < static_cast<int>(top_k); ++i) {
    none *= std::max(0.0, experts - per_node - i) / (experts - i);
  }
  const double nodes = (r / m - 1) * (1 - none);
  const double copies = top_k * (r - m) / r;
  return std::min(1.0, nodes / copies);
}

}  // namespace pp
