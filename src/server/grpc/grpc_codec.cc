#include "server/grpc/grpc_codec.h"

#include <limits>

#include "core/error.h"
#include "server/protocol.h"
#include "server/tensor_codec.h"
#include "server/types.h"

namespace kiln::server {
namespace {

bool has_contents(const inference::InferTensorContents& c) {
  return c.bool_contents_size() || c.int_contents_size() || c.int64_contents_size() || c.uint_contents_size() ||
         c.uint64_contents_size() || c.fp32_contents_size() || c.fp64_contents_size() || c.bytes_contents_size();
}

template <class T, class Field>
Status copy_typed(const Field& field, int64_t numel, Tensor& t, const std::string& name, const char* field_name) {
  if (field.size() != numel) {
    return invalid_argument("input '{}': {} holds {} elements but the shape needs {}", name, field_name, field.size(),
                            numel);
  }
  T* dst = t.data<T>();
  for (int i = 0; i < field.size(); ++i) {
    auto v = field.Get(i);
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
      if (v < static_cast<decltype(v)>(std::numeric_limits<T>::lowest()) ||
          v > static_cast<decltype(v)>(std::numeric_limits<T>::max())) {
        return invalid_argument("input '{}': element {} is out of range of its datatype", name, i);
      }
    }
    dst[i] = static_cast<T>(v);
  }
  return Status::ok();
}

Result<Tensor> tensor_from_contents(const std::string& name, DataType dtype, const std::vector<int64_t>& shape,
                                    int64_t numel, const inference::InferTensorContents& c) {
  // Check the element count against the message before allocating.
  int64_t given = c.bool_contents_size() + c.int_contents_size() + c.int64_contents_size() + c.uint_contents_size() +
                  c.uint64_contents_size() + c.fp32_contents_size() + c.fp64_contents_size() + c.bytes_contents_size();
  if (given != numel) {
    return invalid_argument("input '{}': contents hold {} elements but shape {} needs {}", name, given,
                            shape_string(shape), numel);
  }
  KILN_ASSIGN_OR_RETURN(Tensor t, Tensor::allocate(dtype, shape));
  switch (dtype) {
    case DataType::kBool:
      KILN_RETURN_IF_ERROR(copy_typed<bool>(c.bool_contents(), numel, t, name, "bool_contents"));
      break;
    case DataType::kInt8:
      KILN_RETURN_IF_ERROR(copy_typed<int8_t>(c.int_contents(), numel, t, name, "int_contents"));
      break;
    case DataType::kInt16:
      KILN_RETURN_IF_ERROR(copy_typed<int16_t>(c.int_contents(), numel, t, name, "int_contents"));
      break;
    case DataType::kInt32:
      KILN_RETURN_IF_ERROR(copy_typed<int32_t>(c.int_contents(), numel, t, name, "int_contents"));
      break;
    case DataType::kInt64:
      KILN_RETURN_IF_ERROR(copy_typed<int64_t>(c.int64_contents(), numel, t, name, "int64_contents"));
      break;
    case DataType::kUInt8:
      KILN_RETURN_IF_ERROR(copy_typed<uint8_t>(c.uint_contents(), numel, t, name, "uint_contents"));
      break;
    case DataType::kUInt16:
      KILN_RETURN_IF_ERROR(copy_typed<uint16_t>(c.uint_contents(), numel, t, name, "uint_contents"));
      break;
    case DataType::kUInt32:
      KILN_RETURN_IF_ERROR(copy_typed<uint32_t>(c.uint_contents(), numel, t, name, "uint_contents"));
      break;
    case DataType::kUInt64:
      KILN_RETURN_IF_ERROR(copy_typed<uint64_t>(c.uint64_contents(), numel, t, name, "uint64_contents"));
      break;
    case DataType::kFloat32:
      KILN_RETURN_IF_ERROR(copy_typed<float>(c.fp32_contents(), numel, t, name, "fp32_contents"));
      break;
    case DataType::kFloat64:
      KILN_RETURN_IF_ERROR(copy_typed<double>(c.fp64_contents(), numel, t, name, "fp64_contents"));
      break;
    case DataType::kString: {
      if (c.bytes_contents_size() != numel) {
        return invalid_argument("input '{}': bytes_contents holds {} elements but the shape needs {}", name,
                                c.bytes_contents_size(), numel);
      }
      for (int i = 0; i < c.bytes_contents_size(); ++i) t.data<std::string>()[i] = c.bytes_contents(i);
      break;
    }
    default:
      return invalid_argument("input '{}': {} has no typed contents field; send it in raw_input_contents", name,
                              protocol_dtype_name(dtype));
  }
  return t;
}

// shared_memory_region (string_param), shared_memory_byte_size and shared_memory_offset (int64_param).
Status read_shm_params(const google::protobuf::Map<std::string, inference::InferParameter>& params,
                       const std::string& what, std::optional<ShmRef>& out) {
  auto region = params.find("shared_memory_region");
  auto size = params.find("shared_memory_byte_size");
  auto offset = params.find("shared_memory_offset");
  if (region == params.end()) {
    if (size != params.end() || offset != params.end()) {
      return invalid_argument("{}: shared_memory_byte_size / shared_memory_offset need shared_memory_region", what);
    }
    return Status::ok();
  }
  if (!region->second.has_string_param())
    return invalid_argument("{}: shared_memory_region must be a string_param", what);
  auto non_negative = [&](const inference::InferParameter& p, uint64_t& v) {
    if (p.has_int64_param() && p.int64_param() >= 0) {
      v = static_cast<uint64_t>(p.int64_param());
      return true;
    }
    if (p.has_uint64_param()) {
      v = p.uint64_param();
      return true;
    }
    return false;
  };
  ShmRef ref;
  ref.region = region->second.string_param();
  if (size == params.end() || !non_negative(size->second, ref.byte_size)) {
    return invalid_argument("{}: shared_memory_byte_size must be given as a non-negative int64_param", what);
  }
  if (offset != params.end() && !non_negative(offset->second, ref.offset)) {
    return invalid_argument("{}: shared_memory_offset must be a non-negative int64_param", what);
  }
  out = std::move(ref);
  return Status::ok();
}

Status read_parameters(const google::protobuf::Map<std::string, inference::InferParameter>& params, InferRequest& out) {
  for (const auto& [key, p] : params) {
    if (key == "priority") {
      if (p.has_uint64_param()) {
        out.priority = p.uint64_param();
      } else if (p.has_int64_param() && p.int64_param() >= 0) {
        out.priority = static_cast<uint64_t>(p.int64_param());
      } else {
        return invalid_argument("parameter 'priority' must be a non-negative int64_param or uint64_param");
      }
    } else if (key == "timeout") {
      if (!p.has_int64_param() || p.int64_param() < 0) {
        return invalid_argument("parameter 'timeout' must be a non-negative int64_param (microseconds)");
      }
      out.timeout_us = static_cast<uint64_t>(p.int64_param());
    } else if (key == "sequence_id") {
      if (p.has_int64_param()) {
        out.sequence_id.number = static_cast<uint64_t>(p.int64_param());
      } else if (p.has_uint64_param()) {
        out.sequence_id.number = p.uint64_param();
      } else if (p.has_string_param()) {
        out.sequence_id.is_string = true;
        out.sequence_id.text = p.string_param();
      } else {
        return invalid_argument("parameter 'sequence_id' must be an int64_param or a string_param");
      }
    } else if (key == "triton_enable_empty_final_response") {
      if (!p.has_bool_param()) return invalid_argument("parameter '{}' must be a bool_param", key);
      out.empty_final_response = p.bool_param();
    } else if (key == "sequence_start" || key == "sequence_end") {
      if (!p.has_bool_param()) return invalid_argument("parameter '{}' must be a bool_param", key);
      (key == "sequence_start" ? out.sequence_start : out.sequence_end) = p.bool_param();
    }
  }
  return Status::ok();
}

}  // namespace

Result<InferRequest> decode_grpc_request(const inference::ModelInferRequest& request) {
  InferRequest out;
  out.model_name = request.model_name();
  KILN_ASSIGN_OR_RETURN(out.model_version, parse_version(request.model_version()));
  out.id = request.id();
  KILN_RETURN_IF_ERROR(read_parameters(request.parameters(), out));
  int raw_index = 0;
  for (const auto& in : request.inputs()) {
    std::optional<DataType> dtype = dtype_from_protocol(in.datatype());
    if (!dtype) return invalid_argument("input '{}': unknown datatype '{}'", in.name(), in.datatype());
    std::vector<int64_t> shape(in.shape().begin(), in.shape().end());
    KILN_ASSIGN_OR_RETURN(int64_t numel, checked_request_numel(in.name(), shape));
    std::optional<ShmRef> shm;
    KILN_RETURN_IF_ERROR(read_shm_params(in.parameters(), "input '" + in.name() + "'", shm));
    if (shm) {
      if (has_contents(in.contents())) {
        return invalid_argument("input '{}' has shared_memory_region and also contents", in.name());
      }
      InferInput input;
      input.name = in.name();
      input.shm = std::move(shm);
      input.shm_dtype = *dtype;
      input.shm_shape = std::move(shape);
      out.inputs.push_back(std::move(input));
      continue;
    }
    Tensor t;
    if (has_contents(in.contents())) {
      if (request.raw_input_contents_size() > 0) {
        return invalid_argument("contents field must not be specified when using raw_input_contents for '{}'",
                                in.name());
      }
      KILN_ASSIGN_OR_RETURN(t, tensor_from_contents(in.name(), *dtype, shape, numel, in.contents()));
    } else {
      if (raw_index >= request.raw_input_contents_size()) {
        return invalid_argument("input '{}' has no data: neither contents nor a raw_input_contents entry", in.name());
      }
      KILN_ASSIGN_OR_RETURN(t, tensor_from_raw(in.name(), *dtype, shape, request.raw_input_contents(raw_index)));
      ++raw_index;
    }
    out.inputs.push_back({in.name(), std::move(t)});
  }
  if (raw_index != request.raw_input_contents_size()) {
    return invalid_argument("the request has {} raw_input_contents entries but its inputs use {}",
                            request.raw_input_contents_size(), raw_index);
  }
  for (const auto& o : request.outputs()) {
    if (auto it = o.parameters().find("classification"); it != o.parameters().end()) {
      if (it->second.parameter_choice_case() != inference::InferParameter::kInt64Param ||
          it->second.int64_param() < 0) {
        return invalid_argument("output '{}': classification must be a non-negative int64_param", o.name());
      }
      if (it->second.int64_param() > 0) out.output_classes[o.name()] = it->second.int64_param();
    }
    std::optional<ShmRef> shm;
    KILN_RETURN_IF_ERROR(read_shm_params(o.parameters(), "output '" + o.name() + "'", shm));
    if (shm) out.output_shm[o.name()] = std::move(*shm);
    out.requested_outputs.push_back(o.name());
  }
  return out;
}

void encode_grpc_response(const InferResponse& response, inference::ModelInferResponse* out) {
  out->set_model_name(response.model_name);
  out->set_model_version(response.model_version);
  out->set_id(response.id);
  for (const InferOutput& o : response.outputs) {
    auto* t = out->add_outputs();
    t->set_name(o.name);
    t->set_datatype(std::string(protocol_dtype_name(o.tensor.dtype())));
    for (int64_t d : o.tensor.dims()) t->add_shape(d);
    std::string* raw = out->add_raw_output_contents();  // empty for an output in shared memory
    if (!o.shm) {
      append_raw(o.tensor, *raw);
      continue;
    }
    auto& params = *t->mutable_parameters();
    params["shared_memory_region"].set_string_param(o.shm->region);
    params["shared_memory_byte_size"].set_int64_param(static_cast<int64_t>(o.shm->byte_size));
    if (o.shm->offset > 0) params["shared_memory_offset"].set_int64_param(static_cast<int64_t>(o.shm->offset));
  }
}

grpc::Status to_grpc_status(const Status& status) {
  grpc::StatusCode code;
  switch (status.code()) {
    case StatusCode::kOk:
      return grpc::Status::OK;
    case StatusCode::kNotFound:
      code = grpc::StatusCode::NOT_FOUND;
      break;
    case StatusCode::kUnimplemented:
      code = grpc::StatusCode::UNIMPLEMENTED;
      break;
    case StatusCode::kUnavailable:
      code = grpc::StatusCode::UNAVAILABLE;
      break;
    case StatusCode::kResourceExhausted:
      code = grpc::StatusCode::RESOURCE_EXHAUSTED;
      break;
    case StatusCode::kInternal:
    case StatusCode::kIoError:
      code = grpc::StatusCode::INTERNAL;
      break;
    default:
      code = grpc::StatusCode::INVALID_ARGUMENT;
      break;
  }
  return grpc::Status(code, status.message());
}

}  // namespace kiln::server
