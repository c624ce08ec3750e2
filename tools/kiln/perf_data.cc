#include "perf_data.h"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include <fstream>
#include <random>
#include <sstream>

#include "client/http_infer.h"
#include "client/wire.h"
#include "core/error.h"
#include "core/float_types.h"

namespace kiln::cli {
namespace {

using client::InferInput;

struct InputSpec {
  std::string name;
  std::string datatype;
  Dims item_shape;  // without the batch dim
  bool batched = false;
};

Result<Dims> parse_dims(const std::string& text, const std::string& what) {
  Dims dims;
  std::stringstream ss(text);
  std::string part;
  while (std::getline(ss, part, ',')) {
    if (part.empty() || part.find_first_not_of("0123456789") != std::string::npos || part.size() > 12) {
      return invalid_argument("{}: '{}' is not a dim (expected non-negative integers separated by ',')", what, part);
    }
    dims.push_back(std::stoll(part));
  }
  if (dims.empty()) return invalid_argument("{}: no dims", what);
  return dims;
}

// The shape of each input for one batch item, with --shape filling variable dims.
// With `data_file`, variable dims may stay for the file's "shape" entries to fill.
Result<std::vector<InputSpec>> resolve_inputs(const client::ModelMetadata& md, int64_t max_batch_size,
                                              const PerfDataOptions& options, bool data_file) {
  std::vector<InputSpec> specs;
  for (const auto& [name, dims] : options.shapes) {
    bool known = false;
    for (const auto& in : md.inputs) known = known || in.name == name;
    if (!known) {
      std::string names;
      for (const auto& in : md.inputs) names += (names.empty() ? "" : ", ") + in.name;
      return invalid_argument("--shape {}: model '{}' has no input '{}' (inputs: {})", name, md.name, name, names);
    }
  }
  for (const auto& in : md.inputs) {
    InputSpec spec{in.name, in.datatype, in.shape, max_batch_size > 0};
    if (spec.batched) {
      if (spec.item_shape.empty()) return invalid_argument("input '{}' has no batch dim in the metadata", in.name);
      spec.item_shape.erase(spec.item_shape.begin());
    }
    if (!client::dtype_from_protocol(in.datatype)) {
      return unimplemented("input '{}': datatype '{}' is not supported", in.name, in.datatype);
    }
    auto given = options.shapes.find(in.name);
    if (given != options.shapes.end()) {
      const Dims& want = given->second;
      if (want.size() != spec.item_shape.size()) {
        return invalid_argument("--shape {}: {} dims given, the input has {} ({}{})", in.name, want.size(),
                                spec.item_shape.size(), dims_to_string(spec.item_shape),
                                spec.batched ? ", without the batch dim" : "");
      }
      for (size_t i = 0; i < want.size(); ++i) {
        if (spec.item_shape[i] >= 0 && spec.item_shape[i] != want[i]) {
          return invalid_argument("--shape {}: dim {} is {} but the model fixes it to {}", in.name, i, want[i],
                                  spec.item_shape[i]);
        }
      }
      spec.item_shape = want;
    }
    for (int64_t d : spec.item_shape) {
      if (d < 0 && !data_file) {
        return invalid_argument("input '{}' has a variable dim ({}); give its shape with --shape {}:d1,d2,...", in.name,
                                dims_to_string(spec.item_shape), in.name);
      }
    }
    specs.push_back(std::move(spec));
  }
  return specs;
}

// One item's data: random values (floats in [0, 1), integers in [0, 100),
// random letters for BYTES) or zeros ("0" for BYTES).
std::string synth_item(const InputSpec& spec, int64_t numel, bool zero, int64_t string_length, std::mt19937& rng) {
  std::string out;
  const std::string& dt = spec.datatype;
  std::uniform_real_distribution<float> real(0.0f, 1.0f);
  std::uniform_int_distribution<int> small(0, 99);
  auto put = [&](auto v) { out.append(reinterpret_cast<const char*>(&v), sizeof(v)); };
  for (int64_t i = 0; i < numel; ++i) {
    if (dt == "BYTES") {
      std::string s = zero ? "0" : std::string(static_cast<size_t>(string_length), 'a');
      if (!zero) {
        for (char& c : s) c = static_cast<char>('a' + small(rng) % 26);
      }
      client::append_bytes_element(out, s);
    } else if (dt == "FP32") {
      put(zero ? 0.0f : real(rng));
    } else if (dt == "FP64") {
      put(zero ? 0.0 : static_cast<double>(real(rng)));
    } else if (dt == "FP16") {
      put(Float16(zero ? 0.0f : real(rng)).bits);
    } else if (dt == "BF16") {
      put(BFloat16(zero ? 0.0f : real(rng)).bits);
    } else if (dt == "BOOL") {
      put(static_cast<uint8_t>(zero ? 0 : small(rng) % 2));
    } else {
      // Integers: little-endian bytes of a value in [0, 100).
      size_t size = client::wire_element_size(dt);
      uint64_t v = zero ? 0 : static_cast<uint64_t>(small(rng));
      for (size_t b = 0; b < size; ++b) out.push_back(static_cast<char>((v >> (8 * b)) & 0xff));
    }
  }
  return out;
}

Result<std::string> decode_base64(const std::string& what, std::string_view text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    if (c == '=') break;
    int v = value(c);
    if (v < 0) return invalid_argument("{}: \"b64\" holds a character outside base64", what);
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

// One item of one input from a JSON entry, checked against the item shape.
Result<std::pair<Dims, std::string>> json_item(const InputSpec& spec, const rapidjson::Value& v,
                                               const std::string& what) {
  Dims shape = spec.item_shape;
  std::string data;
  if (v.IsObject()) {
    auto shape_it = v.FindMember("shape");
    if (shape_it != v.MemberEnd()) {
      if (!shape_it->value.IsArray()) return invalid_argument("{}: \"shape\" is not an array", what);
      shape.clear();
      for (const auto& d : shape_it->value.GetArray()) {
        if (!d.IsInt64() || d.GetInt64() < 0) return invalid_argument("{}: \"shape\" holds a bad dim", what);
        shape.push_back(d.GetInt64());
      }
    }
    auto content = v.FindMember("content");
    auto b64 = v.FindMember("b64");
    if (content != v.MemberEnd()) {
      KILN_RETURN_IF_ERROR(client::append_json_data(spec.name, spec.datatype, content->value, data));
    } else if (b64 != v.MemberEnd() && b64->value.IsString()) {
      KILN_ASSIGN_OR_RETURN(
          data, decode_base64(what, std::string_view(b64->value.GetString(), b64->value.GetStringLength())));
    } else {
      return invalid_argument("{}: an object needs \"content\" or \"b64\"", what);
    }
  } else if (v.IsArray()) {
    KILN_RETURN_IF_ERROR(client::append_json_data(spec.name, spec.datatype, v, data));
  } else {
    return invalid_argument("{}: expected an array or an object with \"content\" or \"b64\"", what);
  }
  for (int64_t d : shape) {
    if (d < 0) {
      return invalid_argument("{}: the input has a variable dim ({}); give \"shape\" in the data or --shape {}:d1,...",
                              what, dims_to_string(shape), spec.name);
    }
  }
  KILN_RETURN_IF_ERROR(client::check_wire_size(what, spec.datatype, shape, data));
  return std::make_pair(std::move(shape), std::move(data));
}

Result<std::vector<std::vector<InferInput>>> json_inputs(const std::vector<InputSpec>& specs,
                                                         const PerfDataOptions& options) {
  const std::string& path = options.input_data;
  std::ifstream file(path, std::ios::binary);
  if (!file) return not_found("--input-data {}: cannot open the file", path);
  std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  rapidjson::Document doc;
  doc.Parse(text.data(), text.size());
  if (doc.HasParseError()) {
    return invalid_argument("--input-data {}: JSON error at offset {}: {}", path, doc.GetErrorOffset(),
                            rapidjson::GetParseError_En(doc.GetParseError()));
  }
  auto data = doc.IsObject() ? doc.FindMember("data") : doc.MemberEnd();
  if (!doc.IsObject() || data == doc.MemberEnd() || !data->value.IsArray() || data->value.Empty()) {
    return invalid_argument("--input-data {}: expected {{\"data\": [{{\"<input>\": [...]}}, ...]}}", path);
  }
  std::vector<std::vector<InferInput>> sets;
  int64_t index = 0;
  for (const auto& entry : data->value.GetArray()) {
    if (!entry.IsObject()) {
      return unimplemented(
          "--input-data {}: entry {} is not an object (sequence data, a list of steps, is not "
          "supported)",
          path, index);
    }
    std::vector<InferInput> set;
    for (const InputSpec& spec : specs) {
      std::string what = fmt::format("--input-data {}: entry {}, input '{}'", path, index, spec.name);
      auto it = entry.FindMember(spec.name.c_str());
      if (it == entry.MemberEnd()) return invalid_argument("{}: missing", what);
      KILN_ASSIGN_OR_RETURN(auto item, json_item(spec, it->value, what));
      InferInput in{spec.name, spec.datatype, item.first, {}};
      if (spec.batched) {
        in.shape.insert(in.shape.begin(), options.batch_size);
        for (int64_t b = 0; b < options.batch_size; ++b) in.data += item.second;
      } else {
        in.data = std::move(item.second);
      }
      set.push_back(std::move(in));
    }
    sets.push_back(std::move(set));
    ++index;
  }
  return sets;
}

}  // namespace

Result<std::pair<std::string, Dims>> parse_shape_arg(const std::string& arg) {
  size_t colon = arg.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return invalid_argument("--shape {}: expected name:d1,d2,... (e.g. INPUT0:3,224,224)", arg);
  }
  KILN_ASSIGN_OR_RETURN(Dims dims, parse_dims(arg.substr(colon + 1), "--shape " + arg));
  return std::make_pair(arg.substr(0, colon), std::move(dims));
}

Result<std::vector<std::vector<InferInput>>> make_perf_inputs(const client::ModelMetadata& metadata,
                                                              int64_t max_batch_size, const PerfDataOptions& options) {
  if (max_batch_size == 0 && options.batch_size != 1) {
    return invalid_argument("-b {}: model '{}' does not batch (max_batch_size 0); use -b 1", options.batch_size,
                            metadata.name);
  }
  if (max_batch_size > 0 && options.batch_size > max_batch_size) {
    return invalid_argument("-b {}: model '{}' allows at most max_batch_size {}", options.batch_size, metadata.name,
                            max_batch_size);
  }
  if (metadata.inputs.empty()) return invalid_argument("model '{}' has no inputs", metadata.name);
  bool data_file = options.input_data != "random" && options.input_data != "zero";
  KILN_ASSIGN_OR_RETURN(auto specs, resolve_inputs(metadata, max_batch_size, options, data_file));
  if (data_file) return json_inputs(specs, options);
  std::mt19937 rng(0);
  std::vector<InferInput> set;
  for (const InputSpec& spec : specs) {
    InferInput in{spec.name, spec.datatype, spec.item_shape, {}};
    if (spec.batched) in.shape.insert(in.shape.begin(), options.batch_size);
    KILN_ASSIGN_OR_RETURN(int64_t numel, checked_numel(in.shape));
    in.data = synth_item(spec, numel, options.input_data == "zero", options.string_length, rng);
    set.push_back(std::move(in));
  }
  return std::vector<std::vector<InferInput>>{std::move(set)};
}

}  // namespace kiln::cli
