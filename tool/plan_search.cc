#include "tool/plan_search.h"

#include <iomanip>
#include <iostream>
#include <sstream>

#include "core/units.h"
#include "partitioner/search.h"
#include "tool/command.h"
#include "tool/report.h"

namespace pp {
namespace {

std::string Row(int rank, const SearchCandidate& c) {
  std::ostringstream out;
  out << (rank > 0 ? std::to_string(rank) : std::string("-")) << "\tp=" << c.stages
      << " r=" << c.replicas << " b=" << c.micro_batch_size << " m=" << c.micro_batches << " "
      << c.schedule << (c.recompute ? " recompute" : "") << "\t" << FormatMs(c.batch_ms)
      << " per batch (step " << FormatMs(c.step_ms) << " + all-reduce "
      << FormatMs(c.allreduce_ms)
      << (c.exact ? "" : "; step unproven, >= " + FormatMs(c.lower_bound_ms)) << ")\tbubble "
      << std::fixed << std::setprecision(1) << 100 * c.bubble_ratio << "%\tpeak "
      << FormatBytes(c.peak_memory_bytes);
  if (rank != 1) {
    out << "\t+" << FormatMs(c.behind_ms) << ": " << LossReasonName(c.reason);
  }
  return out.str();
}

std::string SearchText(const SearchResult& r, const std::string& objective) {
  std::ostringstream out;
  int unproven = 0;
  for (const SearchCandidate& c : r.ranked) unproven += !c.exact;
  out << "search: " << r.evaluated << " candidates planned (dp, objective " << objective
      << "), ranked by time per global batch = simulated step + gradient all-reduce\n";
  if (unproven > 0) {
    out << "note: " << unproven << " of the ranked candidates' step searches ran out of their "
        << "share of --step-budget; their splits are the best found, with the proven bound\n";
  }
  out << "rank\tcandidate\ttime\tbubble\tmemory\tbehind the first: why\n";
  for (size_t i = 0; i < r.ranked.size(); ++i) out << Row(static_cast<int>(i) + 1, r.ranked[i]) << "\n";
  if (!r.over_memory.empty()) {
    out << "faster but over the memory limit:\n";
    for (const SearchCandidate& c : r.over_memory) out << Row(0, c) << "\n";
  }
  return out.str();
}

std::string LayoutRow(int rank, const LayoutCandidate& c, double best_ms) {
  const ParallelLayout& l = c.layout;
  std::ostringstream out;
  out << rank << "\ttp=" << l.tp << " pp=" << l.pp << " cp=" << l.cp << " ep=" << l.ep
      << (l.etp != 0 ? " etp=" + std::to_string(l.etp) : std::string()) << " dp=" << l.dp
      << " zero=" << l.zero << " b=" << c.micro_batch_size << " m=" << c.micro_batches << " "
      << c.schedule << (l.vp > 1 ? " v=" + std::to_string(l.vp) : std::string())
      << (c.recompute ? " recompute" : "")
      << (!c.recompute || c.recompute_unit == RecomputeUnit::kStage ? std::string()
          : c.recompute_unit == RecomputeUnit::kSelective
              ? std::string(" selective")
              : " by " + std::string(RecomputeUnitName(c.recompute_unit)))
      << (ExpertOverlapApplies(l) ? " expert-overlap" : "") << "\t" << FormatMs(c.batch_ms)
      << " per batch (step " << FormatMs(c.step_ms) << " + data-parallel "
      << FormatMs(c.data_parallel_ms) << ")\t" << std::fixed << std::setprecision(1)
      << c.model_tflops_per_gpu << " TFLOP/s/GPU\tpeak " << FormatBytes(c.peak_memory_bytes);
  if (rank != 1 && best_ms > 0) {
    out << "\t+" << std::setprecision(1) << 100 * (c.batch_ms / best_ms - 1) << "%";
  }
  return out.str();
}

}  // namespace

int RunLayoutSearchReport(const PlanRequest& request, const DeviceSpec& device,
                          const LeverSpace& space, const std::string& format,
                          const std::string& output) {
  Result<LayoutSearchResult> result = SearchLayouts(request, device, space);
  if (!result.ok()) return Fail(result.status());
  std::ostringstream report;
  const LayoutSearchResult& r = *result;
  report << "search over the layout: " << r.enumerated << " candidates, " << r.pruned_memory
         << " over memory, " << r.pruned_dominated << " dominated, " << r.estimated
         << " estimated, " << r.planned << " planned exactly (" << r.profiles
         << " analytic profiles); ranked by time per global batch\n";
  report << "rank\tcandidate\ttime\tthroughput\tmemory\tbehind the first\n";
  const double best = r.ranked.empty() ? 0 : r.ranked.front().batch_ms;
  for (size_t i = 0; i < r.ranked.size(); ++i) {
    report << LayoutRow(static_cast<int>(i) + 1, r.ranked[i], best) << "\n";
  }
  const bool stdout_is_document = output == "-" || (output.empty() && format == "json");
  (stdout_is_document ? std::cerr : std::cout) << report.str() << "\nbest plan:\n";
  return Deliver(output, format, DumpJson(PlanToJson(r.best)), [&](const std::string& as) {
    return as == "md" ? PlanMarkdown(r.best, nullptr) : PlanText(r.best, nullptr, "search");
  });
}

int RunPlanSearch(const PlanRequest& request, const std::string& format,
                  const std::string& output) {
  Result<SearchResult> result = SearchPlans(request);
  if (!result.ok()) return Fail(result.status());
  const std::string report = SearchText(*result, request.objective);
  const bool stdout_is_document = output == "-" || (output.empty() && format == "json");
  (stdout_is_document ? std::cerr : std::cout) << report << "\nbest plan:\n";
  return Deliver(output, format, DumpJson(PlanToJson(result->best)),
                 [&](const std::string& as) {
                   return as == "md" ? PlanMarkdown(result->best, nullptr)
                                         : PlanText(result->best, nullptr, "search");
                 });
}

}  // namespace pp
