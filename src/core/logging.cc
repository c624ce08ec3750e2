#include "core/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>
#include <string>

namespace kiln {

spdlog::logger& logger() {
  static std::shared_ptr<spdlog::logger> instance = [] {
    auto l = spdlog::stderr_color_mt("kiln");
    l->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [kiln] [%l] %v");
    const char* env = std::getenv("KILN_LOG_LEVEL");
    l->set_level(env ? spdlog::level::from_str(env) : spdlog::level::warn);
    return l;
  }();
  return *instance;
}

void set_log_level(std::string_view level) { logger().set_level(spdlog::level::from_str(std::string(level))); }

}  // namespace kiln
