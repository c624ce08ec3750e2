#include "ir/attribute.h"

namespace kiln::ir {

#define KILN_ATTR_MAKER(fn, K, field, T) \
  Attribute Attribute::fn(std::string name, T v) { \
    Attribute a;                                     \
    a.name = std::move(name);                        \
    a.kind = Kind::K;                                \
    a.field = std::move(v);                          \
    return a;                                        \
  }

KILN_ATTR_MAKER(make_int, kInt, i, int64_t)
KILN_ATTR_MAKER(make_float, kFloat, f, float)
KILN_ATTR_MAKER(make_string, kString, s, std::string)
KILN_ATTR_MAKER(make_ints, kInts, ints, std::vector<int64_t>)
KILN_ATTR_MAKER(make_floats, kFloats, floats, std::vector<float>)
KILN_ATTR_MAKER(make_tensor, kTensor, t, Tensor)
KILN_ATTR_MAKER(make_graph, kGraph, g, std::shared_ptr<Graph>)

#undef KILN_ATTR_MAKER

const char* attribute_kind_name(Attribute::Kind kind) {
  switch (kind) {
    case Attribute::Kind::kUndefined: return "undefined";
    case Attribute::Kind::kFloat: return "float";
    case Attribute::Kind::kInt: return "int";
    case Attribute::Kind::kString: return "string";
    case Attribute::Kind::kTensor: return "tensor";
    case Attribute::Kind::kGraph: return "graph";
    case Attribute::Kind::kFloats: return "floats";
    case Attribute::Kind::kInts: return "ints";
    case Attribute::Kind::kStrings: return "strings";
    case Attribute::Kind::kTensors: return "tensors";
    case Attribute::Kind::kGraphs: return "graphs";
    case Attribute::Kind::kTypeProto: return "type_proto";
    case Attribute::Kind::kTypeProtos: return "type_protos";
    case Attribute::Kind::kSparseTensor: return "sparse_tensor";
  }
  return "?";
}

}  // namespace kiln::ir
