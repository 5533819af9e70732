// The program mpi_test launches with mpirun: every rank runs the same list of cases through
// RunOnMpi (the distributed run of the MPI module, linked here directly) on the deep feature
// model of runtime_fixtures.h, and rank 0 writes each case's losses, gradients and parameters
// to OUT_DIR/case<i>.json for the test to compare with its own references.
//
//   mpi_worker OUT_DIR SCHEDULE:M:REPLICAS:STEPS:OPTIMIZER ...
//
// A SCHEDULE written tied-NAME runs NAME on the tied token model instead (its head tied to
// its embedding).
//
// The case transport:N:0:0:0 (2 ranks) sends N random floats through MpiTransport from rank 0
// to rank 1 and back, twice on the same key (the second round reuses the send buffers), then
// once to a receive that expects N + 1: rank 0 writes whether both rounds came back bit-equal
// and the error rank 1 saw.
#include <cstdio>
#include <cstdlib>
#include <random>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "core/json_util.h"
#include "executor/launch.h"
#include "executor/mpi_run.h"
#include "executor/mpi_transport.h"
#include "executor/schedule.h"
#include "tests/runtime_fixtures.h"

namespace pp {
namespace {

// The transport case: see the header.
Json TransportCase(size_t n, int rank) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SINGLE, &provided);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  }
  MpiTransport transport(MPI_COMM_WORLD, {0, 1}, 60);
  const MessageKey up{1, false, 0}, down{0, true, 0}, longer{1, false, 1};
  Json doc;
  std::vector<float> back(n + 1, 0.0f);
  bool equal = true;
  for (unsigned round = 0; round < 2; ++round) {
    std::mt19937 rng(11 + round);
    std::uniform_real_distribution<float> value(-1.0f, 1.0f);
    std::vector<float> data(n);
    for (float& v : data) v = value(rng);
    Status s;
    if (rank == 0) {
      s = transport.Send(up, data.data(), n);
      if (s.ok()) s = transport.Receive(down, back.data(), n, 60);
      equal = equal && s.ok() && std::equal(data.begin(), data.end(), back.begin());
    } else {
      s = transport.Receive(up, back.data(), n, 60);
      if (s.ok()) s = transport.Send(down, back.data(), n);
    }
    if (!s.ok()) doc["error"] = s.message();
  }
  Status s = rank == 0 ? transport.Send(longer, back.data(), n)
                       : transport.Receive(longer, back.data(), n + 1, 60);
  if (rank == 0) {
    const Status flushed = transport.Flush(60);
    if (!flushed.ok()) doc["error"] = flushed.message();
    char text[512] = {0};
    MPI_Recv(text, sizeof text, MPI_CHAR, 1, 99, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    doc["longer_error"] = std::string(text);
  } else {
    std::string text = s.ok() ? std::string() : s.message();
    text.resize(511);
    MPI_Send(text.c_str(), static_cast<int>(text.size()) + 1, MPI_CHAR, 0, 99, MPI_COMM_WORLD);
  }
  doc["equal"] = equal;
  return doc;
}

int Main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: mpi_worker OUT_DIR SCHEDULE:M:REPLICAS:STEPS:OPTIMIZER ...\n";
    return 2;
  }
  const Launch launch = DetectLaunch();
  const Model deep = testing::DeepFeatureModel(), tied = testing::TiedTokenModel();
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
    const bool is_tied = name.rfind("tied-", 0) == 0;
    if (is_tied) name = name.substr(5);
    const Model& model = is_tied ? tied : deep;
    if (name == "transport") {
      const Json doc = TransportCase(static_cast<size_t>(m), launch.rank);
      if (launch.rank == 0) {
        std::ofstream(std::string(argv[1]) + "/case" + std::to_string(i - 2) + ".json")
            << doc.dump();
      }
      continue;
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
