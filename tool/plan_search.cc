#include "tool/plan_search.h"

#include <iomanip>
#include <iostream>
#include <sstream>

#include "core/units.h"
#include "partitioner/search.h"
#include "tool/command.h"
#include "tool/inputs.h"
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

}  // namespace

int RunPlanSearch(const PlanSearchInputs& in) {
  SearchRequest request;
  request.gpus_total = in.gpus_total;
  request.global_batch = in.global_batch;
  request.optimizer = in.optimizer;
  request.objective = in.objective;
  request.step_budget_s = in.step_budget_s;
  if (!in.schedules.empty()) request.schedules = in.schedules;
  request.virtual_stages = in.virtual_stages;
  std::vector<ProfileOptions> sources;
  if (!in.profile_paths.empty()) {
    for (const std::string& path : in.profile_paths) {
      ProfileOptions po;
      po.profile_path = path;
      sources.push_back(po);
    }
  } else {
    for (int64_t b : MicroBatchSizeCandidates(in.gpus_total, in.global_batch)) {
      ProfileOptions po;
      po.device = in.device;
      po.device_given = in.device_given;
      po.micro_batch_size = b;
      po.dtype = in.dtype;
      sources.push_back(po);
    }
  }
  if (sources.empty()) {
    return Fail("--global-batch " + std::to_string(in.global_batch) +
                " cannot be cut into whole micro-batches on --gpus-total " +
                std::to_string(in.gpus_total) + " for any micro-batch size up to 64");
  }
  for (const ProfileOptions& po : sources) {
    Result<ProfileSource> source = LoadProfileSource(in.input, po);
    if (!source.ok()) return Fail(source.status());
    if (!source->model) return Fail(in.input + ": --stages auto needs a model file");
    if (in.layout_for) {  // stage 0's type's profile, and the others', at this size
      Result<DeviceLayout> layout = in.layout_for(po, &source->profile);
      if (!layout.ok()) return Fail(layout.status());
      if (layout->heterogeneous()) {
        request.stage_types = layout->stage_type;
        request.device_profiles.push_back(layout->profiles);
      }
      if (layout->multi_node()) {
        request.gpus_per_node = layout->gpus_per_node;
        request.inter_node_link = layout->inter_node_link;
      }
    }
    for (const Profile& seen : request.profiles) {
      if (seen.micro_batch_size == source->profile.micro_batch_size) {
        return Fail("--profile: two profiles at micro-batch size " +
                    std::to_string(seen.micro_batch_size) + "; give one per size");
      }
    }
    request.model = source->model;
    request.profiles.push_back(std::move(source->profile));
  }
  if (in.memory_limit.empty()) {
    request.memory_limit = request.profiles.front().device.memory_bytes;
    request.per_device_memory = !request.stage_types.empty();  // each its own device's
  } else {
    Result<std::optional<uint64_t>> limit = ParseByteSize(in.memory_limit);
    if (!limit.ok()) return Fail("--memory-limit: " + limit.message());
    request.memory_limit = *limit;
  }
  Result<SearchResult> result = SearchPlans(request);
  if (!result.ok()) return Fail(result.status());
  const std::string report = SearchText(*result, in.objective);
  const bool stdout_is_document = in.output == "-" || (in.output.empty() && in.format == "json");
  (stdout_is_document ? std::cerr : std::cout) << report << "\nbest plan:\n";
  return Deliver(in.output, in.format, DumpJson(PlanToJson(result->best)),
                 [&](const std::string& format) {
                   return format == "md" ? PlanMarkdown(result->best, nullptr)
                                         : PlanText(result->best, nullptr, "search");
                 });
}

}  // namespace pp
