#include "server/http/http_api.h"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <charconv>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "server/config_json.h"
#include "server/http/compression.h"
#include "server/http/infer_json.h"
#include "server/metrics.h"
#include "server/model_config.h"
#include "server/protocol.h"
#include "server/tensor_codec.h"
#include "server/types.h"

namespace kiln::server {
namespace {

HttpResponse json_response(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  r.headers.emplace_back("Content-Type", "application/json");
  return r;
}

HttpResponse error_response(const Status& st) { return json_response(http_status_of(st), error_json(st.message())); }

HttpResponse empty_response(int status) {
  HttpResponse r;
  r.status = status;
  return r;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Result<std::string> url_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%') {
      if (i + 2 >= s.size()) return invalid_argument("bad percent-encoding in URL");
      int hi = hex_value(s[i + 1]);
      int lo = hex_value(s[i + 2]);
      if (hi < 0 || lo < 0) return invalid_argument("bad percent-encoding in URL");
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> parts;
  size_t pos = 0;
  while (pos < path.size()) {
    size_t next = path.find('/', pos);
    if (next == std::string_view::npos) next = path.size();
    if (next > pos) parts.push_back(path.substr(pos, next - pos));
    pos = next + 1;
  }
  return parts;
}

std::string pb_json(const google::protobuf::Message& m) { return message_to_json(m); }

class HttpApi {
 public:
  explicit HttpApi(ServerCore& core) : core_(core) {}

  void handle(HttpRequest req, Responder respond) {
    std::string_view target = req.target;
    target = target.substr(0, target.find('?'));
    std::vector<std::string_view> parts = split_path(target);
    if (parts.empty() || parts[0] != "v2") return respond(json_response(404, error_json("Not Found")));
    const std::string& m = req.method;
    auto only = [&](const char* method) {
      if (m == method) return true;
      respond(json_response(405, error_json("Method Not Allowed")));
      return false;
    };
    if (parts.size() == 1) {
      if (only("GET")) respond(json_response(200, pb_json(server_metadata(core_))));
      return;
    }
    if (parts[1] == "health" && parts.size() == 3) {
      if (!only("GET")) return;
      if (parts[2] == "live") return respond(empty_response(core_.live() ? 200 : 400));
      if (parts[2] == "ready") {
        if (core_.exiting()) return respond(json_response(503, error_json("Server exiting")));
        return respond(empty_response(core_.ready() ? 200 : 400));
      }
      return respond(json_response(404, error_json("Not Found")));
    }
    if (parts[1] == "repository") return repository(req, parts, respond);
    if (parts[1] == "models") return models(req, parts, respond);
    if (parts[1] == "systemsharedmemory") return system_shared_memory(req, parts, respond);
    if (parts[1] == "cudasharedmemory") {
      return respond(json_response(
          501, error_json("CUDA shared memory is not supported by Kiln (use system shared memory)")));
    }
    if (parts[1] == "trace" || parts[1] == "logging") {
      return respond(json_response(501, error_json(fmt::format("the {} extension is not supported by Kiln", parts[1]))));
    }
    respond(json_response(404, error_json("Not Found")));
  }

 private:
  // /v2/systemsharedmemory[/region/<r>]/status (GET), /v2/systemsharedmemory/region/<r>/register (POST),
  // /v2/systemsharedmemory[/region/<r>]/unregister (POST).
  void system_shared_memory(const HttpRequest& req, const std::vector<std::string_view>& parts,
                            const Responder& respond) {
    std::string region;
    size_t i = 2;
    if (parts.size() == 5 && parts[2] == "region") {
      auto decoded = url_decode(parts[3]);
      if (!decoded.is_ok()) return respond(error_response(decoded.status()));
      region = std::move(decoded).value();
      i = 4;
    }
    if (parts.size() != i + 1) return respond(json_response(404, error_json("Not Found")));
    SharedMemoryManager& shm = core_.shared_memory();
    std::string_view action = parts[i];
    if (action == "status") {
      if (req.method != "GET") return respond(json_response(405, error_json("Method Not Allowed")));
      auto regions = shm.status(region);
      if (!regions.is_ok()) return respond(error_response(regions.status()));
      rapidjson::StringBuffer sb;
      rapidjson::Writer<rapidjson::StringBuffer> w(sb);
      w.StartArray();
      for (const ShmRegionInfo& r : regions.value()) {
        w.StartObject();
        w.Key("name");
        w.String(r.name.data(), static_cast<rapidjson::SizeType>(r.name.size()));
        w.Key("key");
        w.String(r.key.data(), static_cast<rapidjson::SizeType>(r.key.size()));
        w.Key("offset");
        w.Uint64(r.offset);
        w.Key("byte_size");
        w.Uint64(r.byte_size);
        w.EndObject();
      }
      w.EndArray();
      return respond(json_response(200, sb.GetString()));
    }
    if (req.method != "POST") return respond(json_response(405, error_json("Method Not Allowed")));
    if (action == "unregister") {
      Status st = shm.unregister(region);
      return respond(st.is_ok() ? empty_response(200) : error_response(st));
    }
    if (action != "register" || region.empty()) return respond(json_response(404, error_json("Not Found")));
    rapidjson::Document doc;
    doc.Parse(req.body.data(), req.body.size());
    if (doc.HasParseError() || !doc.IsObject()) {
      return respond(json_response(400, error_json("shared memory register body must be a JSON object")));
    }
    auto key = doc.FindMember("key");
    auto offset = doc.FindMember("offset");
    auto size = doc.FindMember("byte_size");
    if (key == doc.MemberEnd() || !key->value.IsString()) {
      return respond(json_response(400, error_json("shared memory register body needs a string 'key'")));
    }
    if (size == doc.MemberEnd() || !size->value.IsUint64() ||
        (offset != doc.MemberEnd() && !offset->value.IsUint64())) {
      return respond(json_response(
          400, error_json("shared memory register body needs non-negative integers 'byte_size' and 'offset'")));
    }
    Status st = shm.register_region(region, key->value.GetString(),
                                    offset == doc.MemberEnd() ? 0 : offset->value.GetUint64(), size->value.GetUint64());
    respond(st.is_ok() ? empty_response(200) : error_response(st));
  }

  void repository(const HttpRequest& req, const std::vector<std::string_view>& parts, const Responder& respond) {
    // /v2/repository/index, /v2/repository/<repo>/index, /v2/repository/models/<m>/(load|unload)
    if ((parts.size() == 3 && parts[2] == "index") || (parts.size() == 4 && parts[3] == "index")) {
      if (req.method != "POST") return respond(json_response(405, error_json("Method Not Allowed")));
      bool ready_only = false;
      if (!req.body.empty()) {
        rapidjson::Document doc;
        doc.Parse(req.body.data(), req.body.size());
        if (doc.HasParseError() || !doc.IsObject()) {
          return respond(json_response(400, error_json("repository index request body must be a JSON object")));
        }
        if (auto it = doc.FindMember("ready"); it != doc.MemberEnd()) {
          if (!it->value.IsBool()) return respond(json_response(400, error_json("'ready' must be a boolean")));
          ready_only = it->value.GetBool();
        }
      }
      auto index = repository_index(core_, ready_only);
      rapidjson::StringBuffer sb;
      rapidjson::Writer<rapidjson::StringBuffer> w(sb);
      w.StartArray();
      for (const auto& e : index.models()) {
        w.StartObject();
        w.Key("name");
        w.String(e.name().c_str());
        if (!e.version().empty()) {
          w.Key("version");
          w.String(e.version().c_str());
        }
        if (!e.state().empty()) {
          w.Key("state");
          w.String(e.state().c_str());
        }
        if (!e.reason().empty()) {
          w.Key("reason");
          w.String(e.reason().c_str());
        }
        w.EndObject();
      }
      w.EndArray();
      return respond(json_response(200, sb.GetString()));
    }
    if (parts.size() == 5 && parts[2] == "models" && (parts[4] == "load" || parts[4] == "unload")) {
      if (req.method != "POST") return respond(json_response(405, error_json("Method Not Allowed")));
      auto name = url_decode(parts[3]);
      if (!name.is_ok()) return respond(error_response(name.status()));
      Status named = check_model_name(name.value());
      if (!named.is_ok()) return respond(error_response(named));
      std::string config_json;
      if (!req.body.empty()) {
        rapidjson::Document doc;
        doc.Parse(req.body.data(), req.body.size());
        if (doc.HasParseError() || !doc.IsObject()) {
          return respond(json_response(400, error_json("repository request body must be a JSON object")));
        }
        if (auto p = doc.FindMember("parameters"); p != doc.MemberEnd()) {
          if (!p->value.IsObject()) return respond(json_response(400, error_json("'parameters' must be an object")));
          for (const auto& kv : p->value.GetObject()) {
            std::string key = kv.name.GetString();
            if (key == "config") {
              if (!kv.value.IsString()) return respond(json_response(400, error_json("'config' must be a string")));
              config_json = kv.value.GetString();
            } else if (key.rfind("file:", 0) == 0) {
              return respond(json_response(501, error_json("loading model files from the request is not supported")));
            }
          }
        }
      }
      Status st = parts[4] == "load" ? core_.load_model(name.value(), config_json) : core_.unload_model(name.value());
      if (!st.is_ok()) return respond(error_response(st));
      return respond(empty_response(200));
    }
    respond(json_response(404, error_json("Not Found")));
  }

  void models(HttpRequest& req, const std::vector<std::string_view>& parts, const Responder& respond) {
    if (parts.size() == 3 && parts[2] == "stats") {
      if (req.method != "GET") return respond(json_response(405, error_json("Method Not Allowed")));
      auto stats = model_statistics(core_, "", "");
      return respond(stats.is_ok() ? json_response(200, pb_json(stats.value())) : error_response(stats.status()));
    }
    if (parts.size() < 3) return respond(json_response(404, error_json("Not Found")));
    auto decoded = url_decode(parts[2]);
    if (!decoded.is_ok()) return respond(error_response(decoded.status()));
    std::string name = std::move(decoded).value();
    Status named = check_model_name(name);
    if (!named.is_ok()) return respond(error_response(named));
    size_t i = 3;
    std::string version;
    if (parts.size() > 4 && parts[3] == "versions") {
      version = std::string(parts[4]);
      i = 5;
    } else if (parts.size() == 4 && parts[3] == "versions") {
      return respond(json_response(404, error_json("Not Found")));
    }
    auto v = parse_version(version);
    if (!v.is_ok()) return respond(error_response(v.status()));
    std::string_view action = i < parts.size() ? parts[i] : std::string_view();
    if (i + 1 < parts.size()) return respond(json_response(404, error_json("Not Found")));
    if (action.empty()) {
      if (req.method != "GET") return respond(json_response(405, error_json("Method Not Allowed")));
      auto md = model_metadata(core_, name, version);
      return respond(md.is_ok() ? json_response(200, pb_json(md.value())) : error_response(md.status()));
    }
    if (action == "ready") {
      if (req.method != "GET") return respond(json_response(405, error_json("Method Not Allowed")));
      if (model_ready(core_, name, version)) return respond(empty_response(200));
      return respond(json_response(404, error_json(fmt::format("Request for unknown model: '{}' is not found", name))));
    }
    if (action == "config") {
      if (req.method != "GET") return respond(json_response(405, error_json("Method Not Allowed")));
      auto cfg = model_config(core_, name, version);
      return respond(cfg.is_ok() ? json_response(200, pb_json(cfg.value().config())) : error_response(cfg.status()));
    }
    if (action == "stats") {
      if (req.method != "GET") return respond(json_response(405, error_json("Method Not Allowed")));
      auto stats = model_statistics(core_, name, version);
      return respond(stats.is_ok() ? json_response(200, pb_json(stats.value())) : error_response(stats.status()));
    }
    if (action == "infer") {
      if (req.method != "POST") return respond(json_response(405, error_json("Method Not Allowed")));
      return infer(req, std::move(name), v.value(), respond);
    }
    respond(json_response(404, error_json("Not Found")));
  }

  // Builds the request of a raw binary body (Inference-Header-Content-Length: 0):
  // the whole body is the single input of the model.
  Result<HttpInferRequest> raw_request(const std::string& name, int64_t version, std::string_view body) {
    KILN_ASSIGN_OR_RETURN(auto model, core_.models().get(name, version));
    const auto& config = model->config();
    if (config.input_size() != 1) {
      return invalid_argument("a raw binary request needs a model with exactly one input; '{}' has {}", name,
                              config.input_size());
    }
    const auto& in = config.input(0);
    std::optional<DataType> dtype = dtype_from_config(in.data_type());
    if (!dtype) return invalid_argument("input '{}' has an unsupported datatype", in.name());
    std::vector<int64_t> shape(in.dims().begin(), in.dims().end());
    int variable = -1;
    int64_t known = 1;
    for (size_t k = 0; k < shape.size(); ++k) {
      if (shape[k] < 0) {
        if (variable >= 0) return invalid_argument("a raw binary request needs at most one variable dim in '{}'", in.name());
        variable = static_cast<int>(k);
      } else {
        known *= shape[k];
      }
    }
    if (*dtype == DataType::kString) {
      shape.assign(1, 1);
    } else if (variable >= 0) {
      size_t elem = wire_element_size(*dtype);
      uint64_t row = static_cast<uint64_t>(known) * elem;
      if (row == 0 || body.size() % row != 0) {
        return invalid_argument("raw binary body of {} bytes does not fit input '{}' of shape {}", body.size(), in.name(),
                                shape_string(shape));
      }
      shape[static_cast<size_t>(variable)] = static_cast<int64_t>(body.size() / row);
    }
    if (config.max_batch_size() > 0) shape.insert(shape.begin(), 1);
    HttpInferRequest out;
    KILN_ASSIGN_OR_RETURN(Tensor t, tensor_from_raw(in.name(), *dtype, shape, body));
    out.request.inputs.push_back({in.name(), std::move(t)});
    out.binary_output_default = true;
    return out;
  }

  void infer(HttpRequest& req, std::string name, int64_t version, const Responder& respond) {
    std::string body = std::move(req.body);
    if (const std::string* ce = req.header("content-encoding")) {
      auto enc = parse_content_encoding(*ce);
      if (!enc.is_ok()) {
        HttpResponse r = error_response(enc.status());
        r.headers.emplace_back("Accept-Encoding", "gzip, deflate");
        return respond(std::move(r));
      }
      if (enc.value() != Encoding::kIdentity) {
        auto plain = decompress(body, enc.value(), core_.options().max_request_bytes);
        if (!plain.is_ok()) return respond(error_response(plain.status()));
        body = std::move(plain).value();
      }
    }
    std::optional<size_t> header_length;
    if (const std::string* h = req.header("inference-header-content-length")) {
      size_t value = 0;
      auto [ptr, ec] = std::from_chars(h->data(), h->data() + h->size(), value);
      if (ec != std::errc() || ptr != h->data() + h->size()) {
        return respond(json_response(400, error_json("Inference-Header-Content-Length must be a non-negative integer")));
      }
      header_length = value;
    }
    Result<HttpInferRequest> decoded = header_length && *header_length == 0
                                           ? raw_request(name, version, body)
                                           : decode_infer_request(body, header_length);
    if (!decoded.is_ok()) return respond(error_response(decoded.status()));
    auto state = std::make_shared<HttpInferRequest>(std::move(decoded).value());
    InferRequest request = std::move(state->request);
    request.model_name = std::move(name);
    request.model_version = version;
    Encoding accept = Encoding::kIdentity;
    if (const std::string* ae = req.header("accept-encoding")) accept = choose_response_encoding(*ae);
    core_.infer(std::move(request), [state, accept, respond](Result<InferResponse> result) {
      if (!result.is_ok()) return respond(error_response(result.status()));
      HttpInferBody encoded = encode_infer_response(result.value(), *state);
      HttpResponse r;
      r.status = 200;
      if (encoded.has_binary) {
        r.headers.emplace_back("Content-Type", "application/octet-stream");
        r.headers.emplace_back("Inference-Header-Content-Length", std::to_string(encoded.json_length));
      } else {
        r.headers.emplace_back("Content-Type", "application/json");
      }
      if (accept != Encoding::kIdentity) {
        auto packed = compress(encoded.body, accept);
        if (packed.is_ok()) {
          r.body = std::move(packed).value();
          r.headers.emplace_back("Content-Encoding", encoding_name(accept));
          return respond(std::move(r));
        }
      }
      r.body = std::move(encoded.body);
      respond(std::move(r));
    });
  }

  ServerCore& core_;
};

}  // namespace

HttpHandler make_http_api(ServerCore& core) {
  auto api = std::make_shared<HttpApi>(core);
  return [api](HttpRequest req, Responder respond) { api->handle(std::move(req), std::move(respond)); };
}

HttpHandler make_metrics_api(ServerCore& core) {
  return [&core](HttpRequest req, Responder respond) {
    std::string_view target = req.target;
    target = target.substr(0, target.find('?'));
    if (target != "/metrics") return respond(json_response(404, error_json("Not Found")));
    if (req.method != "GET") return respond(json_response(405, error_json("Method Not Allowed")));
    HttpResponse r;
    r.status = 200;
    r.body = render_metrics(core);
    r.headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
    respond(std::move(r));
  };
}

}  // namespace kiln::server
