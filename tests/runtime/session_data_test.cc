// Session::from_model, run_data (sequence/optional I/O), IoInfo type strings,
// and the rule that outputs never share storage with feeds or constants.
#include <gtest/gtest.h>

#include <memory>

#include "core/datum.h"
#include "ir/graph.h"
#include "kiln/session.h"

namespace kiln {
namespace {

// A model whose outputs "<name>_out" are Identity copies of its inputs.
class IdentityModel {
 public:
  IdentityModel() : graph_(std::make_shared<ir::Graph>("identity")) { graph_->set_opset_imports({{"", 21}}); }

  IdentityModel& input(const std::string& name, ir::ValueType type, Tensor default_value = {}) {
    ir::Value* in = nullptr;
    if (default_value.defined()) {
      in = graph_->add_constant(name, std::move(default_value)).value();
      in->set_type(type);
    } else {
      in = graph_->add_value(name, type).value();
    }
    graph_->add_input(in);
    ir::Value* out = graph_->add_value(name + "_out", type).value();
    graph_->add_node("Identity", {in}, {out}, "id_" + name)->set_opset(21);
    graph_->add_output(out);
    return *this;
  }

  std::unique_ptr<Session> open() {
    ir::Model model;
    model.graph = graph_;
    auto s = Session::from_model(std::move(model), {.threads = 1});
    EXPECT_TRUE(s.is_ok()) << s.status().to_string();
    return s.is_ok() ? std::move(s).value() : nullptr;
  }

 private:
  std::shared_ptr<ir::Graph> graph_;
};

ir::ValueType floats(Shape shape) { return ir::ValueType::tensor(DataType::kFloat32, std::move(shape)); }

TEST(SessionData, InfoDescribesKinds) {
  auto session = IdentityModel()
                     .input("x", floats(Shape({Dim::sym("batch"), Dim(3)})))
                     .input("s", ir::ValueType::wrapping(ir::ValueType::Kind::kSequence,
                                                         ir::ValueType::tensor(DataType::kInt64)))
                     .input("o", ir::ValueType::wrapping(ir::ValueType::Kind::kOptional, floats(Shape::of({2}))))
                     .open();
  ASSERT_NE(session, nullptr);
  const auto& in = session->inputs();
  ASSERT_EQ(in.size(), 3u);
  EXPECT_EQ(in[0].type, "tensor(float)");
  EXPECT_EQ(in[0].kind, IoKind::kTensor);
  EXPECT_EQ(in[0].dims, (std::vector<int64_t>{-1, 3}));
  EXPECT_EQ(in[0].dim_names[0], "batch");
  EXPECT_EQ(in[1].type, "seq(tensor(int64))");
  EXPECT_EQ(in[1].kind, IoKind::kSequence);
  EXPECT_EQ(in[1].dtype, DataType::kInt64);
  EXPECT_EQ(in[2].type, "optional(tensor(float))");
  EXPECT_EQ(in[2].dims, (std::vector<int64_t>{2}));
  EXPECT_EQ(session->outputs()[1].name, "s_out");
}

TEST(SessionData, SequencesAndOptionals) {
  auto session = IdentityModel()
                     .input("s", ir::ValueType::wrapping(ir::ValueType::Kind::kSequence,
                                                         ir::ValueType::tensor(DataType::kFloat32)))
                     .input("o", ir::ValueType::wrapping(ir::ValueType::Kind::kOptional, floats(Shape::of({2}))))
                     .open();
  ASSERT_NE(session, nullptr);
  Tensor a = Tensor::empty(DataType::kFloat32, {2});
  a.data<float>()[0] = 1;
  NamedData feeds = {{"s", Datum::sequence({a, a}, DataType::kFloat32)}};
  auto out = session->run_data(feeds);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  const Datum& s = out.value()[0].second;
  ASSERT_TRUE(s.is_sequence());
  ASSERT_EQ(s.items().size(), 2u);
  EXPECT_NE(s.items()[0].raw_data(), a.raw_data());  // copied: it would share the feed's storage
  EXPECT_EQ(s.items()[0].data<float>()[0], 1);
  const Datum& o = out.value()[1].second;
  ASSERT_TRUE(o.is_optional());
  EXPECT_EQ(o.optional_value(), nullptr);  // left out: an empty optional

  feeds.emplace_back("o", Datum(a));  // an optional fed its content
  out = session->run_data(feeds);
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  ASSERT_NE(out.value()[1].second.optional_value(), nullptr);
  EXPECT_TRUE(out.value()[1].second.optional_value()->is_tensor());

  auto tensors_only = session->run({{"s", a}});
  ASSERT_FALSE(tensors_only.is_ok());
  EXPECT_NE(tensors_only.status().message().find("'s' expects a sequence"), std::string::npos);
  auto empty_optional = session->run_data({{"s", Datum::sequence({a}, DataType::kFloat32)}, {"o", Datum()}});
  EXPECT_TRUE(empty_optional.is_ok()) << empty_optional.status().to_string();  // Datum() for an optional: empty
}

TEST(SessionData, SequenceAndOptionalContentIsChecked) {
  auto session = IdentityModel()
                     .input("s", ir::ValueType::wrapping(ir::ValueType::Kind::kSequence,
                                                         ir::ValueType::tensor(DataType::kInt64)))
                     .input("o", ir::ValueType::wrapping(ir::ValueType::Kind::kOptional, floats(Shape::of({2}))))
                     .open();
  ASSERT_NE(session, nullptr);
  Tensor f = Tensor::empty(DataType::kFloat32, {2});
  Tensor i = Tensor::empty(DataType::kInt64, {2});
  auto r = session->run_data({{"s", Datum::sequence({i, f}, DataType::kInt64)}});
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("input 's': item 1 has type float, the model expects a sequence of int64"),
            std::string::npos)
      << r.status().message();
  r = session->run_data({{"s", Datum::sequence({}, DataType::kFloat32)}});
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("empty sequence of float"), std::string::npos) << r.status().message();
  // An empty sequence of unknown element type is accepted.
  r = session->run_data({{"s", Datum::sequence({}, DataType::kUndefined)}});
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  // The content of an optional is checked like a tensor input: dtype and shape.
  r = session->run_data({{"s", Datum::sequence({i}, DataType::kInt64)}, {"o", Datum(i)}});
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("input 'o' has type int64"), std::string::npos) << r.status().message();
  r = session->run_data({{"s", Datum::sequence({i}, DataType::kInt64)},
                         {"o", Datum::optional(std::make_shared<const Datum>(Tensor::empty(DataType::kFloat32, {3})))}});
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("input 'o' has shape [3]"), std::string::npos) << r.status().message();
  r = session->run_data({{"s", Datum::sequence({i}, DataType::kInt64)}, {"o", Datum::sequence({f}, DataType::kFloat32)}});
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("'o' expects an optional tensor, got a sequence"), std::string::npos)
      << r.status().message();
}

TEST(SessionData, OutputsNeverAliasFeedsOrConstants) {
  Tensor def = Tensor::empty(DataType::kFloat32, {3});
  auto session = IdentityModel().input("x", floats(Shape::of({3}))).input("d", floats(Shape::of({3})), def).open();
  ASSERT_NE(session, nullptr);
  EXPECT_TRUE(session->inputs()[1].optional);
  Tensor x = Tensor::empty(DataType::kFloat32, {3});
  auto out = session->run({{"x", x}});
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_NE(out.value()[0].second.raw_data(), x.raw_data());
  EXPECT_NE(out.value()[1].second.raw_data(), def.raw_data());
  out.value()[1].second.data<float>()[0] = 42;
  auto again = session->run({{"x", x}});
  ASSERT_TRUE(again.is_ok());
  EXPECT_EQ(again.value()[1].second.data<float>()[0], 0);
}

TEST(SessionData, Errors) {
  auto session = IdentityModel().input("x", floats(Shape::of({3}))).open();
  ASSERT_NE(session, nullptr);
  Tensor x = Tensor::empty(DataType::kFloat32, {3});
  auto r = session->run({{"x", x}}, {"nope"});
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("unknown output 'nope'; the model's outputs are 'x_out'"), std::string::npos);
  r = session->run({{"x", x}, {"x", x}});
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("given twice"), std::string::npos);
  auto d = session->run_data({{"x", Datum::sequence({x}, DataType::kFloat32)}});
  ASSERT_FALSE(d.is_ok());
  EXPECT_NE(d.status().message().find("'x' expects a tensor, got a sequence"), std::string::npos);
  ir::Model empty;
  EXPECT_FALSE(Session::from_model(std::move(empty)).is_ok());
}

}  // namespace
}  // namespace kiln
