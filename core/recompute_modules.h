// The parts of a transformer block that selective recomputation can drop and run again
// (plan --recompute-unit selective --recompute-modules LIST), by Megatron-LM's names for them
// (--recompute-modules; megatron/core/transformer/transformer_config.py):
//   core_attn       the core attention: scores, softmax, dropout and context (or the fused
//                   kernel); drops its probabilities (or row statistics);
//   layernorm       the block's norms that are modules of their own (Transformer Engine fuses
//                   the others into the product after them): before multi-latent
//                   attention and before a mixture of experts; drops their outputs and
//                   statistics;
//   mla_up_proj     multi-latent attention's up projections, rotary and head assembly; drops
//                   q, k and v;
//   mlp             a dense block's MLP; drops what it keeps inside (a mixture-of-experts
//                   block's MLP is "moe");
//   moe             a mixture-of-experts block's MLP (router, permutations, experts, shared
//                   experts and their collectives); drops all it keeps inside;
//   moe_act         the routed experts' activation; drops its output (fc2's input);
//   shared_experts  the shared experts; drops what they keep inside.
// A module keeps its input; "moe" contains "moe_act" and "shared_experts" (each counted once).
// docs/cost-model.md gives every module's figures.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pp {

enum class RecomputeModule : uint8_t {
  kCoreAttn,
  kLayerNorm,
  kMlaUpProj,
  kMlp,
  kMoe,
  kMoeAct,
  kSharedExperts,
};
inline constexpr int kRecomputeModuleCount = 7;

std::string_view RecomputeModuleName(RecomputeModule m);
std::optional<RecomputeModule> ParseRecomputeModule(std::string_view name);
// "core_attn, layernorm, ..." (for error messages).
std::string RecomputeModuleList();

constexpr uint8_t ModuleBit(RecomputeModule m) {
  return static_cast<uint8_t>(1u << static_cast<unsigned>(m));
}

// A set of modules.
class RecomputeModules {
 public:
  constexpr RecomputeModules() = default;
  constexpr explicit RecomputeModules(uint8_t bits) : bits_(bits) {}
  // Megatron-LM's default: the core attention alone.
  static constexpr RecomputeModules Default() {
    return RecomputeModules(ModuleBit(RecomputeModule::kCoreAttn));
  }
  static constexpr RecomputeModules All() {
    return RecomputeModules(static_cast<uint8_t>((1u << kRecomputeModuleCount) - 1));
  }
  constexpr bool Has(RecomputeModule m) const { return (bits_ & ModuleBit(m)) != 0; }
  constexpr RecomputeModules With(RecomputeModule m) const {
    return RecomputeModules(static_cast<uint8_t>(bits_ | ModuleBit(m)));
  }
  constexpr RecomputeModules Without(RecomputeModule m) const {
    return RecomputeModules(static_cast<uint8_t>(bits_ & ~ModuleBit(m)));
  }
  constexpr bool empty() const { return bits_ == 0; }
  // The set without the modules another module of it contains (moe_act and shared_experts
  // under moe): what is dropped and run again, each part once.
  RecomputeModules Outermost() const;
  // In RecomputeModule order.
  std::vector<RecomputeModule> List() const;
  std::vector<std::string> Names() const;
  // "core_attn, mla_up_proj".
  std::string Joined() const;
  // Whether a kernel or collective tagged with `tags` (bits of ModuleBit) runs again.
  constexpr bool Covers(uint8_t tags) const { return (bits_ & tags) != 0; }
  friend constexpr bool operator==(RecomputeModules a, RecomputeModules b) {
    return a.bits_ == b.bits_;
  }
  friend constexpr bool operator!=(RecomputeModules a, RecomputeModules b) { return !(a == b); }

 private:
  uint8_t bits_ = 0;
};

// Parses names (each once); on a bad or repeated name returns nullopt and sets `error` to
// one line naming it.
std::optional<RecomputeModules> ParseRecomputeModules(const std::vector<std::string>& names,
                                                      std::string* error);

}  // namespace pp
