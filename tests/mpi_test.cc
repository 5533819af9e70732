// The distributed run under mpirun (--oversubscribe: ranks may share this machine's cores).
// Against independent references: with a fixed seed, the loss and every gradient of
// `mpirun -np 2, 3, 4` on gpipe, 1f1b, interleaved, zb-h1 and zbv equal the plain sequential
// loop over the micro-batches (runtime_fixtures.h; <= 1e-5, fp32); 2 stages x 2 replicas equal
// the sequential loop over the whole global batch; parameters after 3 steps with AdamW equal
// the single-process run's. Through the CLI: a wrong rank count exits 2 at once with the
// count it needs; rank 0 alone writes the report and files, the trace with one process per
// rank; a rank killed with SIGKILL mid-step or stopped (a hang) ends every other rank within
// --timeout with an error naming the rank, device, op and micro-batch, and no rank is left.
#include <gtest/gtest.h>

#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/json_util.h"
#include "executor/cpu_runner.h"
#include "executor/launch.h"
#include "executor/schedule.h"
#include "tests/runtime_fixtures.h"
#include "tests/test_util.h"

namespace pp {
namespace {

using Clock = std::chrono::steady_clock;

// mpirun's environment for a test: as root (CI containers) too.
const char* const kMpiEnv = "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ";

bool HaveMpi(std::string* why) {
#ifndef PP_HAVE_MPI
  *why = "this pp-partition was built without MPI (libopenmpi-dev)";
  return false;
#else
  if (std::system("command -v mpirun >/dev/null 2>&1") != 0) {
    *why = "mpirun is not on PATH (openmpi-bin)";
    return false;
  }
  return true;
#endif
}

#define REQUIRE_MPI()                      \
  do {                                     \
    std::string why;                       \
    if (!HaveMpi(&why)) GTEST_SKIP() << why; \
  } while (0)

testing::CommandResult Shell(const std::string& command) {
  const std::string dir = testing::TempDir();
  const std::string full = command + " >'" + dir + "/out' 2>'" + dir + "/err' </dev/null";
  const int status = std::system(full.c_str());
  testing::CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = testing::ReadText(dir + "/out");
  r.err = testing::ReadText(dir + "/err");
  std::filesystem::remove_all(dir);
  return r;
}

std::string Mpirun(int ranks) {
  return std::string(kMpiEnv) + "timeout 120 mpirun --oversubscribe -np " + std::to_string(ranks) +
         " ";
}

#ifdef PP_MPI_WORKER
// Runs the worker's `cases` on `ranks` ranks; the documents rank 0 wrote, by case.
std::vector<Json> RunWorker(int ranks, const std::vector<std::string>& cases) {
  const std::string dir = testing::TempDir();
  std::string command = Mpirun(ranks) + "'" + PP_MPI_WORKER + "' '" + dir + "'";
  for (const std::string& c : cases) command += " " + c;
  const testing::CommandResult r = Shell(command);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::vector<Json> docs;
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string path = dir + "/case" + std::to_string(i) + ".json";
    docs.push_back(std::filesystem::exists(path) ? Json::parse(testing::ReadText(path)) : Json());
  }
  std::filesystem::remove_all(dir);
  return docs;
}

std::vector<std::vector<float>> Floats(const Json& j) {
  return j.is_null() ? std::vector<std::vector<float>>{} : j.get<std::vector<std::vector<float>>>();
}

double MaxAbsDiff(const std::vector<std::vector<float>>& a,
                  const std::vector<std::vector<float>>& b) {
  if (a.size() != b.size()) return INFINITY;
  double worst = 0;
  for (size_t l = 0; l < a.size(); ++l) {
    if (a[l].size() != b[l].size()) return INFINITY;
    for (size_t i = 0; i < a[l].size(); ++i) {
      worst = std::max(worst, static_cast<double>(std::fabs(a[l][i] - b[l][i])));
    }
  }
  return worst;
}
#endif

// The launch from each launcher's variables, the first set present winning; none: one process.
TEST(Launch, ReadsEachLaunchersVariables) {
  using Env = std::map<std::string, std::string>;
  auto detect = [](const Env& env) {
    return DetectLaunch([&env](const char* name) -> const char* {
      auto it = env.find(name);
      return it == env.end() ? nullptr : it->second.c_str();
    });
  };
  Launch l = detect({});
  EXPECT_FALSE(l.launched);
  EXPECT_EQ(l.size, 1);
  l = detect({{"OMPI_COMM_WORLD_SIZE", "8"}, {"OMPI_COMM_WORLD_RANK", "5"},
              {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}, {"SLURM_NTASKS", "2"}, {"SLURM_PROCID", "0"}});
  EXPECT_TRUE(l.launched);
  EXPECT_EQ(l.launcher, "Open MPI");
  EXPECT_EQ(l.size, 8);
  EXPECT_EQ(l.rank, 5);
  EXPECT_EQ(l.local_rank, 1);
  l = detect({{"PMI_SIZE", "4"}, {"PMI_RANK", "3"}});
  EXPECT_EQ(l.launcher, "PMI");
  EXPECT_EQ(l.rank, 3);
  l = detect({{"SLURM_NTASKS", "6"}, {"SLURM_PROCID", "2"}, {"SLURM_LOCALID", "2"}});
  EXPECT_EQ(l.launcher, "Slurm");
  EXPECT_EQ(l.size, 6);
  EXPECT_EQ(l.local_rank, 2);
  // A rank outside the job or a size that is no number is no launch.
  EXPECT_FALSE(detect({{"SLURM_NTASKS", "2"}, {"SLURM_PROCID", "2"}}).launched);
  EXPECT_FALSE(detect({{"OMPI_COMM_WORLD_SIZE", "x"}, {"OMPI_COMM_WORLD_RANK", "0"}}).launched);
}

// N ranks for p stages: r = N / p, or --replicas r exactly; rank = stage x r + replica.
TEST(Launch, LaysRanksOutAsStagesByReplicas) {
  Result<RankLayout> l = LayoutRanks(2, 8, 0);
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->replicas, 4);
  EXPECT_EQ(l->RankOf(1, 2), 6);
  EXPECT_EQ(l->StageOf(6), 1);
  EXPECT_EQ(l->ReplicaOf(6), 2);
  EXPECT_TRUE(LayoutRanks(3, 3, 1).ok());
  EXPECT_EQ(LayoutRanks(2, 3, 0).message(),
            "this plan needs 2 × r ranks (2 stages, r data-parallel replicas), got 3");
  EXPECT_EQ(LayoutRanks(2, 6, 2).message(), "this plan needs 2 × 2 ranks, got 6");
  EXPECT_EQ(LayoutRanks(4, 2, 0).message(),
            "this plan needs 4 × r ranks (4 stages, r data-parallel replicas), got 2");
}

const char* const kSchedules[] = {"gpipe", "1f1b", "interleaved", "zb-h1", "zbv"};

// Every schedule on `ranks` ranks with m = 2 x ranks, one step without the optimizer: loss
// and gradients against the sequential loop.
void CheckSchedulesAgainstSequential(int ranks) {
#ifdef PP_MPI_WORKER
  const int m = 2 * ranks;
  std::vector<std::string> cases;
  for (const char* name : kSchedules) {
    cases.push_back(std::string(name) + ":" + std::to_string(m) + ":1:1:0");
  }
  const std::vector<Json> docs = RunWorker(ranks, cases);
  const Model model = testing::DeepFeatureModel();
  const testing::Reference ref = testing::Sequential(model, m, 7);
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i] + " on " + std::to_string(ranks) + " ranks");
    ASSERT_FALSE(docs[i].is_null());
    EXPECT_NEAR(docs[i]["loss"][0].get<double>(), ref.loss, 1e-5 * std::fabs(ref.loss));
    EXPECT_LE(testing::GradientRelativeError(Floats(docs[i]["gradients"]), ref.gradients), 1e-5);
    EXPECT_EQ(docs[i]["ranks"].size(), static_cast<size_t>(ranks));
  }
#else
  (void)ranks;
#endif
}

TEST(Mpi, TwoRanksEqualTheSequentialLoopOnEverySchedule) {
  REQUIRE_MPI();
  CheckSchedulesAgainstSequential(2);
}
TEST(Mpi, ThreeRanksEqualTheSequentialLoopOnEverySchedule) {
  REQUIRE_MPI();
  CheckSchedulesAgainstSequential(3);
}
TEST(Mpi, FourRanksEqualTheSequentialLoopOnEverySchedule) {
  REQUIRE_MPI();
  CheckSchedulesAgainstSequential(4);
}

// 2 stages x 2 replicas, each replica on its own half of the global batch, gradients averaged
// over the replicas: one sequential loop over all 2 x m micro-batches. And 3 steps with AdamW
// on 2 ranks (one pipeline) and on 2 x 2 ranks: the parameters of the single-process run (of
// the whole global batch for the replicas).
TEST(Mpi, ReplicasEqualOneLoopOverTheGlobalBatchAndParametersMatchOneProcess) {
  REQUIRE_MPI();
#ifdef PP_MPI_WORKER
  const Model model = testing::DeepFeatureModel();
  const int n = static_cast<int>(model.layers.size());
  const std::vector<Json> docs = RunWorker(4, {"1f1b:4:2:1:0", "1f1b:4:2:3:1"});
  const testing::Reference ref = testing::Sequential(model, 8, 7);
  ASSERT_FALSE(docs[0].is_null());
  EXPECT_NEAR(docs[0]["loss"][0].get<double>(), ref.loss, 1e-5 * std::fabs(ref.loss));
  EXPECT_LE(testing::GradientRelativeError(Floats(docs[0]["gradients"]), ref.gradients), 1e-5);

  RunOptions options = testing::GradientOptions();
  options.steps = 3;
  options.optimizer = true;
  Result<RunResult> global = RunOnCpu(model, testing::EvenChunks(n, 2),
                                      *BuildSchedule("1f1b", 2, 8), options);
  ASSERT_TRUE(global.ok()) << global.message();
  ASSERT_FALSE(docs[1].is_null());
  EXPECT_LE(MaxAbsDiff(Floats(docs[1]["parameters"]), global->parameters), 1e-6);

  const std::vector<Json> one = RunWorker(2, {"1f1b:4:1:3:1", "zbv:4:1:3:1"});
  for (const char* name : {"1f1b", "zbv"}) {
    SCOPED_TRACE(name);
    const Schedule schedule = *BuildSchedule(name, 2, 4);
    Result<RunResult> local =
        RunOnCpu(model, testing::EvenChunks(n, NumChunks(schedule)), schedule, options);
    ASSERT_TRUE(local.ok()) << local.message();
    const Json& doc = one[std::string(name) == "1f1b" ? 0 : 1];
    ASSERT_FALSE(doc.is_null());
    EXPECT_LE(MaxAbsDiff(Floats(doc["parameters"]), local->parameters), 1e-6);
    for (int s = 0; s < 3; ++s) {
      EXPECT_NEAR(doc["loss"][s].get<double>(), local->steps[s].loss, 1e-6);
    }
  }
#endif
}

// The tied token model (its head's weight the embedding's table): on 2 ranks, the head on
// the other rank than the embedding (1f1b, interleaved) or on the same one (zbv), the loss and
// gradients of the sequential loop, whose shared weight's gradient is the sum of both
// layers'; on 2 stages x 2 replicas, the gradients of one loop over the global batch, and after
// 3 steps of AdamW the tied layers' parameters of one process over it, both copies of the
// shared weight still equal, bit for bit.
TEST(Mpi, ATiedHeadExchangesItsGradientWithTheEmbeddingsRank) {
  REQUIRE_MPI();
#ifdef PP_MPI_WORKER
  const Model model = testing::TiedTokenModel();
  const int n = static_cast<int>(model.layers.size());
  const testing::Tie tie = testing::TiesOf(model).at(0);
  const std::vector<Json> docs =
      RunWorker(2, {"tied-1f1b:4:1:1:0", "tied-interleaved:4:1:1:0", "tied-zbv:4:1:1:0"});
  const testing::Reference ref = testing::Sequential(model, 4, 7);
  for (const Json& doc : docs) {
    ASSERT_FALSE(doc.is_null());
    EXPECT_NEAR(doc["loss"][0].get<double>(), ref.loss, 1e-5 * std::fabs(ref.loss));
    EXPECT_LE(testing::GradientRelativeError(Floats(doc["gradients"]), ref.gradients), 1e-5);
  }

  const std::vector<Json> replicas = RunWorker(4, {"tied-1f1b:4:2:1:0", "tied-1f1b:4:2:3:1"});
  ASSERT_FALSE(replicas[0].is_null());
  const testing::Reference global_ref = testing::Sequential(model, 8, 7);
  EXPECT_LE(testing::GradientRelativeError(Floats(replicas[0]["gradients"]), global_ref.gradients),
            1e-5);
  ASSERT_FALSE(replicas[1].is_null());
  RunOptions options = testing::GradientOptions();
  options.steps = 3;
  options.optimizer = true;
  Result<RunResult> global =
      RunOnCpu(model, testing::EvenChunks(n, 2), *BuildSchedule("1f1b", 2, 8), options);
  ASSERT_TRUE(global.ok()) << global.message();
  const std::vector<std::vector<float>> params = Floats(replicas[1]["parameters"]);
  // The two layers of the tie: the blocks' parameters are left out, since a key bias (whose
  // gradient is zero but for rounding) takes Adam steps of the learning rate's size from
  // rounding alone, which differs between the replicas' sum and one loop's.
  for (size_t l : {tie.embedding, tie.linear}) {
    EXPECT_LE(MaxAbsDiff({params[l]}, {global->parameters[l]}), 1e-6) << "layer " << l;
  }
  int differ = 0;
  for (int64_t v = 0; v < tie.vocab; ++v) {
    for (int64_t i = 0; i < tie.hidden; ++i) {
      differ += params[tie.embedding][v * tie.hidden + i] != params[tie.linear][i * tie.vocab + v];
    }
  }
  EXPECT_EQ(differ, 0);
#endif
}

// A message of two and a half send pieces (10 MiB) through the mpi transport, there and back
// twice on one key: bit-equal both times; a receive that expects one value more names both
// counts.
TEST(Mpi, ALargeMessageCrossesInPiecesAndAShortOneIsNamed) {
  REQUIRE_MPI();
#ifdef PP_MPI_WORKER
  const size_t n = (size_t{5} << 20) / 2 + 3;
  const std::vector<Json> docs = RunWorker(2, {"transport:" + std::to_string(n) + ":0:0:0"});
  ASSERT_FALSE(docs[0].is_null());
  EXPECT_FALSE(docs[0].contains("error")) << docs[0].dump();
  EXPECT_TRUE(docs[0]["equal"].get<bool>());
  EXPECT_EQ(docs[0]["longer_error"].get<std::string>(),
            "received " + std::to_string(n) + " values from rank 0, expected " +
                std::to_string(n + 1));
#endif
}

// The pp-partition binary: $PP_PARTITION_BINARY (a packed copy, bench/gpu_check.sh), else the
// one this build made.
std::string Tool() {
  const char* env = std::getenv("PP_PARTITION_BINARY");
  return std::string("'") + (env != nullptr && *env ? env : PP_BINARY) + "'";
}

// A plan of the small token model on `stages` stages in a fresh folder.
std::string PlanIn(const std::string& dir, int stages, int micro_batches) {
  testing::WriteText(dir + "/m.json", DumpJson(testing::SmallModelJson()));
  const testing::CommandResult r =
      Shell(Tool() + " plan " + dir + "/m.json --stages " + std::to_string(stages) +
            " --micro-batches " + std::to_string(micro_batches) + " -o " + dir + "/p.json");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return dir + "/p.json";
}


TEST(MpiCli, AWrongRankCountExitsAtOnceWithTheCountItNeeds) {
  REQUIRE_MPI();
  const std::string dir = testing::TempDir();
  const std::string plan = PlanIn(dir, 2, 4);
  const Clock::time_point start = Clock::now();
  testing::CommandResult r = Shell(Mpirun(3) + Tool() + " run " + plan + " --backend cpu");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("this plan needs 2 × r ranks"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("got 3"), std::string::npos) << r.err;
  r = Shell(Mpirun(2) + Tool() + " run " + plan + " --backend cpu --replicas 2");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("this plan needs 2 × 2 ranks, got 2"), std::string::npos) << r.err;
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - start).count(), 30.0);
  std::filesystem::remove_all(dir);
}

TEST(MpiCli, RankZeroWritesTheReportAndATracePerRank) {
  REQUIRE_MPI();
  const std::string dir = testing::TempDir();
  const std::string plan = PlanIn(dir, 2, 4);
  const testing::CommandResult r =
      Shell(Mpirun(4) + Tool() + " run " + plan + " --backend cpu --steps 2 --warmup 1 --trace " +
            dir + "/t.json --svg " + dir + "/t.svg -o " + dir + "/r.json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // One report, from rank 0.
  EXPECT_EQ(r.out.find("run: "), r.out.rfind("run: ")) << r.out;
  EXPECT_NE(r.out.find("4 ranks, 2 stages × 2 replicas"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("timings are per rank"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("gradient all-reduce"), std::string::npos) << r.out;
  const Json ran = Json::parse(testing::ReadText(dir + "/r.json"));
  EXPECT_GT(ran["measured"]["step_time_ms"].get<double>(), 0);
  EXPECT_EQ(ran["measured"]["stages"].size(), 2u);
  // The measured all-reduce travels in the run's document as the measured data-parallel time:
  // the figure the report prints.
  ASSERT_TRUE(ran["measured"].contains("data_parallel_ms")) << ran["measured"].dump();
  const size_t at = r.out.find("ms, measured ");
  ASSERT_NE(at, std::string::npos) << r.out;
  EXPECT_NEAR(ran["measured"]["data_parallel_ms"].get<double>(),
              std::stod(r.out.substr(at + std::string("ms, measured ").size())), 5e-4);
  const Json trace = Json::parse(testing::ReadText(dir + "/t.json"));
  std::vector<int> ops_per_pid(6, 0);
  for (const Json& e : trace["traceEvents"]) {
    if (e["ph"] == "X") ++ops_per_pid.at(e["pid"].get<int>());
  }
  // Process 0 is the prediction; 1..4 are ranks 0..3, each with its device's whole op list.
  const Schedule schedule = *BuildSchedule("1f1b", 2, 4);
  for (int rank = 0; rank < 4; ++rank) {
    EXPECT_EQ(ops_per_pid[1 + rank], static_cast<int>(schedule.device_ops[rank / 2].size()))
        << "rank " << rank;
  }
  EXPECT_TRUE(std::filesystem::exists(dir + "/t.svg"));
  std::filesystem::remove_all(dir);
}

// plan, simulate and a run in one process never load libmpi (the dynamic loader lists every
// library it opens); a run under mpirun does, through the module.
TEST(MpiCli, OnlyADistributedRunLoadsLibmpi) {
  REQUIRE_MPI();
  const std::string dir = testing::TempDir();
  const std::string plan = PlanIn(dir, 2, 4);
  for (const std::string& args : {"plan " + dir + "/m.json --stages 2 --micro-batches 4",
                                  "simulate " + plan, "run " + plan + " --backend cpu --steps 1"}) {
    const testing::CommandResult r = Shell("LD_DEBUG=files " + Tool() + " " + args);
    EXPECT_EQ(r.exit_code, 0) << args << "\n" << r.err.substr(0, 2000);
    EXPECT_EQ(r.err.find("libmpi"), std::string::npos) << args;
    EXPECT_NE(r.err.find("libopenblas"), std::string::npos) << "the loader listed nothing";
  }
  const testing::CommandResult r =
      Shell(Mpirun(2) + "-x LD_DEBUG=files " + Tool() + " run " + plan +
            " --backend cpu --steps 1");
  EXPECT_EQ(r.exit_code, 0) << r.err.substr(0, 2000);
  EXPECT_NE(r.err.find("pp-partition-mpi.so"), std::string::npos);
  EXPECT_NE(r.err.find("libmpi"), std::string::npos);
  std::filesystem::remove_all(dir);
}

#ifdef PP_HAVE_NCCL
// GPUs visible here (nvidia-smi -L), 0 without a driver.
int VisibleGpuCount() {
  const testing::CommandResult r = Shell("nvidia-smi -L 2>/dev/null | grep -c '^GPU'");
  return r.exit_code == 0 ? std::atoi(r.out.c_str()) : 0;
}

// The numbers of the report's line "loss A (step 1) -> B (step N)".
std::vector<double> LossLine(const std::string& report) {
  std::vector<double> values;
  const size_t at = report.find("\nloss ");
  if (at == std::string::npos) return values;
  std::istringstream line(report.substr(at + 6, report.find('\n', at + 1) - at - 6));
  std::string word;
  while (line >> word) {
    char* end = nullptr;
    const double v = std::strtod(word.c_str(), &end);
    if (end != word.c_str() && *end == '\0') values.push_back(v);
  }
  return values;
}
#endif

// The nccl transport: the cuda backend on 2 ranks (one GPU each) trains as the cuda backend
// in one process does (fp32: the same kernels on the same data; the first and last loss).
TEST(MpiNccl, TwoRanksOnTwoGpusTrainAsOneProcess) {
  REQUIRE_MPI();
#ifndef PP_HAVE_NCCL
  GTEST_SKIP() << "this pp-partition was built without NCCL (the CUDA toolkit's nccl.h)";
#else
  const int gpus = VisibleGpuCount();
  if (gpus < 2) {
    GTEST_SKIP() << "the nccl transport takes one GPU per rank: 2 ranks need 2 GPUs, this "
                    "machine shows " << gpus;
  }
  const std::string dir = testing::TempDir();
  Json model = testing::SmallModelJson();
  model["dtype"] = "fp32";
  testing::WriteText(dir + "/m.json", DumpJson(model));
  ASSERT_EQ(Shell(Tool() + " plan " + dir + "/m.json --stages 2 --micro-batches 4 -o " + dir +
                  "/p.json").exit_code, 0);
  const std::string args = " run " + dir + "/p.json --backend cuda --steps 3 --warmup 0";
  const testing::CommandResult one = Shell(Tool() + args + " --gpus 0,1");
  const testing::CommandResult two = Shell(Mpirun(2) + Tool() + args);
  ASSERT_EQ(one.exit_code, 0) << one.err;
  ASSERT_EQ(two.exit_code, 0) << two.err;
  EXPECT_NE(two.out.find("nccl transport"), std::string::npos) << two.out;
  const std::vector<double> a = LossLine(one.out), b = LossLine(two.out);
  ASSERT_EQ(a.size(), b.size()) << one.out << two.out;
  ASSERT_FALSE(a.empty());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-4 * std::fabs(a[i]) + 1e-4);
  std::filesystem::remove_all(dir);
#endif
}

// The pids of the processes whose parent is `parent`.
std::vector<int> ChildrenOf(int parent) {
  std::vector<int> pids;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return pids;
  while (dirent* e = readdir(proc)) {
    const int pid = std::atoi(e->d_name);
    if (pid <= 0) continue;
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    std::getline(stat, line);
    const size_t close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    char state;
    int ppid = 0;
    rest >> state >> ppid;
    if (ppid == parent && state != 'Z') pids.push_back(pid);
  }
  closedir(proc);
  return pids;
}

// The rank of a process from its environment; -1 when it has none.
int RankOf(int pid) {
  std::ifstream env("/proc/" + std::to_string(pid) + "/environ");
  std::string var;
  while (std::getline(env, var, '\0')) {
    if (var.rfind("OMPI_COMM_WORLD_RANK=", 0) == 0) return std::atoi(var.c_str() + 21);
  }
  return -1;
}

bool Gone(int pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return true;
  const size_t close = line.rfind(')');
  return close != std::string::npos && line.size() > close + 2 && line[close + 2] == 'Z';
}

// Starts a long 2-rank run, lets it get into its steps, sends `signal_number` to rank 1 and
// returns how long the job took to end after that, its exit status, its stderr, and whether
// every rank is gone.
struct Fault {
  double seconds = 0;
  int exit_code = 0;
  std::string err;
  bool all_gone = false;
};

Fault InjectFault(int signal_number, double timeout_s) {
  Fault f;
  const std::string dir = testing::TempDir();
  const std::string plan = PlanIn(dir, 2, 8);
  const std::string err = dir + "/err";
  const pid_t mpirun = fork();
  if (mpirun == 0) {
    freopen("/dev/null", "w", stdout);
    freopen(err.c_str(), "w", stderr);
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    const std::string timeout = std::to_string(timeout_s);
    execlp("mpirun", "mpirun", "--oversubscribe", "-np", "2", PP_BINARY, "run", plan.c_str(),
           "--backend", "cpu", "--steps", "100000", "--warmup", "0", "--timeout",
           timeout.c_str(), "--time-limit", "300", static_cast<char*>(nullptr));
    _exit(127);
  }
  // Both ranks up and into their steps.
  std::vector<int> ranks;
  int victim = -1;
  for (int i = 0; i < 300 && victim < 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ranks = ChildrenOf(mpirun);
    for (int pid : ranks) {
      if (ranks.size() == 2 && RankOf(pid) == 1) victim = pid;
    }
  }
  EXPECT_GE(victim, 0) << "rank 1 never started";
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  if (victim >= 0) kill(victim, signal_number);
  const Clock::time_point sent = Clock::now();
  int status = 0;
  while (waitpid(mpirun, &status, WNOHANG) == 0) {
    if (std::chrono::duration<double>(Clock::now() - sent).count() > 60) {
      kill(mpirun, SIGKILL);
      for (int pid : ranks) kill(pid, SIGKILL);
      waitpid(mpirun, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  f.seconds = std::chrono::duration<double>(Clock::now() - sent).count();
  f.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  // Give the launcher's last kills a moment, then look.
  for (int i = 0; i < 100; ++i) {
    f.all_gone = true;
    for (int pid : ranks) f.all_gone = f.all_gone && Gone(pid);
    if (f.all_gone) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (victim >= 0 && signal_number == SIGSTOP) kill(victim, SIGKILL);
  f.err = testing::ReadText(err);
  std::filesystem::remove_all(dir);
  return f;
}

TEST(MpiFaults, ARankKilledMidStepEndsTheOthersWithANamedError) {
  REQUIRE_MPI();
  const double timeout_s = 5;
  const Fault f = InjectFault(SIGKILL, timeout_s);
  EXPECT_LT(f.seconds, timeout_s + 5) << f.err;
  EXPECT_NE(f.exit_code, 0) << f.err;
  EXPECT_TRUE(f.all_gone) << "a rank outlived the job";
  // The launcher names the rank that died; the survivor names itself, its device, and its op
  // and micro-batch, or, when the kill found it between ops (at a step's barrier, say; it
  // happens on a loaded machine), that it was outside an op, with the launcher as the cause,
  // or at the end of a step (exchanging the tied head's gradient).
  EXPECT_NE(f.err.find("rank 1"), std::string::npos) << f.err;
  EXPECT_NE(f.err.find("pp-partition: rank 0 (stage 0"), std::string::npos) << f.err;
  const bool in_op = f.err.find("device 0, op ") != std::string::npos &&
                     f.err.find("micro-batch ") != std::string::npos;
  const bool between =
      f.err.find("device 0, outside an op: ended by the launcher") != std::string::npos ||
      f.err.find("device 0, end of step ") != std::string::npos;  // the tied head's exchange
  EXPECT_TRUE(in_op || between) << f.err;
}

TEST(MpiFaults, AHungRankEndsTheOthersWithinTheTimeout) {
  REQUIRE_MPI();
  const double timeout_s = 2;
  const Fault f = InjectFault(SIGSTOP, timeout_s);
  EXPECT_LT(f.seconds, timeout_s + 8) << f.err;
  EXPECT_GT(f.seconds, timeout_s * 0.9) << f.err;
  EXPECT_NE(f.exit_code, 0) << f.err;
  EXPECT_TRUE(f.all_gone) << "a rank outlived the job";
  EXPECT_NE(f.err.find("rank 0 (stage 0"), std::string::npos) << f.err;
  // Rank 0 waits in vain wherever rank 1 stopped: mostly for a gradient from it, or, when
  // rank 1 stopped between steps, at the next step's barrier, or to hand it a message; or,
  // at the end of a step, for the exchange of the tied head's gradient (the model's head is
  // tied to its embedding, one on each rank).
  const bool named = f.err.find("waited longer than 2 s for its input from rank 1") !=
                         std::string::npos ||
                     f.err.find("waited longer than 2 s for every rank at the barrier") !=
                         std::string::npos ||
                     f.err.find("waited longer than 2 s for rank 1 to take") != std::string::npos ||
                     f.err.find("waited longer than 2 s for the tied weight's gradient from "
                                "rank 1") != std::string::npos;
  EXPECT_TRUE(named) << f.err;
  // Where: an op of its list, or the end of a step.
  const bool in_op = f.err.find("device 0, op ") != std::string::npos &&
                     f.err.find("micro-batch ") != std::string::npos;
  EXPECT_TRUE(in_op || f.err.find("device 0, end of step ") != std::string::npos) << f.err;
}

}  // namespace
}  // namespace pp
