// AttributeProto -> ir::Attribute, every kind: scalars, strings, tensors,
// graphs, their lists, and type protos. A sparse tensor attribute is densified
// (kind kSparseTensor, dense value in `t`); lists of sparse tensors are not
// supported.
#include "core/error.h"
#include "onnx/proto_convert.h"

namespace kiln::onnx {
namespace {

using AttrType = pb::AttributeProto::AttributeType;
using Kind = ir::Attribute::Kind;

// Attributes written before `type` existed (IR version 1) say their kind only
// by which field is set.
AttrType guess_type(const pb::AttributeProto& a) {
  if (a.has_f()) return pb::AttributeProto::FLOAT;
  if (a.has_i()) return pb::AttributeProto::INT;
  if (a.has_s()) return pb::AttributeProto::STRING;
  if (a.has_t()) return pb::AttributeProto::TENSOR;
  if (a.has_g()) return pb::AttributeProto::GRAPH;
  if (a.has_sparse_tensor()) return pb::AttributeProto::SPARSE_TENSOR;
  if (a.has_tp()) return pb::AttributeProto::TYPE_PROTO;
  if (a.floats_size() > 0) return pb::AttributeProto::FLOATS;
  if (a.ints_size() > 0) return pb::AttributeProto::INTS;
  if (a.strings_size() > 0) return pb::AttributeProto::STRINGS;
  if (a.tensors_size() > 0) return pb::AttributeProto::TENSORS;
  if (a.graphs_size() > 0) return pb::AttributeProto::GRAPHS;
  if (a.sparse_tensors_size() > 0) return pb::AttributeProto::SPARSE_TENSORS;
  if (a.type_protos_size() > 0) return pb::AttributeProto::TYPE_PROTOS;
  return pb::AttributeProto::UNDEFINED;
}

}  // namespace

Result<ir::Attribute> attribute_from_proto(const pb::AttributeProto& a, const TensorSource& source,
                                           const SubgraphImportFn& import_graph) {
  const std::string what = fmt::format("attribute '{}'", a.name());
  if (a.name().empty()) return invalid_argument("an attribute has an empty name");
  if (!a.ref_attr_name().empty()) {
    return invalid_argument("{} refers to function attribute '{}' outside a function", what, a.ref_attr_name());
  }
  ir::Attribute out;
  out.name = a.name();
  const AttrType type = a.type() == pb::AttributeProto::UNDEFINED ? guess_type(a) : a.type();
  switch (type) {
    case pb::AttributeProto::FLOAT:
      out.kind = Kind::kFloat;
      out.f = a.f();
      break;
    case pb::AttributeProto::INT:
      out.kind = Kind::kInt;
      out.i = a.i();
      break;
    case pb::AttributeProto::STRING:
      out.kind = Kind::kString;
      out.s = a.s();
      break;
    case pb::AttributeProto::TENSOR: {
      out.kind = Kind::kTensor;
      KILN_ASSIGN_OR_RETURN(out.t, tensor_from_proto(a.t(), source, what));
      break;
    }
    case pb::AttributeProto::SPARSE_TENSOR: {
      out.kind = Kind::kSparseTensor;
      KILN_ASSIGN_OR_RETURN(out.t, sparse_tensor_from_proto(a.sparse_tensor(), source, what));
      break;
    }
    case pb::AttributeProto::GRAPH: {
      out.kind = Kind::kGraph;
      KILN_ASSIGN_OR_RETURN(out.g, import_graph(a.g(), a.name()));
      break;
    }
    case pb::AttributeProto::TYPE_PROTO: {
      out.kind = Kind::kTypeProto;
      auto t = value_type_from_proto(a.tp());
      if (!t.is_ok()) return t.status().with_context(what);
      out.types.push_back(std::move(t).value());
      break;
    }
    case pb::AttributeProto::FLOATS:
      out.kind = Kind::kFloats;
      out.floats.assign(a.floats().begin(), a.floats().end());
      break;
    case pb::AttributeProto::INTS:
      out.kind = Kind::kInts;
      out.ints.assign(a.ints().begin(), a.ints().end());
      break;
    case pb::AttributeProto::STRINGS:
      out.kind = Kind::kStrings;
      out.strings.assign(a.strings().begin(), a.strings().end());
      break;
    case pb::AttributeProto::TENSORS:
      out.kind = Kind::kTensors;
      for (int i = 0; i < a.tensors_size(); ++i) {
        KILN_ASSIGN_OR_RETURN(Tensor t, tensor_from_proto(a.tensors(i), source, fmt::format("{}[{}]", what, i)));
        out.tensors.push_back(std::move(t));
      }
      break;
    case pb::AttributeProto::GRAPHS:
      out.kind = Kind::kGraphs;
      for (int i = 0; i < a.graphs_size(); ++i) {
        KILN_ASSIGN_OR_RETURN(auto g, import_graph(a.graphs(i), fmt::format("{}[{}]", a.name(), i)));
        out.graphs.push_back(std::move(g));
      }
      break;
    case pb::AttributeProto::TYPE_PROTOS:
      out.kind = Kind::kTypeProtos;
      for (int i = 0; i < a.type_protos_size(); ++i) {
        auto t = value_type_from_proto(a.type_protos(i));
        if (!t.is_ok()) return t.status().with_context(fmt::format("{}[{}]", what, i));
        out.types.push_back(std::move(t).value());
      }
      break;
    case pb::AttributeProto::SPARSE_TENSORS:
      return unimplemented("{}: lists of sparse tensors are not supported", what);
    case pb::AttributeProto::UNDEFINED:
      return invalid_argument("{} has no type and no value", what);
    default:
      return invalid_argument("{} has unknown type {}", what, static_cast<int>(a.type()));
  }
  return out;
}

}  // namespace kiln::onnx
