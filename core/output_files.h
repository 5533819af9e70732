// Output files: each written whole or not at all, with the mode a new file gets.
// WriteFileAtomic writes a temporary file and renames it; an OutputSet writes a command's
// files together at its end, or none; CheckOutputPath says before any work whether a path can
// be written; a SIGINT or SIGTERM removes the temporary files being written.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"

namespace pp {

// Writes `content` to `path` through a temporary file in the same folder and a rename, so a
// reader never sees half a file and a failure leaves nothing behind. The file gets mode 0666
// less the process umask, whether new or replacing another (whose mode is not kept). "-" writes
// to stdout.
Status WriteFileAtomic(const std::string& path, const std::string& content);

// Ok when `path` can be written later: "" (no output), "-" (stdout), or a path that is not a
// folder, in a folder that exists and is writable. Errors read "PATH: cannot write: why".
Status CheckOutputPath(const std::string& path);
// CheckOutputPath for each path, the first failure.
Status CheckOutputPaths(const std::vector<std::string>& paths);

// The output files of one command, written together at its end or not at all. Add stages a
// document (an empty path: none; "-": stdout); Commit writes every staged file to a temporary
// file beside it (as WriteFileAtomic does, mode included) and, only when all of them are
// written, renames each one into place, then prints the "-" document, if any. A failure while
// writing removes every temporary file and leaves no file of the set written; only a rename
// failing (rare: the folder changed meanwhile) leaves the files renamed before it.
class OutputSet {
 public:
  void Add(std::string path, std::string content);
  Status Commit();
  // Called by Commit between writing the temporary files and renaming them (tests: a signal
  // arriving there).
  void SetBeforeRenameForTesting(std::function<void()> hook) { before_rename_ = std::move(hook); }

 private:
  std::vector<std::pair<std::string, std::string>> files_;
  std::function<void()> before_rename_;
};

// The temporary files being written: a SIGINT or SIGTERM (when its action was the default)
// removes every tracked file, then ends the process as the signal would have. Track returns
// the file's slot (-1 when it cannot be tracked: 64 at once, paths under 4096 bytes), which
// Untrack frees once the file is renamed or removed. The handler is async-signal-safe.
int TrackTemporaryFile(const std::string& path);
void UntrackTemporaryFile(int slot);

}  // namespace pp
