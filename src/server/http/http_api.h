// The HTTP/REST endpoints of the KServe v2 protocol and Triton's extensions
// (health, metadata, config, infer, statistics, repository), and the
// Prometheus endpoint of the metrics port.
#pragma once

#include "server/http/http_server.h"
#include "server/server_core.h"

namespace kiln::server {

// A handler for HttpServer serving /v2/... against `core` (which must outlive it).
HttpHandler make_http_api(ServerCore& core);
// A handler serving GET /metrics.
HttpHandler make_metrics_api(ServerCore& core);

}  // namespace kiln::server
