#include "client/http_infer.h"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstring>

#include "client/wire.h"
#include "core/error.h"
#include "core/float_types.h"

namespace kiln::client {
namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

template <class T>
T load(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

template <class T>
void store(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof(T));
}

// Writes one element of `dtype` at `e` (wire form) as a JSON value.
void write_json_element(Writer& w, DataType dtype, const char* e) {
  switch (dtype) {
    case DataType::kBool:
      w.Bool(*e != 0);
      break;
    case DataType::kUInt8:
      w.Uint(load<uint8_t>(e));
      break;
    case DataType::kUInt16:
      w.Uint(load<uint16_t>(e));
      break;
    case DataType::kUInt32:
      w.Uint(load<uint32_t>(e));
      break;
    case DataType::kUInt64:
      w.Uint64(load<uint64_t>(e));
      break;
    case DataType::kInt8:
      w.Int(load<int8_t>(e));
      break;
    case DataType::kInt16:
      w.Int(load<int16_t>(e));
      break;
    case DataType::kInt32:
      w.Int(load<int32_t>(e));
      break;
    case DataType::kInt64:
      w.Int64(load<int64_t>(e));
      break;
    case DataType::kFloat32:
      w.Double(static_cast<double>(load<float>(e)));
      break;
    case DataType::kFloat64:
      w.Double(load<double>(e));
      break;
    case DataType::kFloat16:
      w.Double(static_cast<double>(static_cast<float>(Float16::from_bits(load<uint16_t>(e)))));
      break;
    case DataType::kBFloat16:
      w.Double(static_cast<double>(static_cast<float>(BFloat16::from_bits(load<uint16_t>(e)))));
      break;
    default:
      w.Null();
      break;  // not a protocol type; rejected before
  }
}

// Writes wire-form `data` of `datatype` as a flat JSON array.
Status write_json_data(Writer& w, const InferInput& in) {
  const std::string& dt = in.datatype;
  const char* p = in.data.data();
  size_t size = wire_element_size(dt);
  w.StartArray();
  if (dt == "BYTES") {
    size_t pos = 0;
    while (pos + 4 <= in.data.size()) {
      uint32_t len = load<uint32_t>(p + pos);
      pos += 4;
      w.String(p + pos, len);
      pos += len;
    }
  } else {
    DataType dtype = *dtype_from_protocol(dt);  // checked by check_wire_size
    for (size_t off = 0; off + size <= in.data.size(); off += size) write_json_element(w, dtype, p + off);
  }
  w.EndArray();
  return Status::ok();
}

// Appends one JSON element of tensor `name` to `out` in wire form.
Status append_json_element(const std::string& name, const std::string& dt, const rapidjson::Value& v,
                           std::string& out) {
  auto bad = [&] { return invalid_argument("tensor '{}': a JSON element does not fit datatype {}", name, dt); };
  if (dt == "BYTES") {
    if (!v.IsString()) return bad();
    append_bytes_element(out, std::string_view(v.GetString(), v.GetStringLength()));
  } else if (dt == "BOOL") {
    if (!v.IsBool()) return bad();
    out.push_back(v.GetBool() ? 1 : 0);
  } else if (dt == "FP32" || dt == "FP64" || dt == "FP16" || dt == "BF16") {
    if (!v.IsNumber()) return bad();
    if (dt == "FP32")
      store(out, static_cast<float>(v.GetDouble()));
    else if (dt == "FP64")
      store(out, v.GetDouble());
    else if (dt == "FP16")
      store(out, Float16(static_cast<float>(v.GetDouble())).bits);
    else
      store(out, BFloat16(static_cast<float>(v.GetDouble())).bits);
  } else if (dt[0] == 'U') {
    if (!v.IsUint64()) return bad();
    uint64_t x = v.GetUint64();
    if (dt == "UINT8")
      store(out, static_cast<uint8_t>(x));
    else if (dt == "UINT16")
      store(out, static_cast<uint16_t>(x));
    else if (dt == "UINT32")
      store(out, static_cast<uint32_t>(x));
    else
      store(out, x);
  } else {
    if (!v.IsInt64()) return bad();
    int64_t x = v.GetInt64();
    if (dt == "INT8")
      store(out, static_cast<int8_t>(x));
    else if (dt == "INT16")
      store(out, static_cast<int16_t>(x));
    else if (dt == "INT32")
      store(out, static_cast<int32_t>(x));
    else
      store(out, x);
  }
  return Status::ok();
}

std::string json_string(const rapidjson::Value& obj, const char* key) {
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd() || !it->value.IsString()) return {};
  return std::string(it->value.GetString(), it->value.GetStringLength());
}

}  // namespace

Status append_json_data(const std::string& name, const std::string& dt, const rapidjson::Value& v, std::string& out,
                        int depth) {
  if (depth > 64) return invalid_argument("tensor '{}': \"data\" is nested too deeply", name);
  if (!v.IsArray()) return append_json_element(name, dt, v, out);
  for (const auto& e : v.GetArray()) KILN_RETURN_IF_ERROR(append_json_data(name, dt, e, out, depth + 1));
  return Status::ok();
}

Result<HttpInferBody> build_http_infer_body(const std::vector<InferInput>& inputs, const InferOptions& options) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.StartObject();
  if (!options.request_id.empty()) {
    w.Key("id");
    w.String(options.request_id.c_str());
  }
  bool any_binary = false;
  w.Key("inputs");
  w.StartArray();
  for (const InferInput& in : inputs) {
    KILN_RETURN_IF_ERROR(check_wire_size("input '" + in.name + "'", in.datatype, in.shape, in.data));
    w.StartObject();
    w.Key("name");
    w.String(in.name.c_str());
    w.Key("shape");
    w.StartArray();
    for (int64_t d : in.shape) w.Int64(d);
    w.EndArray();
    w.Key("datatype");
    w.String(in.datatype.c_str());
    if (options.binary_inputs) {
      any_binary = true;
      w.Key("parameters");
      w.StartObject();
      w.Key("binary_data_size");
      w.Uint64(in.data.size());
      w.EndObject();
    } else {
      w.Key("data");
      KILN_RETURN_IF_ERROR(write_json_data(w, in));
    }
    w.EndObject();
  }
  w.EndArray();
  if (!options.outputs.empty()) {
    w.Key("outputs");
    w.StartArray();
    for (const std::string& name : options.outputs) {
      w.StartObject();
      w.Key("name");
      w.String(name.c_str());
      w.Key("parameters");
      w.StartObject();
      w.Key("binary_data");
      w.Bool(options.binary_outputs);
      w.EndObject();
      w.EndObject();
    }
    w.EndArray();
  }
  bool has_params = options.outputs.empty() || options.priority || options.timeout_us;
  if (has_params) {
    w.Key("parameters");
    w.StartObject();
    if (options.outputs.empty()) {
      w.Key("binary_data_output");
      w.Bool(options.binary_outputs);
    }
    if (options.priority) {
      w.Key("priority");
      w.Uint64(options.priority);
    }
    if (options.timeout_us) {
      w.Key("timeout");
      w.Uint64(options.timeout_us);
    }
    w.EndObject();
  }
  w.EndObject();
  HttpInferBody out;
  out.body.assign(buf.GetString(), buf.GetSize());
  if (any_binary) {
    out.header_length = out.body.size();
    size_t total = out.body.size();
    for (const InferInput& in : inputs) total += in.data.size();
    out.body.reserve(total);
    for (const InferInput& in : inputs) out.body += in.data;
  }
  return out;
}

Result<InferResult> parse_http_infer_response(std::string_view body, std::optional<size_t> header_length) {
  size_t json_len = header_length.value_or(body.size());
  if (json_len > body.size()) {
    return invalid_argument("response: Inference-Header-Content-Length {} exceeds the body's {} bytes", json_len,
                            body.size());
  }
  rapidjson::Document doc;
  doc.Parse(body.data(), json_len);
  if (doc.HasParseError() || !doc.IsObject()) {
    return invalid_argument("response: not a JSON object (at offset {}: {})", doc.GetErrorOffset(),
                            doc.HasParseError() ? rapidjson::GetParseError_En(doc.GetParseError()) : "not an object");
  }
  InferResult result;
  result.model_name = json_string(doc, "model_name");
  result.model_version = json_string(doc, "model_version");
  result.id = json_string(doc, "id");
  auto outs = doc.FindMember("outputs");
  if (outs == doc.MemberEnd()) return result;
  if (!outs->value.IsArray()) return invalid_argument("response: \"outputs\" is not an array");
  size_t pos = json_len;
  for (const auto& o : outs->value.GetArray()) {
    if (!o.IsObject()) return invalid_argument("response: an output is not an object");
    InferOutput out;
    out.name = json_string(o, "name");
    out.datatype = json_string(o, "datatype");
    auto shape = o.FindMember("shape");
    if (shape == o.MemberEnd() || !shape->value.IsArray()) {
      return invalid_argument("response: output '{}' has no \"shape\" array", out.name);
    }
    for (const auto& d : shape->value.GetArray()) {
      if (!d.IsInt64()) return invalid_argument("response: output '{}' has a non-integer dim", out.name);
      out.shape.push_back(d.GetInt64());
    }
    std::optional<uint64_t> binary_size;
    auto params = o.FindMember("parameters");
    if (params != o.MemberEnd() && params->value.IsObject()) {
      auto bs = params->value.FindMember("binary_data_size");
      if (bs != params->value.MemberEnd() && bs->value.IsUint64()) binary_size = bs->value.GetUint64();
    }
    if (binary_size) {
      if (*binary_size > body.size() - pos) {
        return invalid_argument("response: output '{}' has binary_data_size {} but only {} bytes remain", out.name,
                                *binary_size, body.size() - pos);
      }
      out.data.assign(body.substr(pos, *binary_size));
      pos += *binary_size;
    } else {
      auto data = o.FindMember("data");
      if (data == o.MemberEnd())
        return invalid_argument("response: output '{}' has neither data nor binary data", out.name);
      KILN_RETURN_IF_ERROR(append_json_data(out.name, out.datatype, data->value, out.data));
    }
    KILN_RETURN_IF_ERROR(check_wire_size("output '" + out.name + "'", out.datatype, out.shape, out.data));
    result.outputs.push_back(std::move(out));
  }
  return result;
}

}  // namespace kiln::client
