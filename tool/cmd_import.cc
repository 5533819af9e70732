// pp-partition import CONFIG.json [-o MODEL.json] [--name N] [--seq-len S] [--micro-batch-size B]
//                      [--mtp-layers K]
#include <iostream>
#include <memory>

#include "core/hf_import.h"
#include "tool/command.h"

namespace pp {
namespace {

struct ImportFlags {
  std::string config;
  std::string output;
  std::string name;
  int64_t seq_len = 0;
  int64_t micro_batch_size = 0;
  int64_t mtp_layers = -1;  // -1: the config's
};

int RunImport(const ImportFlags& f) {
  if (Status s = CheckOutputPath(f.output); !s.ok()) return Fail(s);  // before any work
  HfImportOptions options;
  if (!f.name.empty()) {
    if (std::string problem = NameProblem(f.name); !problem.empty()) {
      return Fail("--name: " + problem);
    }
    options.name = f.name;
  }
  if (f.seq_len > 0) options.seq_len = f.seq_len;
  if (f.micro_batch_size > 0) options.micro_batch_size = f.micro_batch_size;
  if (f.mtp_layers >= 0) options.mtp_layers = f.mtp_layers;
  Result<HfImport> imported = ImportHfConfigFile(f.config, options);
  if (!imported.ok()) return Fail(imported.status());
  for (const std::string& note : imported->notes) {
    std::cerr << "pp-partition: warning: " << note << "\n";
  }
  return Deliver(f.output, "json", DumpJson(ModelToJson(imported->model)), nullptr);
}

}  // namespace

Handler SetupImport(CLI::App& sub) {
  auto f = std::make_shared<ImportFlags>();
  sub.add_option("config", f->config,
                 "A Hugging Face config.json (model_type " + ImportableModelTypes() + ")")
      ->required();
  sub.add_option("-o,--output", f->output, "Write the model file here ('-' for stdout only)");
  sub.add_option("--name", f->name, "Model name (default: the config's _name_or_path, else "
                                    "its model_type)");
  sub.add_option("--seq-len", f->seq_len, "Tokens per sequence (default: the config's context "
                                          "length)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 24));
  sub.add_option("--micro-batch-size", f->micro_batch_size,
                 "Sequences per micro-batch (default: 8 for gpt2 and bert, 1 for the others)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  sub.add_option("--mtp-layers", f->mtp_layers,
                 "Multi-token prediction blocks after the final norm (glm4_moe, deepseek_v3; "
                 "default: the config's num_nextn_predict_layers; 0 leaves them out)")
      ->check(CLI::Range(int64_t{0}, int64_t{16}));
  return [f] { return RunImport(*f); };
}

}  // namespace pp
