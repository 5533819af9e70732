#include "core/output_files.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <mutex>
#include <string>
#include <vector>

#include "core/units.h"

namespace pp {
namespace {

// The process umask, read once. /proc/self/status states it without changing it; where that is
// unavailable, umask() must set a value to return the old one, which is done once, before
// any output file is written.
mode_t ProcessUmask() {
  static const mode_t mask = [] {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind("Umask:", 0) != 0) continue;
      try {
        return static_cast<mode_t>(std::stoul(line.substr(6), nullptr, 8) & 0777);
      } catch (const std::exception&) {
        break;
      }
    }
    const mode_t old = ::umask(022);
    ::umask(old);
    return old;
  }();
  return mask;
}

// Temporary files being written, for the SIGINT/SIGTERM handler to remove. A slot is claimed
// (kClaimed) while its path is copied in, and only a kPending slot's path is read by the
// handler, which does nothing but unlink and re-raise (async-signal-safe).
constexpr int kFree = 0, kClaimed = 1, kPending = 2;
constexpr int kMaxPendingFiles = 64;
struct PendingSlot {
  std::atomic<int> state{kFree};
  char path[4096] = {};
};
PendingSlot g_pending[kMaxPendingFiles];
static_assert(std::atomic<int>::is_always_lock_free);

extern "C" void RemovePendingOnSignal(int sig) {
  for (PendingSlot& slot : g_pending) {
    if (slot.state.load() == kPending) ::unlink(slot.path);
  }
  // SA_RESETHAND restored the default action: the signal ends the process as it would have.
  ::raise(sig);
}

// Installs the handler for SIGINT and SIGTERM where their action is the default (a signal the
// process ignores stays ignored).
void InstallCleanupHandlers() {
  static std::once_flag once;
  std::call_once(once, [] {
    for (int sig : {SIGINT, SIGTERM}) {
      struct sigaction old {};
      if (::sigaction(sig, nullptr, &old) != 0 || old.sa_handler != SIG_DFL) continue;
      struct sigaction action {};
      action.sa_handler = RemovePendingOnSignal;
      sigemptyset(&action.sa_mask);
      action.sa_flags = SA_RESETHAND;
      ::sigaction(sig, &action, nullptr);
    }
  });
}

// Writes `content` to a new temporary file beside `path`, with the mode any newly created file
// gets; `*temporary` is its name, tracked until RemoveTemporary or the rename.
Status WriteTemporary(const std::string& path, const std::string& content, std::string* temporary,
                      int* slot) {
  std::string tmpl = path + ".tmp.XXXXXX";
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back('\0');
  const int fd = mkstemp(name.data());
  if (fd < 0) return Status::Error(path + ": cannot create: " + std::strerror(errno));
  *temporary = name.data();
  *slot = TrackTemporaryFile(*temporary);
  auto fail = [&](const std::string& what) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    std::remove(name.data());
    UntrackTemporaryFile(*slot);
    return Status::Error(path + ": " + what + ": " + why);
  };
  // mkstemp creates the file 0600; give it the mode any newly created file gets.
  if (::fchmod(fd, static_cast<mode_t>(0666) & ~ProcessUmask()) != 0) {
    return fail("cannot set permissions");
  }
  const char* p = content.data();
  size_t left = content.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("write failed");
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (::close(fd) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(name.data());
    UntrackTemporaryFile(*slot);
    return Status::Error(path + ": cannot write: " + why);
  }
  return Status::Ok();
}

}  // namespace

int TrackTemporaryFile(const std::string& path) {
  if (path.size() >= sizeof(PendingSlot::path)) return -1;
  InstallCleanupHandlers();
  for (int i = 0; i < kMaxPendingFiles; ++i) {
    int expected = kFree;
    if (!g_pending[i].state.compare_exchange_strong(expected, kClaimed)) continue;
    std::memcpy(g_pending[i].path, path.c_str(), path.size() + 1);
    g_pending[i].state.store(kPending);
    return i;
  }
  return -1;
}

void UntrackTemporaryFile(int slot) {
  if (slot >= 0 && slot < kMaxPendingFiles) g_pending[slot].state.store(kFree);
}

Status CheckOutputPath(const std::string& path) {
  if (path.empty() || path == "-") return Status::Ok();
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    return Status::Error(path + ": cannot write: it is a folder");
  }
  const size_t slash = path.rfind('/');
  const std::string folder = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  if (::stat(folder.c_str(), &st) != 0) {
    return Status::Error(path + ": cannot write: folder " + folder + ": " + std::strerror(errno));
  }
  if (!S_ISDIR(st.st_mode)) return Status::Error(path + ": cannot write: " + folder + " is not a folder");
  if (::access(folder.c_str(), W_OK | X_OK) != 0) {
    return Status::Error(path + ": cannot write: folder " + folder + ": " + std::strerror(errno));
  }
  return Status::Ok();
}

Status CheckOutputPaths(const std::vector<std::string>& paths) {
  for (const std::string& path : paths) PP_RETURN_IF_ERROR(CheckOutputPath(path));
  return Status::Ok();
}

void OutputSet::Add(std::string path, std::string content) {
  if (path.empty()) return;
  files_.push_back({std::move(path), std::move(content)});
}

Status OutputSet::Commit() {
  struct Staged {
    const std::string* path;
    std::string temporary;
    int slot = -1;
  };
  std::vector<Staged> staged;
  std::vector<const std::string*> to_stdout;
  auto discard = [&staged](size_t from) {
    for (size_t i = from; i < staged.size(); ++i) {
      std::remove(staged[i].temporary.c_str());
      UntrackTemporaryFile(staged[i].slot);
    }
  };
  for (const auto& [path, content] : files_) {
    if (path == "-") {
      to_stdout.push_back(&content);
      continue;
    }
    Staged s{&path, "", -1};
    if (Status st = WriteTemporary(path, content, &s.temporary, &s.slot); !st.ok()) {
      discard(0);
      return st;
    }
    staged.push_back(std::move(s));
  }
  if (before_rename_) before_rename_();
  for (size_t i = 0; i < staged.size(); ++i) {
    if (std::rename(staged[i].temporary.c_str(), staged[i].path->c_str()) != 0) {
      const std::string why = std::strerror(errno);
      discard(i);
      return Status::Error(*staged[i].path + ": cannot write: " + why);
    }
    UntrackTemporaryFile(staged[i].slot);
  }
  for (const std::string* content : to_stdout) std::cout << *content;
  std::cout << std::flush;
  if (!std::cout) return Status::Error("stdout: write failed");
  files_.clear();
  return Status::Ok();
}

Status WriteFileAtomic(const std::string& path, const std::string& content) {
  OutputSet set;
  set.Add(path, content);
  return set.Commit();
}

}  // namespace pp
