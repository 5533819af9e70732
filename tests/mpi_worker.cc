// The program mpi_test launches with mpirun: every rank runs the same list of cases through
// RunOnMpi (the distributed run of the MPI module, linked here directly) on the deep feature
// model of runtime_fixtures.h, and rank 0 writes each case's losses, gradients and parameters
// to OUT_DIR/case<i>.json for the test to compare with its own references.
//
//   mpi_worker OUT_DIR SCHEDULE:M:REPLICAS:STEPS:OPTIMIZER ...
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "core/json_util.h"
#include "executor/launch.h"
#include "executor/mpi_run.h"
#include "executor/schedule.h"
#include "tests/runtime_fixtures.h"

namespace pp {
namespace {

int Main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: mpi_worker OUT_DIR SCHEDULE:M:REPLICAS:STEPS:OPTIMIZER ...\n";
    return 2;
  }
  const Launch launch = DetectLaunch();
  const Model model = testing::DeepFeatureModel();
  for (int i = 2; i < argc; ++i) {
    std::string name;
    int m = 0, replicas = 0, steps = 0, optimizer = 0;
    std::string text = argv[i];
    for (char& c : text) c = c == ':' ? ' ' : c;
    std::istringstream fields(text);
    if (!(fields >> name >> m >> replicas >> steps >> optimizer)) {
      std::cerr << "mpi_worker: bad case " << argv[i] << "\n";
      return 2;
    }
    Result<RankLayout> layout = LayoutRanks(launch.size / replicas, launch.size, replicas);
    Result<Schedule> schedule = layout.ok() ? BuildSchedule(name, layout->stages, m)
                                            : Result<Schedule>(layout.status());
    if (!schedule.ok()) {
      std::cerr << "mpi_worker: " << schedule.message() << "\n";
      EndRanks(2);
      return 2;
    }
    RunOptions options = testing::GradientOptions();
    options.steps = steps;
    options.optimizer = optimizer != 0;
    options.timeout_s = 60;
    MpiRunRequest request;
    request.layout = *layout;
    request.launch = launch;
    const std::vector<ChunkRange> chunks =
        testing::EvenChunks(static_cast<int>(model.layers.size()), NumChunks(*schedule));
    Result<RunResult> run = RunOnMpi(model, chunks, *schedule, options, request);
    if (!run.ok()) {
      std::cerr << "mpi_worker: " << run.message() << "\n";
      EndRanks(2);
      return 2;
    }
    if (!run->root) continue;
    Json doc;
    doc["loss"] = Json::array();
    for (const StepTiming& st : run->steps) doc["loss"].push_back(st.loss);
    doc["gradients"] = run->gradients;
    doc["parameters"] = run->parameters;
    doc["ranks"] = run->rank_names;
    std::ofstream(std::string(argv[1]) + "/case" + std::to_string(i - 2) + ".json") << doc.dump();
  }
  EndRanks(0);
  return 0;
}

}  // namespace
}  // namespace pp

int main(int argc, char** argv) { return pp::Main(argc, argv); }
