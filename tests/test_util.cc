#include "tests/test_util.h"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

namespace pp::testing {

std::string TempDir() {
  static std::atomic<int> counter{0};
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("pp-partition-test-" + std::to_string(::getpid()) + "-" +
                                     std::to_string(counter++));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

CommandResult RunTool(const std::string& args) {
  const std::string dir = TempDir();
  const std::string out = dir + "/stdout", err = dir + "/stderr";
  const std::string command = std::string("cd '") + PP_SOURCE_DIR + "' && '" + PP_BINARY + "' " +
                              args + " >'" + out + "' 2>'" + err + "' </dev/null";
  const int status = std::system(command.c_str());
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = ReadText(out);
  r.err = ReadText(err);
  std::filesystem::remove_all(dir);
  return r;
}

Model LoadModelOrFail(const std::string& name) {
  Result<Model> m = LoadModel(std::string(PP_SOURCE_DIR) + "/models/" + name + ".json");
  if (!m.ok()) {
    ADD_FAILURE() << m.message();
    return Model();
  }
  return std::move(m).value();
}

Model ModelOrFail(const std::string& text) {
  Result<Json> doc = ParseJsonText(text);
  if (!doc.ok()) {
    ADD_FAILURE() << doc.message();
    return Model();
  }
  Result<Model> m = ModelFromJson(*doc);
  if (!m.ok()) {
    ADD_FAILURE() << m.message();
    return Model();
  }
  return std::move(m).value();
}

}  // namespace pp::testing
