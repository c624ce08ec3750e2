// Conversions from ONNX protobuf messages to Kiln values, shared by the
// importer's files: TensorProto -> Tensor (tensor_proto.cc, external_data.cc),
// TypeProto -> ValueType (type_proto.cc) and AttributeProto -> Attribute
// (attribute.cc).
//
// Messages returned here name the thing at fault ("initializer 'w': ...")
// but not the file; the importer adds the file name once, at the top.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "ir/graph.h"
#include "kiln/status.h"
#include "kiln/tensor.h"
#include "onnx-ml.pb.h"

namespace kiln::onnx {

namespace pb = ::onnx;

// Where tensor data outside the model file may be read from.
struct TensorSource {
  std::string base_dir;  // folder of the model file; "" forbids external data
};

// ONNX's TensorProto.DataType value as a Kiln DataType; `what` names the owner in errors.
Result<DataType> data_type_from_onnx(int64_t value, std::string_view what);

// Bytes that `numel` elements of `dtype` take in ONNX's raw (packed) encoding.
// Precondition: dtype is not kString or kUndefined; numel <= kMaxTensorElements.
uint64_t packed_byte_size(DataType dtype, int64_t numel);

// Decodes little-endian, packed raw bytes into `out`, which has the final
// dtype and dims already. Sub-byte types are unpacked to one element per byte
// (int4/int2 sign-extended); bools are normalized to 0/1.
Status decode_raw_bytes(const uint8_t* data, uint64_t size, Tensor& out, std::string_view what);

// A dense TensorProto (raw_data, typed fields or external data) as a Tensor.
// `what` names it in errors, e.g. "initializer 'w'".
Result<Tensor> tensor_from_proto(const pb::TensorProto& proto, const TensorSource& source,
                                 std::string_view what);

// A SparseTensorProto densified (zeros where no value is given).
Result<Tensor> sparse_tensor_from_proto(const pb::SparseTensorProto& proto, const TensorSource& source,
                                        std::string_view what);

// Reads the external data of `proto` (data_location EXTERNAL) into `out`,
// which has the final dtype and dims already.
Status read_external_data(const pb::TensorProto& proto, const TensorSource& source, Tensor& out,
                          std::string_view what);

// A TypeProto as a ValueType; an empty TypeProto or elem_type UNDEFINED gives kUnknown.
Result<ir::ValueType> value_type_from_proto(const pb::TypeProto& proto);

// Imports the subgraph held by a graph attribute; `attr_name` names the attribute.
using SubgraphImportFn =
    std::function<Result<std::shared_ptr<ir::Graph>>(const pb::GraphProto& graph, const std::string& attr_name)>;

// An AttributeProto as an Attribute. Graph attributes are imported through
// `import_graph`. Attributes that refer to a function attribute (ref_attr_name)
// are an error here: the inliner substitutes them before import.
Result<ir::Attribute> attribute_from_proto(const pb::AttributeProto& proto, const TensorSource& source,
                                           const SubgraphImportFn& import_graph);

}  // namespace kiln::onnx
