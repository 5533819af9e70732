// Helpers shared by the tests: building documents and running the CLI.
#pragma once

#include <string>
#include <vector>

#include "core/json_util.h"
#include "core/model.h"

namespace pp::testing {

// Whether this build runs under AddressSanitizer (make sanitize), which runs the brute-force
// checks about twenty times slower.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif
#else
inline constexpr bool kSanitized = false;
#endif

// How many random trials a brute-force check runs: all `n` in the regular build, a quarter
// under the sanitizers (the regular build still covers every trial; the sanitized one looks
// for memory and undefined-behaviour defects, which the first quarter reaches as well).
inline constexpr int Trials(int n) { return kSanitized ? (n + 3) / 4 : n; }

// A small valid model document (token model: embed, 2 blocks, ln_f, head, loss) to mutate.
inline Json SmallModelJson() {
  return Json::parse(R"({
    "format": "pp-partition.model/v1", "name": "tiny", "source": "test", "dtype": "bf16",
    "input": {"micro_batch_size": 2, "seq_len": 16},
    "layers": [
      {"name": "embed", "op": "embedding", "vocab": 100, "hidden": 32, "positions": 16},
      {"name": "block", "op": "transformer_block", "hidden": 32, "heads": 4, "ffn": 128,
       "norm": "layernorm", "mlp": "gelu", "causal": true, "repeat": 2},
      {"name": "ln_f", "op": "layernorm", "hidden": 32},
      {"name": "lm_head", "op": "linear", "in": 32, "out": 100, "bias": false, "tied_to": "embed"},
      {"name": "loss", "op": "cross_entropy"}]})");
}

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs the pp-partition binary with `args` (a shell-quoted string) from the source folder.
CommandResult RunTool(const std::string& args);

// A fresh empty folder under the system temp folder.
std::string TempDir();

void WriteText(const std::string& path, const std::string& text);

// Calls `visit(boundaries)` with every split of n layers into p non-empty contiguous stages
// (the brute force the solvers are checked against).
template <typename Visit>
void ForEachSplit(int n, int p, Visit visit) {
  std::vector<int> b(p - 1);
  auto rec = [&](auto&& self, int k, int from) -> void {
    if (k == p - 1) {
      visit(b);
      return;
    }
    for (int x = from; x <= n - (p - 1 - k); ++x) {
      b[k] = x;
      self(self, k + 1, x + 1);
    }
  };
  rec(rec, 0, 1);
}
std::string ReadText(const std::string& path);

// The model of models/NAME.json, or (after a test failure naming the problem) an empty Model.
Model LoadModelOrFail(const std::string& name);
// The model document `text`, or (after a test failure naming the problem) an empty Model.
Model ModelOrFail(const std::string& text);

}  // namespace pp::testing
