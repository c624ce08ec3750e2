// How the kiln command talks: the global flags --quiet and --log-format, the
// progress display of long steps (building, tactic timing, calibration) and
// status/error lines.
//
//   text (default): progress is one redrawn line on a terminal and plain
//                   "kiln build: tactics 12/48 layers" lines every 10% in a log
//                   (stderr not a terminal); errors as "kiln build: error: ...".
//   json:           one JSON object per line on stderr for progress, log records
//                   and errors ({"command":"build","event":"progress",...});
//                   commands print their result as JSON on stdout.
//   --quiet:        no progress and no log record below error; results only.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace CLI {
class App;
}

namespace kiln::cli {

enum class LogFormat { kText, kJson };

struct OutputOptions {
  bool quiet = false;
  LogFormat format = LogFormat::kText;
};

// The options the global flags set (read by every command).
const OutputOptions& output_options();

// Registers --quiet and --log-format on the app; they apply before any
// subcommand runs and may also follow the subcommand (kiln build m.onnx --quiet).
void add_output_flags(CLI::App& app);

// A JSON string literal for `s` (quotes, backslashes and control characters escaped).
std::string json_quote(std::string_view s);

// One JSON object from key/value pairs whose values are already JSON (json_quote
// strings, format numbers).
std::string json_object(const std::vector<std::pair<std::string, std::string>>& fields);

// Prints an error of `command` on stderr in the chosen format (never suppressed).
void print_error(std::string_view command, std::string_view message);

// Prints a status line of `command` on stderr ("kiln serve: stopped", or a
// JSON object with event "status"); --quiet suppresses it.
void print_status(std::string_view command, std::string_view message);

// Progress of one long step of a command. update() may be called as often as
// the work allows; it draws or logs only what the format and --quiet ask for.
class Progress {
 public:
  explicit Progress(std::string command);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void update(const std::string& stage, size_t done, size_t total);
  // Clears the terminal line (called by the destructor too).
  void finish();

 private:
  std::string command_;
  bool tty_ = false;
  bool line_drawn_ = false;
  std::string last_stage_;
  size_t last_bucket_ = 0;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace kiln::cli
