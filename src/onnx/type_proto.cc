// TypeProto -> ir::ValueType: tensors (element type and a shape whose dims are
// known values, named symbols or unknown), sequences, optionals, maps and
// sparse tensors.
#include "core/error.h"
#include "onnx/proto_convert.h"

namespace kiln::onnx {
namespace {

Result<Shape> shape_from_proto(const pb::TensorShapeProto& proto) {
  std::vector<Dim> dims;
  dims.reserve(static_cast<size_t>(proto.dim_size()));
  for (int i = 0; i < proto.dim_size(); ++i) {
    const auto& d = proto.dim(i);
    if (d.has_dim_value()) {
      if (d.dim_value() < 0) return invalid_argument("negative dimension {} at axis {}", d.dim_value(), i);
      dims.emplace_back(d.dim_value());
    } else if (d.has_dim_param() && !d.dim_param().empty()) {
      dims.push_back(Dim::sym(d.dim_param()));
    } else {
      dims.emplace_back();
    }
  }
  return Shape(std::move(dims));
}

// Element type and shape of a tensor or sparse tensor type; kUnknown when the element type is unset.
template <class TensorTypeProto>
Result<ir::ValueType> tensor_type(const TensorTypeProto& proto, ir::ValueType::Kind kind) {
  if (proto.elem_type() == 0) return ir::ValueType{};
  KILN_ASSIGN_OR_RETURN(DataType dtype, data_type_from_onnx(proto.elem_type(), "tensor type"));
  Shape shape;
  if (proto.has_shape()) {
    KILN_ASSIGN_OR_RETURN(shape, shape_from_proto(proto.shape()));
  }
  ir::ValueType t = ir::ValueType::tensor(dtype, std::move(shape));
  t.kind = kind;
  return t;
}

}  // namespace

Result<ir::ValueType> value_type_from_proto(const pb::TypeProto& proto) {
  using Kind = ir::ValueType::Kind;
  switch (proto.value_case()) {
    case pb::TypeProto::kTensorType:
      return tensor_type(proto.tensor_type(), Kind::kTensor);
    case pb::TypeProto::kSparseTensorType:
      return tensor_type(proto.sparse_tensor_type(), Kind::kSparseTensor);
    case pb::TypeProto::kSequenceType: {
      ir::ValueType elem;
      if (proto.sequence_type().has_elem_type()) {
        KILN_ASSIGN_OR_RETURN(elem, value_type_from_proto(proto.sequence_type().elem_type()));
      }
      return ir::ValueType::wrapping(Kind::kSequence, std::move(elem));
    }
    case pb::TypeProto::kOptionalType: {
      ir::ValueType elem;
      if (proto.optional_type().has_elem_type()) {
        KILN_ASSIGN_OR_RETURN(elem, value_type_from_proto(proto.optional_type().elem_type()));
      }
      return ir::ValueType::wrapping(Kind::kOptional, std::move(elem));
    }
    case pb::TypeProto::kMapType: {
      const auto& m = proto.map_type();
      KILN_ASSIGN_OR_RETURN(DataType key, data_type_from_onnx(m.key_type(), "map key type"));
      ir::ValueType value;
      if (m.has_value_type()) {
        KILN_ASSIGN_OR_RETURN(value, value_type_from_proto(m.value_type()));
      }
      ir::ValueType t = ir::ValueType::wrapping(Kind::kMap, std::move(value));
      t.dtype = key;
      return t;
    }
    case pb::TypeProto::kOpaqueType:
      return unimplemented("opaque type '{}.{}' is not supported", proto.opaque_type().domain(),
                           proto.opaque_type().name());
    case pb::TypeProto::VALUE_NOT_SET:
      break;
  }
  return ir::ValueType{};
}

}  // namespace kiln::onnx
