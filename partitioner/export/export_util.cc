// Helpers shared by the export targets.
#include <cstdio>

#include "core/units.h"
#include "partitioner/export/exporter.h"

namespace pp {

std::vector<Chunk> ChunksOf(const Plan& plan) {
  std::vector<Chunk> chunks;
  for (const StagePlan& s : plan.stages) chunks.push_back({s.index, s.first_layer, s.last_layer});
  return chunks;
}

int RecomputingStages(const Plan& plan) {
  int n = 0;
  for (const StagePlan& s : plan.stages) n += s.recompute ? 1 : 0;
  return n;
}

std::vector<std::string> LayerOps(const Plan& plan) {
  std::vector<std::string> ops;
  if (plan.model_spec) {
    for (const Layer& l : plan.model_spec->layers) ops.emplace_back(LayerKindName(l.op));
    return ops;
  }
  for (const LayerProfile& l : plan.profile.layers) ops.push_back(l.op);
  return ops;
}

std::vector<bool> LayerMtp(const Plan& plan) {
  std::vector<bool> mtp;
  if (plan.model_spec) {
    for (const Layer& l : plan.model_spec->layers) mtp.push_back(l.mtp);
    return mtp;
  }
  for (const LayerProfile& l : plan.profile.layers) mtp.push_back(l.mtp);
  return mtp;
}

std::string ModuleName(const std::string& name, const ExportOptions& options) {
  const std::pair<std::string, std::string>* best = nullptr;
  for (const auto& prefix : options.module_prefixes) {
    const std::string& from = prefix.first;
    const bool matches = name == from || (name.size() > from.size() &&
                                          name.compare(0, from.size(), from) == 0 &&
                                          name[from.size()] == '.');
    if (matches && (best == nullptr || from.size() > best->first.size())) best = &prefix;
  }
  if (best == nullptr) return name;
  return best->second + name.substr(best->first.size());
}

std::string PythonString(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(c));
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string HeaderComment(const Plan& plan, std::string_view target) {
  // Free-text fields come from a file: keep comment lines one line each.
  auto clean = [](std::string_view text) {
    std::string out(text.substr(0, 64));
    for (char& c : out) {
      if (c < ' ' || c > '~') c = '?';
    }
    return out;
  };
  std::string out = "# " + std::string(target) + " settings for model " + plan.model +
                    ", written by pp-partition " + clean(plan.tool_version) + "\n";
  out += "# " + std::to_string(plan.num_stages) + " stages, " +
         std::to_string(plan.num_micro_batches) + " micro-batches of " +
         std::to_string(plan.micro_batch_size) + ", schedule " + clean(plan.schedule) +
         ", method " + clean(plan.method) + "; predicted step time " +
         FormatMs(plan.predicted.step_time_ms) + "\n";
  return out;
}

}  // namespace pp
