#include "server/http/infer_json.h"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/float_types.h"
#include "server/tensor_codec.h"
#include "server/types.h"

namespace kiln::server {
namespace {

Status fill_from_json(const std::vector<const rapidjson::Value*>& items, Tensor& t, const std::string& name);

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer, rapidjson::UTF8<>, rapidjson::UTF8<>,
                                     rapidjson::CrtAllocator, rapidjson::kWriteNanAndInfFlag>;

// Collects the leaves of a (possibly nested) JSON array, at most `limit`.
Status flatten(const rapidjson::Value& v, std::vector<const rapidjson::Value*>& out, size_t limit, int depth,
               const std::string& name) {
  if (depth > 64) return invalid_argument("input '{}': data is nested too deeply", name);
  if (!v.IsArray()) {
    if (out.size() >= limit) {
      return invalid_argument("input '{}': data has more elements than its shape allows ({})", name, limit);
    }
    out.push_back(&v);
    return Status::ok();
  }
  for (const auto& e : v.GetArray()) KILN_RETURN_IF_ERROR(flatten(e, out, limit, depth + 1, name));
  return Status::ok();
}

template <class T>
Status integers_from_json(const std::vector<const rapidjson::Value*>& items, Tensor& t, const std::string& name) {
  T* dst = t.data<T>();
  for (size_t i = 0; i < items.size(); ++i) {
    const rapidjson::Value& v = *items[i];
    if (std::is_signed_v<T> && v.IsInt64()) {
      int64_t x = v.GetInt64();
      if (x < static_cast<int64_t>(std::numeric_limits<T>::min()) || x > static_cast<int64_t>(std::numeric_limits<T>::max())) {
        return invalid_argument("input '{}': element {} ({}) is out of range of its datatype", name, i, x);
      }
      dst[i] = static_cast<T>(x);
    } else if (v.IsUint64()) {
      uint64_t x = v.GetUint64();
      if (x > static_cast<uint64_t>(std::numeric_limits<T>::max())) {
        return invalid_argument("input '{}': element {} ({}) is out of range of its datatype", name, i, x);
      }
      dst[i] = static_cast<T>(x);
    } else {
      return invalid_argument("input '{}': element {} is not an integer of the right sign", name, i);
    }
  }
  return Status::ok();
}

// Counts the data's elements before allocating, so a huge declared shape costs nothing.
Status fill_from_json(const std::vector<const rapidjson::Value*>& items, Tensor& t, const std::string& name) {
  size_t numel = items.size();
  auto float_at = [&](size_t i, double& out) -> Status {
    if (!items[i]->IsNumber()) return invalid_argument("input '{}': element {} is not a number", name, i);
    out = items[i]->GetDouble();
    return Status::ok();
  };
  switch (t.dtype()) {
    case DataType::kBool: {
      bool* dst = t.data<bool>();
      for (size_t i = 0; i < numel; ++i) {
        if (!items[i]->IsBool()) return invalid_argument("input '{}': element {} is not true or false", name, i);
        dst[i] = items[i]->GetBool();
      }
      return Status::ok();
    }
    case DataType::kUInt8:
      return integers_from_json<uint8_t>(items, t, name);
    case DataType::kUInt16:
      return integers_from_json<uint16_t>(items, t, name);
    case DataType::kUInt32:
      return integers_from_json<uint32_t>(items, t, name);
    case DataType::kUInt64:
      return integers_from_json<uint64_t>(items, t, name);
    case DataType::kInt8:
      return integers_from_json<int8_t>(items, t, name);
    case DataType::kInt16:
      return integers_from_json<int16_t>(items, t, name);
    case DataType::kInt32:
      return integers_from_json<int32_t>(items, t, name);
    case DataType::kInt64:
      return integers_from_json<int64_t>(items, t, name);
    case DataType::kFloat32:
      for (size_t i = 0; i < numel; ++i) {
        double x = 0;
        KILN_RETURN_IF_ERROR(float_at(i, x));
        t.data<float>()[i] = static_cast<float>(x);
      }
      return Status::ok();
    case DataType::kFloat64:
      for (size_t i = 0; i < numel; ++i) KILN_RETURN_IF_ERROR(float_at(i, t.data<double>()[i]));
      return Status::ok();
    case DataType::kFloat16:
      for (size_t i = 0; i < numel; ++i) {
        double x = 0;
        KILN_RETURN_IF_ERROR(float_at(i, x));
        t.data<uint16_t>()[i] = Float16::from_float(static_cast<float>(x));
      }
      return Status::ok();
    case DataType::kBFloat16:
      for (size_t i = 0; i < numel; ++i) {
        double x = 0;
        KILN_RETURN_IF_ERROR(float_at(i, x));
        t.data<uint16_t>()[i] = BFloat16::from_float(static_cast<float>(x));
      }
      return Status::ok();
    case DataType::kString:
      for (size_t i = 0; i < numel; ++i) {
        if (!items[i]->IsString()) return invalid_argument("input '{}': element {} is not a string", name, i);
        t.data<std::string>()[i].assign(items[i]->GetString(), items[i]->GetStringLength());
      }
      return Status::ok();
    default:
      return invalid_argument("input '{}': unsupported datatype", name);
  }
}

Result<Tensor> data_from_json(const rapidjson::Value& data, DataType dtype, const std::vector<int64_t>& shape,
                              int64_t numel, const std::string& name) {
  std::vector<const rapidjson::Value*> items;
  KILN_RETURN_IF_ERROR(flatten(data, items, static_cast<size_t>(numel), 0, name));
  if (items.size() != static_cast<size_t>(numel)) {
    return invalid_argument("input '{}': shape {} needs {} elements but data has {}", name, shape_string(shape), numel,
                            items.size());
  }
  KILN_ASSIGN_OR_RETURN(Tensor t, Tensor::allocate(dtype, shape));
  KILN_RETURN_IF_ERROR(fill_from_json(items, t, name));
  return t;
}

Result<std::vector<int64_t>> read_shape(const rapidjson::Value& v, const std::string& name) {
  if (!v.IsArray()) return invalid_argument("input '{}': 'shape' must be an array of integers", name);
  if (v.Size() > 64) return invalid_argument("input '{}': shape has more than 64 dimensions", name);
  std::vector<int64_t> shape;
  for (const auto& d : v.GetArray()) {
    if (!d.IsInt64() || d.GetInt64() < 0) {
      return invalid_argument("input '{}': shape must hold non-negative integers", name);
    }
    shape.push_back(d.GetInt64());
  }
  return shape;
}

Status read_shm_params(const rapidjson::Value& params, const std::string& what, std::optional<ShmRef>& out) {
  auto region = params.FindMember("shared_memory_region");
  auto size = params.FindMember("shared_memory_byte_size");
  auto offset = params.FindMember("shared_memory_offset");
  if (region == params.MemberEnd()) {
    if (size != params.MemberEnd() || offset != params.MemberEnd()) {
      return invalid_argument("{}: shared_memory_byte_size / shared_memory_offset need shared_memory_region", what);
    }
    return Status::ok();
  }
  if (!region->value.IsString()) return invalid_argument("{}: shared_memory_region must be a string", what);
  if (size == params.MemberEnd() || !size->value.IsUint64()) {
    return invalid_argument("{}: shared_memory_byte_size must be given as a non-negative integer", what);
  }
  ShmRef ref;
  ref.region.assign(region->value.GetString(), region->value.GetStringLength());
  ref.byte_size = size->value.GetUint64();
  if (offset != params.MemberEnd()) {
    if (!offset->value.IsUint64()) return invalid_argument("{}: shared_memory_offset must be a non-negative integer", what);
    ref.offset = offset->value.GetUint64();
  }
  out = std::move(ref);
  return Status::ok();
}

Status read_request_parameters(const rapidjson::Value& params, HttpInferRequest& out) {
  if (!params.IsObject()) return invalid_argument("'parameters' must be a JSON object");
  for (const auto& m : params.GetObject()) {
    std::string key(m.name.GetString(), m.name.GetStringLength());
    const rapidjson::Value& v = m.value;
    if (key.rfind("triton_", 0) == 0) {
      return invalid_argument("parameter keys starting with 'triton_' are reserved for the server, got '{}'", key);
    }
    if (key == "binary_data_output") {
      if (!v.IsBool()) return invalid_argument("parameter 'binary_data_output' must be a boolean");
      out.binary_output_default = v.GetBool();
    } else if (key == "priority") {
      if (!v.IsUint64()) return invalid_argument("parameter 'priority' must be a non-negative integer");
      out.request.priority = v.GetUint64();
    } else if (key == "timeout") {
      if (!v.IsUint64()) return invalid_argument("parameter 'timeout' must be a non-negative integer (microseconds)");
      out.request.timeout_us = v.GetUint64();
    } else if (key == "sequence_id") {
      if (v.IsUint64()) {
        out.request.sequence_id.number = v.GetUint64();
      } else if (v.IsString()) {
        out.request.sequence_id.is_string = true;
        out.request.sequence_id.text.assign(v.GetString(), v.GetStringLength());
      } else {
        return invalid_argument("parameter 'sequence_id' must be a non-negative integer or a string");
      }
    } else if (key == "sequence_start" || key == "sequence_end") {
      if (!v.IsBool()) return invalid_argument("parameter '{}' must be a boolean", key);
      (key == "sequence_start" ? out.request.sequence_start : out.request.sequence_end) = v.GetBool();
    }
    // Other keys are custom parameters; Kiln's models take none, so they are ignored.
  }
  return Status::ok();
}

}  // namespace

std::string error_json(const std::string& message) {
  rapidjson::StringBuffer sb;
  JsonWriter w(sb);
  w.StartObject();
  w.Key("error");
  w.String(message.data(), static_cast<rapidjson::SizeType>(message.size()));
  w.EndObject();
  return sb.GetString();
}

Result<HttpInferRequest> decode_infer_request(std::string_view body, std::optional<size_t> header_length) {
  size_t json_len = body.size();
  if (header_length) {
    if (*header_length > body.size()) {
      return invalid_argument("Inference-Header-Content-Length {} is larger than the body ({} bytes)", *header_length,
                              body.size());
    }
    json_len = *header_length;
  }
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseStopWhenDoneFlag>(body.data(), json_len);
  if (doc.HasParseError()) {
    return invalid_argument("failed to parse the request JSON buffer: {} at {}",
                            rapidjson::GetParseError_En(doc.GetParseError()), doc.GetErrorOffset());
  }
  if (!doc.IsObject()) return invalid_argument("the inference request must be a JSON object");
  HttpInferRequest out;
  if (auto it = doc.FindMember("id"); it != doc.MemberEnd()) {
    if (!it->value.IsString()) return invalid_argument("'id' must be a string");
    out.request.id.assign(it->value.GetString(), it->value.GetStringLength());
  }
  if (auto it = doc.FindMember("parameters"); it != doc.MemberEnd()) {
    KILN_RETURN_IF_ERROR(read_request_parameters(it->value, out));
  }
  auto inputs = doc.FindMember("inputs");
  if (inputs == doc.MemberEnd() || !inputs->value.IsArray()) {
    return invalid_argument("the inference request needs an 'inputs' array");
  }
  std::string_view binary = body.substr(json_len);
  size_t binary_pos = 0;
  for (const auto& in : inputs->value.GetArray()) {
    if (!in.IsObject()) return invalid_argument("every element of 'inputs' must be an object");
    auto name_it = in.FindMember("name");
    if (name_it == in.MemberEnd() || !name_it->value.IsString()) return invalid_argument("an input has no 'name'");
    std::string name(name_it->value.GetString(), name_it->value.GetStringLength());
    auto dt_it = in.FindMember("datatype");
    if (dt_it == in.MemberEnd() || !dt_it->value.IsString()) {
      return invalid_argument("input '{}' has no 'datatype'", name);
    }
    std::optional<DataType> dtype = dtype_from_protocol(dt_it->value.GetString());
    if (!dtype) return invalid_argument("input '{}': unknown datatype '{}'", name, dt_it->value.GetString());
    auto shape_it = in.FindMember("shape");
    if (shape_it == in.MemberEnd()) return invalid_argument("input '{}' has no 'shape'", name);
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> shape, read_shape(shape_it->value, name));
    KILN_ASSIGN_OR_RETURN(int64_t numel, checked_request_numel(name, shape));
    std::optional<uint64_t> binary_size;
    std::optional<ShmRef> shm;
    if (auto p = in.FindMember("parameters"); p != in.MemberEnd()) {
      if (!p->value.IsObject()) return invalid_argument("input '{}': 'parameters' must be an object", name);
      if (auto b = p->value.FindMember("binary_data_size"); b != p->value.MemberEnd()) {
        if (!b->value.IsUint64()) return invalid_argument("input '{}': binary_data_size must be a non-negative integer", name);
        binary_size = b->value.GetUint64();
      }
      KILN_RETURN_IF_ERROR(read_shm_params(p->value, "input '" + name + "'", shm));
    }
    auto data_it = in.FindMember("data");
    Tensor tensor;
    if (shm) {
      if (binary_size || data_it != in.MemberEnd()) {
        return invalid_argument("input '{}' has shared_memory_region and also data or binary data", name);
      }
      InferInput input;
      input.name = std::move(name);
      input.shm = std::move(shm);
      input.shm_dtype = *dtype;
      input.shm_shape = std::move(shape);
      out.request.inputs.push_back(std::move(input));
      continue;
    }
    if (binary_size) {
      if (data_it != in.MemberEnd()) return invalid_argument("input '{}' has both 'data' and binary_data_size", name);
      if (!header_length) {
        return invalid_argument("input '{}' uses binary data but Inference-Header-Content-Length is missing", name);
      }
      if (*binary_size > binary.size() - binary_pos) {
        return invalid_argument(
            "input '{}': binary_data_size {} is more than the {} bytes of binary data left in the body (truncated?)",
            name, *binary_size, binary.size() - binary_pos);
      }
      KILN_ASSIGN_OR_RETURN(tensor, tensor_from_raw(name, *dtype, shape, binary.substr(binary_pos, *binary_size)));
      binary_pos += *binary_size;
    } else {
      if (data_it == in.MemberEnd()) return invalid_argument("input '{}' has neither 'data' nor binary data", name);
      KILN_ASSIGN_OR_RETURN(tensor, data_from_json(data_it->value, *dtype, shape, numel, name));
    }
    out.request.inputs.push_back({std::move(name), std::move(tensor)});
  }
  if (binary_pos != binary.size()) {
    return invalid_argument("the request body holds {} bytes of binary data but its inputs declare {}", binary.size(),
                            binary_pos);
  }
  if (auto outs = doc.FindMember("outputs"); outs != doc.MemberEnd()) {
    if (!outs->value.IsArray()) return invalid_argument("'outputs' must be an array");
    for (const auto& o : outs->value.GetArray()) {
      if (!o.IsObject()) return invalid_argument("every element of 'outputs' must be an object");
      auto n = o.FindMember("name");
      if (n == o.MemberEnd() || !n->value.IsString()) return invalid_argument("a requested output has no 'name'");
      std::string name(n->value.GetString(), n->value.GetStringLength());
      if (auto p = o.FindMember("parameters"); p != o.MemberEnd()) {
        if (!p->value.IsObject()) return invalid_argument("output '{}': 'parameters' must be an object", name);
        if (auto b = p->value.FindMember("binary_data"); b != p->value.MemberEnd()) {
          if (!b->value.IsBool()) return invalid_argument("output '{}': binary_data must be a boolean", name);
          out.binary_output[name] = b->value.GetBool();
        }
        if (auto c = p->value.FindMember("classification"); c != p->value.MemberEnd()) {
          if (!c->value.IsInt64() || c->value.GetInt64() < 0) {
            return invalid_argument("output '{}': classification must be a non-negative integer", name);
          }
          if (c->value.GetInt64() > 0) out.request.output_classes[name] = c->value.GetInt64();
        }
        std::optional<ShmRef> shm;
        KILN_RETURN_IF_ERROR(read_shm_params(p->value, "output '" + name + "'", shm));
        if (shm) out.request.output_shm[name] = std::move(*shm);
      }
      out.request.requested_outputs.push_back(std::move(name));
    }
  }
  return out;
}

namespace {

void write_data(JsonWriter& w, const Tensor& t) {
  w.StartArray();
  int64_t n = t.numel();
  switch (t.dtype()) {
    case DataType::kBool:
      for (int64_t i = 0; i < n; ++i) w.Bool(t.data<bool>()[i]);
      break;
    case DataType::kUInt8:
      for (int64_t i = 0; i < n; ++i) w.Uint(t.data<uint8_t>()[i]);
      break;
    case DataType::kUInt16:
      for (int64_t i = 0; i < n; ++i) w.Uint(t.data<uint16_t>()[i]);
      break;
    case DataType::kUInt32:
      for (int64_t i = 0; i < n; ++i) w.Uint(t.data<uint32_t>()[i]);
      break;
    case DataType::kUInt64:
      for (int64_t i = 0; i < n; ++i) w.Uint64(t.data<uint64_t>()[i]);
      break;
    case DataType::kInt8:
      for (int64_t i = 0; i < n; ++i) w.Int(t.data<int8_t>()[i]);
      break;
    case DataType::kInt16:
      for (int64_t i = 0; i < n; ++i) w.Int(t.data<int16_t>()[i]);
      break;
    case DataType::kInt32:
      for (int64_t i = 0; i < n; ++i) w.Int(t.data<int32_t>()[i]);
      break;
    case DataType::kInt64:
      for (int64_t i = 0; i < n; ++i) w.Int64(t.data<int64_t>()[i]);
      break;
    case DataType::kFloat32:
      for (int64_t i = 0; i < n; ++i) w.Double(t.data<float>()[i]);
      break;
    case DataType::kFloat64:
      for (int64_t i = 0; i < n; ++i) w.Double(t.data<double>()[i]);
      break;
    case DataType::kFloat16:
      for (int64_t i = 0; i < n; ++i) w.Double(Float16::to_float(t.data<uint16_t>()[i]));
      break;
    case DataType::kBFloat16:
      for (int64_t i = 0; i < n; ++i) w.Double(BFloat16::to_float(t.data<uint16_t>()[i]));
      break;
    case DataType::kString:
      for (const std::string& s : t.span<std::string>()) w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
      break;
    default:
      break;
  }
  w.EndArray();
}

}  // namespace

HttpInferBody encode_infer_response(const InferResponse& response, const HttpInferRequest& request) {
  rapidjson::StringBuffer sb;
  JsonWriter w(sb);
  std::string binary;
  bool has_binary = false;
  w.StartObject();
  if (!response.id.empty()) {
    w.Key("id");
    w.String(response.id.data(), static_cast<rapidjson::SizeType>(response.id.size()));
  }
  w.Key("model_name");
  w.String(response.model_name.data(), static_cast<rapidjson::SizeType>(response.model_name.size()));
  w.Key("model_version");
  w.String(response.model_version.data(), static_cast<rapidjson::SizeType>(response.model_version.size()));
  w.Key("outputs");
  w.StartArray();
  for (const InferOutput& out : response.outputs) {
    bool as_binary = request.binary_output_default;
    if (auto it = request.binary_output.find(out.name); it != request.binary_output.end()) as_binary = it->second;
    w.StartObject();
    w.Key("name");
    w.String(out.name.data(), static_cast<rapidjson::SizeType>(out.name.size()));
    w.Key("datatype");
    std::string_view dt = protocol_dtype_name(out.tensor.dtype());
    w.String(dt.data(), static_cast<rapidjson::SizeType>(dt.size()));
    w.Key("shape");
    w.StartArray();
    for (int64_t d : out.tensor.dims()) w.Int64(d);
    w.EndArray();
    if (out.shm) {
      w.Key("parameters");
      w.StartObject();
      w.Key("shared_memory_region");
      w.String(out.shm->region.data(), static_cast<rapidjson::SizeType>(out.shm->region.size()));
      w.Key("shared_memory_byte_size");
      w.Uint64(out.shm->byte_size);
      if (out.shm->offset > 0) {
        w.Key("shared_memory_offset");
        w.Uint64(out.shm->offset);
      }
      w.EndObject();
    } else if (as_binary) {
      size_t n = append_raw(out.tensor, binary);
      has_binary = true;
      w.Key("parameters");
      w.StartObject();
      w.Key("binary_data_size");
      w.Uint64(n);
      w.EndObject();
    } else {
      w.Key("data");
      write_data(w, out.tensor);
    }
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  HttpInferBody result;
  result.json_length = sb.GetSize();
  result.body.reserve(sb.GetSize() + binary.size());
  result.body.append(sb.GetString(), sb.GetSize());
  result.body.append(binary);
  result.has_binary = has_binary;
  return result;
}

}  // namespace kiln::server
