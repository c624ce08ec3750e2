#include "onnx/exporter.h"

#include <fstream>

#include "core/error.h"
#include "onnx/proto_convert.h"

namespace kiln::onnx {
namespace {

Status tensor_to_proto(const Tensor& t, const std::string& name, pb::TensorProto& p) {
  const DataType dt = t.dtype();
  if (bits_per_element(dt) < 8 || dt == DataType::kUndefined) {
    return unimplemented("exporting tensor '{}' of type {} is not supported", name, data_type_name(dt));
  }
  p.set_name(name);
  p.set_data_type(static_cast<int32_t>(dt));  // Kiln's DataType values are ONNX's
  for (int64_t d : t.dims()) p.add_dims(d);
  if (dt == DataType::kString) {
    for (const std::string& s : t.span<std::string>()) p.add_string_data(s);
  } else {
    p.set_raw_data(static_cast<const char*>(t.raw_data()), t.nbytes());
  }
  return Status::ok();
}

Status type_to_proto(const ir::ValueType& type, const std::string& name, pb::ValueInfoProto& info) {
  info.set_name(name);
  if (type.kind == ir::ValueType::Kind::kUnknown) return Status::ok();
  if (!type.is_tensor()) return unimplemented("exporting value '{}' of type {} is not supported", name, type.to_string());
  pb::TypeProto_Tensor* tt = info.mutable_type()->mutable_tensor_type();
  tt->set_elem_type(static_cast<int32_t>(type.dtype));
  if (!type.shape.rank_known()) return Status::ok();
  pb::TensorShapeProto* shape = tt->mutable_shape();
  for (const Dim& d : type.shape.dims()) {
    pb::TensorShapeProto_Dimension* pd = shape->add_dim();
    if (d.known()) {
      pd->set_dim_value(d.value);
    } else if (!d.symbol.empty()) {
      pd->set_dim_param(d.symbol);
    }
  }
  return Status::ok();
}

Status attribute_to_proto(const ir::Attribute& a, const ir::Node& n, pb::AttributeProto& p) {
  using K = ir::Attribute::Kind;
  p.set_name(a.name);
  switch (a.kind) {
    case K::kFloat:
      p.set_type(pb::AttributeProto::FLOAT);
      p.set_f(a.f);
      return Status::ok();
    case K::kInt:
      p.set_type(pb::AttributeProto::INT);
      p.set_i(a.i);
      return Status::ok();
    case K::kString:
      p.set_type(pb::AttributeProto::STRING);
      p.set_s(a.s);
      return Status::ok();
    case K::kFloats:
      p.set_type(pb::AttributeProto::FLOATS);
      for (float v : a.floats) p.add_floats(v);
      return Status::ok();
    case K::kInts:
      p.set_type(pb::AttributeProto::INTS);
      for (int64_t v : a.ints) p.add_ints(v);
      return Status::ok();
    case K::kStrings:
      p.set_type(pb::AttributeProto::STRINGS);
      for (const std::string& v : a.strings) p.add_strings(v);
      return Status::ok();
    case K::kTensor:
      p.set_type(pb::AttributeProto::TENSOR);
      return tensor_to_proto(a.t, a.name, *p.mutable_t());
    default:
      return unimplemented("{}: exporting attribute '{}' of this kind is not supported", n.describe(), a.name);
  }
}

}  // namespace

Result<std::string> export_model_bytes(const ir::Model& model) {
  if (!model.graph) return invalid_argument("model has no graph");
  const ir::Graph& g = *model.graph;
  pb::ModelProto m;
  m.set_ir_version(model.ir_version > 0 ? model.ir_version : 8);
  m.set_producer_name("kiln");
  for (const auto& [domain, version] : g.opset_imports()) {
    pb::OperatorSetIdProto* o = m.add_opset_import();
    o->set_domain(domain == "ai.onnx" ? "" : domain);
    o->set_version(version);
  }
  for (const auto& [key, value] : model.metadata) {
    pb::StringStringEntryProto* e = m.add_metadata_props();
    e->set_key(key);
    e->set_value(value);
  }
  pb::GraphProto* gp = m.mutable_graph();
  gp->set_name(g.name().empty() ? "graph" : g.name());
  for (const ir::Value* v : g.inputs()) KILN_RETURN_IF_ERROR(type_to_proto(v->type(), v->name(), *gp->add_input()));
  for (const ir::Value* v : g.outputs()) KILN_RETURN_IF_ERROR(type_to_proto(v->type(), v->name(), *gp->add_output()));
  for (const ir::Value* v : g.constants()) {
    KILN_RETURN_IF_ERROR(tensor_to_proto(v->constant(), v->name(), *gp->add_initializer()));
  }
  for (const auto& n : g.nodes()) {
    pb::NodeProto* np = gp->add_node();
    np->set_op_type(n->op_type());
    np->set_domain(n->domain());
    np->set_name(n->name());
    for (const ir::Value* v : n->inputs()) np->add_input(v != nullptr ? v->name() : "");
    for (const ir::Value* v : n->outputs()) np->add_output(v != nullptr ? v->name() : "");
    for (const auto& [name, a] : n->attributes()) KILN_RETURN_IF_ERROR(attribute_to_proto(a, *n, *np->add_attribute()));
  }
  std::string bytes;
  if (!m.SerializeToString(&bytes)) return internal_error("could not serialize the ONNX model");
  return bytes;
}

Status export_model_file(const ir::Model& model, const std::string& path) {
  KILN_ASSIGN_OR_RETURN(std::string bytes, export_model_bytes(model));
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) return invalid_argument("cannot write '{}'", path);
  return Status::ok();
}

}  // namespace kiln::onnx
