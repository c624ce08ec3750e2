// Helpers that build ONNX ModelProto messages in C++ for the importer tests.
//
//   auto m = make_model(17);
//   auto* g = m.mutable_graph();
//   add_input(g, "x", pb::TensorProto::FLOAT, {"N", 3});
//   add_node(g, "Identity", {"x"}, {"y"});
//   add_output(g, "y", pb::TensorProto::FLOAT, {"N", 3});
//   auto model = import(m);
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <variant>
#include <vector>

#include "onnx-ml.pb.h"
#include "onnx/importer.h"

namespace kiln::test {

namespace pb = ::onnx;

// A dim of a declared shape: a number, a symbol, or unknown (Unknown{}).
struct UnknownDim {};
using DimSpec = std::variant<int64_t, std::string, UnknownDim>;
struct D {
  DimSpec v;
  D(int64_t x) : v(x) {}                   // NOLINT(google-explicit-constructor)
  D(int x) : v(static_cast<int64_t>(x)) {}  // NOLINT(google-explicit-constructor)
  D(const char* s) : v(std::string(s)) {}  // NOLINT(google-explicit-constructor)
  D(UnknownDim u) : v(u) {}                // NOLINT(google-explicit-constructor)
};

// A model with one default-domain opset import and an empty graph "g".
inline pb::ModelProto make_model(int64_t opset = 17) {
  pb::ModelProto m;
  m.set_ir_version(8);
  m.set_producer_name("kiln-test");
  m.set_producer_version("1.0");
  auto* o = m.add_opset_import();
  o->set_domain("");
  o->set_version(opset);
  m.mutable_graph()->set_name("g");
  return m;
}

inline void set_tensor_type(pb::TypeProto* t, int elem_type, const std::vector<D>& dims) {
  auto* tt = t->mutable_tensor_type();
  tt->set_elem_type(elem_type);
  auto* shape = tt->mutable_shape();
  for (const D& d : dims) {
    auto* dim = shape->add_dim();
    if (auto* v = std::get_if<int64_t>(&d.v)) dim->set_dim_value(*v);
    if (auto* s = std::get_if<std::string>(&d.v)) dim->set_dim_param(*s);
  }
}

inline pb::ValueInfoProto* add_input(pb::GraphProto* g, const std::string& name, int elem_type,
                                     const std::vector<D>& dims) {
  auto* v = g->add_input();
  v->set_name(name);
  set_tensor_type(v->mutable_type(), elem_type, dims);
  return v;
}

inline pb::ValueInfoProto* add_output(pb::GraphProto* g, const std::string& name, int elem_type,
                                      const std::vector<D>& dims) {
  auto* v = g->add_output();
  v->set_name(name);
  set_tensor_type(v->mutable_type(), elem_type, dims);
  return v;
}

// An output with no declared type.
inline pb::ValueInfoProto* add_untyped_output(pb::GraphProto* g, const std::string& name) {
  auto* v = g->add_output();
  v->set_name(name);
  return v;
}

inline pb::NodeProto* add_node(pb::GraphProto* g, const std::string& op, const std::vector<std::string>& inputs,
                               const std::vector<std::string>& outputs, const std::string& name = "",
                               const std::string& domain = "") {
  auto* n = g->add_node();
  n->set_op_type(op);
  for (const auto& i : inputs) n->add_input(i);
  for (const auto& o : outputs) n->add_output(o);
  if (!name.empty()) n->set_name(name);
  if (!domain.empty()) n->set_domain(domain);
  return n;
}

// A float tensor in raw_data (or float_data when raw is false).
inline pb::TensorProto float_tensor(const std::string& name, const std::vector<int64_t>& dims,
                                    const std::vector<float>& values, bool raw = true) {
  pb::TensorProto t;
  t.set_name(name);
  t.set_data_type(pb::TensorProto::FLOAT);
  for (int64_t d : dims) t.add_dims(d);
  if (raw) {
    std::string bytes(values.size() * sizeof(float), '\0');
    if (!values.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());
    t.set_raw_data(bytes);
  } else {
    for (float v : values) t.add_float_data(v);
  }
  return t;
}

inline pb::TensorProto* add_initializer(pb::GraphProto* g, const pb::TensorProto& t) {
  auto* init = g->add_initializer();
  *init = t;
  return init;
}

inline pb::AttributeProto* add_attr_int(pb::NodeProto* n, const std::string& name, int64_t v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(pb::AttributeProto::INT);
  a->set_i(v);
  return a;
}

inline pb::AttributeProto* add_attr_graph(pb::NodeProto* n, const std::string& name, const pb::GraphProto& g) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(pb::AttributeProto::GRAPH);
  *a->mutable_g() = g;
  return a;
}

inline std::string serialize(const pb::ModelProto& m) {
  std::string bytes;
  EXPECT_TRUE(m.SerializeToString(&bytes));
  return bytes;
}

inline Result<ir::Model> import(const pb::ModelProto& m, const std::string& base_dir = "",
                                const onnx::ImportOptions& options = {}) {
  return onnx::import_model_bytes(serialize(m), base_dir, "test.onnx", options);
}

// EXPECT that `r` failed with `code` and a message containing each of `parts`.
// KILN_PRINT_ERRORS=1 prints each message (to review how they read).
template <class R>
void expect_error(const R& r, StatusCode code, const std::vector<std::string>& parts) {
  ASSERT_FALSE(r.is_ok()) << "expected an error containing '" << (parts.empty() ? "" : parts[0]) << "'";
  EXPECT_EQ(r.status().code(), code) << r.status().to_string();
  if (std::getenv("KILN_PRINT_ERRORS") != nullptr) std::printf("  error: %s\n", r.status().to_string().c_str());
  for (const auto& p : parts) {
    EXPECT_NE(r.status().message().find(p), std::string::npos)
        << "message lacks '" << p << "': " << r.status().message();
  }
}

}  // namespace kiln::test
