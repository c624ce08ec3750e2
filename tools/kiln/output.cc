#include "output.h"

#include <fmt/format.h>
#include <spdlog/pattern_formatter.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>

#include "core/logging.h"

namespace kiln::cli {
namespace {

OutputOptions& mutable_options() {
  static OutputOptions options;
  return options;
}

// spdlog records as JSON lines: {"time":..., "level":..., "message":...}.
class JsonLogFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const auto seconds = std::chrono::duration<double>(msg.time.time_since_epoch()).count();
    const auto level = spdlog::level::to_string_view(msg.level);
    std::string line =
        json_object({{"time", fmt::format("{:.3f}", seconds)},
                     {"level", json_quote(std::string_view(level.data(), level.size()))},
                     {"logger", json_quote(std::string_view(msg.logger_name.data(), msg.logger_name.size()))},
                     {"message", json_quote(std::string_view(msg.payload.data(), msg.payload.size()))}});
    line += '\n';
    dest.append(line.data(), line.data() + line.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonLogFormatter>(); }
};

void apply_quiet() {
  mutable_options().quiet = true;
  // Only errors are logged; a KILN_LOG_LEVEL below that is overridden.
  if (kiln::logger().level() < spdlog::level::err) set_log_level("error");
}

void apply_format(const std::string& name) {
  mutable_options().format = name == "json" ? LogFormat::kJson : LogFormat::kText;
  if (mutable_options().format == LogFormat::kJson) kiln::logger().set_formatter(std::make_unique<JsonLogFormatter>());
}

}  // namespace

const OutputOptions& output_options() { return mutable_options(); }

void add_output_flags(CLI::App& app) {
  app.add_flag_callback("--quiet", apply_quiet, "print results and errors only: no progress, no log lines")
      ->trigger_on_parse();
  app.add_option_function<std::string>("--log-format", apply_format,
                                       "text (default) or json: progress, logs and errors as JSON lines, "
                                       "results as JSON")
      ->check(CLI::IsMember({"text", "json"}))
      ->trigger_on_parse();
  app.fallthrough();
}

std::string json_quote(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          out += fmt::format("\\u{:04x}", c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::string json_object(const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string out = "{";
  for (const auto& [key, value] : fields) {
    if (out.size() > 1) out += ",";
    out += json_quote(key) + ":" + value;
  }
  return out + "}";
}

void print_error(std::string_view command, std::string_view message) {
  if (output_options().format == LogFormat::kJson) {
    std::fprintf(
        stderr, "%s\n",
        json_object({{"command", json_quote(command)}, {"event", "\"error\""}, {"message", json_quote(message)}})
            .c_str());
  } else {
    std::fprintf(stderr, "kiln %.*s: error: %.*s\n", static_cast<int>(command.size()), command.data(),
                 static_cast<int>(message.size()), message.data());
  }
}

void print_status(std::string_view command, std::string_view message) {
  if (output_options().quiet) return;
  if (output_options().format == LogFormat::kJson) {
    std::fprintf(
        stderr, "%s\n",
        json_object({{"command", json_quote(command)}, {"event", "\"status\""}, {"message", json_quote(message)}})
            .c_str());
  } else {
    std::fprintf(stderr, "kiln %.*s: %.*s\n", static_cast<int>(command.size()), command.data(),
                 static_cast<int>(message.size()), message.data());
  }
  std::fflush(stderr);
}

Progress::Progress(std::string command)
    : command_(std::move(command)),
      tty_(::isatty(STDERR_FILENO) != 0 && output_options().format == LogFormat::kText),
      start_(std::chrono::steady_clock::now()) {}

Progress::~Progress() { finish(); }

void Progress::update(const std::string& stage, size_t done, size_t total) {
  if (output_options().quiet || total == 0) return;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  if (tty_) {
    const size_t width = 30, filled = done * width / total;
    std::fprintf(stderr, "\r\033[K%s [%s%s] %zu/%zu %.1fs", stage.c_str(), std::string(filled, '#').c_str(),
                 std::string(width - filled, '.').c_str(), done, total, seconds);
    std::fflush(stderr);
    line_drawn_ = true;
    return;
  }
  // Logs get a line at the start of a stage, at every 10% and at its end.
  const size_t bucket = done * 10 / total;
  if (stage == last_stage_ && bucket == last_bucket_ && done != total) return;
  if (stage == last_stage_ && bucket == last_bucket_ && done == total && last_bucket_ == 10) return;
  last_stage_ = stage;
  last_bucket_ = bucket;
  if (output_options().format == LogFormat::kJson) {
    std::fprintf(stderr, "%s\n",
                 json_object({{"command", json_quote(command_)},
                              {"event", "\"progress\""},
                              {"stage", json_quote(stage)},
                              {"done", std::to_string(done)},
                              {"total", std::to_string(total)},
                              {"seconds", fmt::format("{:.3f}", seconds)}})
                     .c_str());
  } else {
    std::fprintf(stderr, "kiln %s: %s %zu/%zu (%.1f s)\n", command_.c_str(), stage.c_str(), done, total, seconds);
  }
}

void Progress::finish() {
  if (line_drawn_) {
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
    line_drawn_ = false;
  }
}

}  // namespace kiln::cli
