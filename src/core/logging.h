// Logging through spdlog. Kiln logs to stderr; the level comes from
// KILN_LOG_LEVEL (trace, debug, info, warn, error, off; default warn) or set_log_level().
#pragma once

#include <spdlog/spdlog.h>

#include <string_view>

namespace kiln {

// Returns Kiln's logger (created on first use).
spdlog::logger& logger();
void set_log_level(std::string_view level);

#define KILN_LOG_DEBUG(...) ::kiln::logger().debug(__VA_ARGS__)
#define KILN_LOG_INFO(...) ::kiln::logger().info(__VA_ARGS__)
#define KILN_LOG_WARN(...) ::kiln::logger().warn(__VA_ARGS__)
#define KILN_LOG_ERROR(...) ::kiln::logger().error(__VA_ARGS__)

}  // namespace kiln
