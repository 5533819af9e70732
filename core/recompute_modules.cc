#include "core/recompute_modules.h"

#include <array>

#include "core/json_util.h"

namespace pp {
namespace {

constexpr std::array<std::string_view, kRecomputeModuleCount> kNames = {
    "core_attn", "layernorm", "mla_up_proj", "mlp", "moe", "moe_act", "shared_experts"};

}  // namespace

std::string_view RecomputeModuleName(RecomputeModule m) { return kNames[static_cast<size_t>(m)]; }

std::optional<RecomputeModule> ParseRecomputeModule(std::string_view name) {
  for (size_t i = 0; i < kNames.size(); ++i) {
    if (kNames[i] == name) return static_cast<RecomputeModule>(i);
  }
  return std::nullopt;
}

std::string RecomputeModuleList() { return RecomputeModules::All().Joined(); }

RecomputeModules RecomputeModules::Outermost() const {
  if (!Has(RecomputeModule::kMoe)) return *this;
  return Without(RecomputeModule::kMoeAct).Without(RecomputeModule::kSharedExperts);
}

std::vector<RecomputeModule> RecomputeModules::List() const {
  std::vector<RecomputeModule> out;
  for (int i = 0; i < kRecomputeModuleCount; ++i) {
    const auto m = static_cast<RecomputeModule>(i);
    if (Has(m)) out.push_back(m);
  }
  return out;
}

std::vector<std::string> RecomputeModules::Names() const {
  std::vector<std::string> out;
  for (RecomputeModule m : List()) out.emplace_back(RecomputeModuleName(m));
  return out;
}

std::string RecomputeModules::Joined() const {
  std::string out;
  for (const std::string& n : Names()) out += (out.empty() ? "" : ", ") + n;
  return out;
}

std::optional<RecomputeModules> ParseRecomputeModules(const std::vector<std::string>& names,
                                                      std::string* error) {
  RecomputeModules set;
  for (const std::string& name : names) {
    const std::optional<RecomputeModule> m = ParseRecomputeModule(name);
    if (!m) {
      *error = "unknown module " + DescribeValue(Json(name)) +
               " (the modules: " + RecomputeModuleList() + ")";
      return std::nullopt;
    }
    if (set.Has(*m)) {
      *error = "module " + DescribeValue(Json(name)) + " is named twice";
      return std::nullopt;
    }
    set = set.With(*m);
  }
  if (set.empty()) {
    *error = "names no module (the modules: " + RecomputeModuleList() + ")";
    return std::nullopt;
  }
  return set;
}

}  // namespace pp
