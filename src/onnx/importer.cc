// ONNX import, model level: reading and parsing the file, opset imports,
// local functions, metadata; the graphs themselves are graph_importer.cc's.
#include "onnx/importer.h"

#include <google/protobuf/io/coded_stream.h>

#include <climits>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "onnx/graph_importer.h"
#include "ops/registry.h"
#include "ops/shape_inference.h"

namespace kiln::onnx {
namespace {

// Protobuf messages are limited to 2 GiB; so are model files.
constexpr uint64_t kMaxModelBytes = INT_MAX;

Result<pb::ModelProto> parse_model(std::string_view bytes) {
  if (bytes.size() > kMaxModelBytes) {
    return invalid_argument("the model is {} bytes; ONNX files are limited to 2 GiB (store large weights as "
                            "external data)", bytes.size());
  }
  pb::ModelProto proto;
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                                            static_cast<int>(bytes.size()));
  in.SetTotalBytesLimit(static_cast<int>(kMaxModelBytes));
  if (!proto.ParseFromCodedStream(&in) || !in.ConsumedEntireMessage()) {
    return invalid_argument("not a valid ONNX model (protobuf parse failed)");
  }
  return proto;
}

Status read_opsets(const pb::ModelProto& proto, std::map<std::string, int64_t>& opsets) {
  for (const auto& o : proto.opset_import()) {
    const std::string domain(ops::canonical_domain(o.domain()));
    if (domain.empty() && (o.version() < kMinOpset || o.version() > kMaxOpset)) {
      return unimplemented("unsupported opset {} (Kiln supports {} to {})", o.version(), kMinOpset, kMaxOpset);
    }
    auto [it, inserted] = opsets.emplace(domain, o.version());
    if (!inserted && it->second != o.version()) {
      return invalid_argument("opset_import lists domain '{}' twice, with versions {} and {}",
                              domain.empty() ? "ai.onnx" : domain, it->second, o.version());
    }
  }
  return Status::ok();
}

Result<ir::Model> import_proto(const pb::ModelProto& proto, const std::string& base_dir,
                               const std::string& source_name, const ImportOptions& options) {
  if (!proto.has_graph()) return invalid_argument("the model has no graph");
  ImportContext ctx;
  ctx.source.base_dir = base_dir;
  ctx.options = options;
  ctx.inline_budget = inline_budget(proto.ByteSizeLong());
  KILN_RETURN_IF_ERROR(read_opsets(proto, ctx.opsets));
  for (const auto& fn : proto.functions()) KILN_RETURN_IF_ERROR(ctx.functions.add(fn));

  ir::Model model;
  model.graph = std::make_shared<ir::Graph>(proto.graph().name().empty() ? "main" : proto.graph().name());
  model.graph->set_opset_imports(ctx.opsets);
  GraphImporter importer(ctx, *model.graph, nullptr);
  KILN_RETURN_IF_ERROR(importer.import(proto.graph()));
  KILN_RETURN_IF_ERROR(model.graph->verify());
  if (options.infer_shapes) KILN_RETURN_IF_ERROR(ops::infer_shapes(*model.graph));

  model.ir_version = proto.ir_version();
  model.producer_name = proto.producer_name();
  model.producer_version = proto.producer_version();
  model.source_path = source_name;
  for (const auto& entry : proto.metadata_props()) model.metadata[entry.key()] = entry.value();
  return model;
}

}  // namespace

Result<ir::Model> import_model_bytes(std::string_view bytes, const std::string& base_dir,
                                     const std::string& source_name, const ImportOptions& options) {
  auto proto = parse_model(bytes);
  if (!proto.is_ok()) return proto.status().with_context(source_name);
  auto model = import_proto(*proto, base_dir, source_name, options);
  if (!model.is_ok()) return model.status().with_context(source_name);
  return model;
}

Result<ir::Model> import_model_file(const std::string& path, const ImportOptions& options) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (ec || !fs::exists(status)) return not_found("{}: file not found", path);
  if (!fs::is_regular_file(status)) return invalid_argument("{}: not a regular file", path);
  const uint64_t size = fs::file_size(path, ec);
  if (ec) return io_error("{}: cannot read its size: {}", path, ec.message());
  if (size > kMaxModelBytes) {
    return invalid_argument("{}: the file is {} bytes; ONNX files are limited to 2 GiB (store large weights as "
                            "external data)", path, size);
  }
  std::string bytes(static_cast<size_t>(size), '\0');
  std::ifstream in(path, std::ios::binary);
  if (!in || !in.read(bytes.data(), static_cast<std::streamsize>(size))) {
    return io_error("{}: cannot read the file", path);
  }
  const fs::path parent = fs::path(path).parent_path();
  return import_model_bytes(bytes, parent.empty() ? fs::path(".").string() : parent.string(), path, options);
}

}  // namespace kiln::onnx
