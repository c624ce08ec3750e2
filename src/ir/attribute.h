// Attribute: one named node attribute, as in ONNX's AttributeProto.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ir/value_type.h"
#include "kiln/tensor.h"

namespace kiln::ir {

class Graph;

struct Attribute {
  enum class Kind {
    kUndefined, kFloat, kInt, kString, kTensor, kGraph, kFloats, kInts, kStrings,
    kTensors, kGraphs, kTypeProto, kTypeProtos, kSparseTensor,
  };

  std::string name;
  Kind kind = Kind::kUndefined;
  float f = 0;
  int64_t i = 0;
  std::string s;  // also raw bytes
  Tensor t;
  std::shared_ptr<Graph> g;
  std::vector<float> floats;
  std::vector<int64_t> ints;
  std::vector<std::string> strings;
  std::vector<Tensor> tensors;
  std::vector<std::shared_ptr<Graph>> graphs;
  std::vector<ValueType> types;  // kTypeProto (one) and kTypeProtos

  static Attribute make_int(std::string name, int64_t v);
  static Attribute make_float(std::string name, float v);
  static Attribute make_string(std::string name, std::string v);
  static Attribute make_ints(std::string name, std::vector<int64_t> v);
  static Attribute make_floats(std::string name, std::vector<float> v);
  static Attribute make_tensor(std::string name, Tensor v);
  static Attribute make_graph(std::string name, std::shared_ptr<Graph> v);
};

const char* attribute_kind_name(Attribute::Kind kind);

}  // namespace kiln::ir
