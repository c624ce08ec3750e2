#include "train/onnx_export.h"

#include <fstream>
#include <set>

#include "core/error.h"
#include "onnx-ml.pb.h"

namespace kiln::train {

namespace {

void fill_tensor(::onnx::TensorProto* tp, const std::string& name, const Tensor& t) {
  tp->set_name(name);
  // Kiln's DataType numbering is ONNX's TensorProto.DataType.
  tp->set_data_type(static_cast<int32_t>(t.dtype()));
  for (int64_t d : t.dims()) tp->add_dims(d);
  tp->set_raw_data(t.raw_data(), t.nbytes());
}

Status fill_type(::onnx::ValueInfoProto* vi, const ir::Value* v, DataType fallback) {
  vi->set_name(v->name());
  const ir::ValueType& type = v->type();
  if (type.kind != ir::ValueType::Kind::kTensor && type.kind != ir::ValueType::Kind::kUnknown) {
    return unimplemented("value '{}' is not a tensor; ONNX export handles tensors only", v->name());
  }
  auto* tt = vi->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(static_cast<int32_t>(type.dtype != DataType::kUndefined ? type.dtype : fallback));
  if (type.kind == ir::ValueType::Kind::kTensor && type.shape.rank_known()) {
    auto* shape = tt->mutable_shape();
    for (int64_t i = 0; i < type.shape.rank(); ++i) {
      const Dim& d = type.shape[i];
      auto* dim = shape->add_dim();
      if (d.known()) {
        dim->set_dim_value(d.value);
      } else if (!d.symbol.empty()) {
        dim->set_dim_param(d.symbol);
      }
    }
  }
  return Status::ok();
}

Status fill_attribute(::onnx::AttributeProto* ap, const ir::Attribute& a) {
  using K = ir::Attribute::Kind;
  ap->set_name(a.name);
  switch (a.kind) {
    case K::kFloat:
      ap->set_type(::onnx::AttributeProto::FLOAT);
      ap->set_f(a.f);
      break;
    case K::kInt:
      ap->set_type(::onnx::AttributeProto::INT);
      ap->set_i(a.i);
      break;
    case K::kString:
      ap->set_type(::onnx::AttributeProto::STRING);
      ap->set_s(a.s);
      break;
    case K::kFloats:
      ap->set_type(::onnx::AttributeProto::FLOATS);
      for (float f : a.floats) ap->add_floats(f);
      break;
    case K::kInts:
      ap->set_type(::onnx::AttributeProto::INTS);
      for (int64_t i : a.ints) ap->add_ints(i);
      break;
    case K::kStrings:
      ap->set_type(::onnx::AttributeProto::STRINGS);
      for (const auto& s : a.strings) ap->add_strings(s);
      break;
    case K::kTensor:
      ap->set_type(::onnx::AttributeProto::TENSOR);
      fill_tensor(ap->mutable_t(), "", a.t);
      break;
    default:
      return unimplemented("attribute '{}' of kind {} cannot be exported", a.name, ir::attribute_kind_name(a.kind));
  }
  return Status::ok();
}

}  // namespace

Result<std::string> export_onnx_bytes(const ir::Model& model) {
  if (model.graph == nullptr) return invalid_argument("model has no graph");
  const ir::Graph& g = *model.graph;
  ::onnx::ModelProto mp;
  mp.set_ir_version(8);
  mp.set_producer_name("kiln-train");
  for (const auto& [domain, version] : g.opset_imports()) {
    auto* op = mp.add_opset_import();
    op->set_domain(domain);
    op->set_version(version);
  }
  auto* gp = mp.mutable_graph();
  gp->set_name(g.name().empty() ? "kiln_trained" : g.name());
  for (const ir::Value* v : g.inputs()) KILN_RETURN_IF_ERROR(fill_type(gp->add_input(), v, DataType::kFloat32));
  for (const ir::Value* v : g.outputs()) KILN_RETURN_IF_ERROR(fill_type(gp->add_output(), v, DataType::kFloat32));
  for (const ir::Value* v : g.constants()) fill_tensor(gp->add_initializer(), v->name(), v->constant());
  std::set<std::string> node_names;  // ONNX checkers reject repeated node names
  for (const auto& node_ptr : g.nodes()) {
    const ir::Node& n = *node_ptr;
    auto* np = gp->add_node();
    np->set_op_type(n.op_type());
    if (!n.name().empty()) {
      std::string name = n.name();
      for (int i = 1; node_names.count(name); ++i) name = n.name() + "_" + std::to_string(i);
      node_names.insert(name);
      np->set_name(name);
    }
    if (!n.domain().empty()) np->set_domain(n.domain());
    for (const ir::Value* v : n.inputs()) np->add_input(v == nullptr ? "" : v->name());
    for (const ir::Value* v : n.outputs()) np->add_output(v == nullptr ? "" : v->name());
    for (const auto& [name, a] : n.attributes()) {
      Status s = fill_attribute(np->add_attribute(), a);
      if (!s.is_ok()) return std::move(s).with_context(n.describe());
    }
  }
  std::string bytes;
  if (!mp.SerializeToString(&bytes)) return internal_error("serializing the ONNX model failed");
  return bytes;
}

Status export_onnx(const ir::Model& model, const std::string& path) {
  KILN_ASSIGN_OR_RETURN(std::string bytes, export_onnx_bytes(model));
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) return io_error("cannot write '{}'", path);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) return io_error("writing '{}' failed", path);
  return Status::ok();
}

}  // namespace kiln::train
