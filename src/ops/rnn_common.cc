#include "ops/rnn_common.h"

#include <array>
#include <cctype>

#include "core/error.h"
#include "ops/op_util.h"

namespace kiln::ops {
namespace {

struct ActivationInfo {
  const char* name;  // lower case
  Activation::Fn fn;
  bool uses_alpha;
  bool uses_beta;
  float alpha;  // defaults, as for the ONNX ops of the same name
  float beta;
};

constexpr std::array<ActivationInfo, 11> kActivations = {{
    {"relu", Activation::Fn::kRelu, false, false, 0.f, 0.f},
    {"tanh", Activation::Fn::kTanh, false, false, 0.f, 0.f},
    {"sigmoid", Activation::Fn::kSigmoid, false, false, 0.f, 0.f},
    {"affine", Activation::Fn::kAffine, true, true, 1.f, 0.f},
    {"leakyrelu", Activation::Fn::kLeakyRelu, true, false, 0.01f, 0.f},
    {"thresholdedrelu", Activation::Fn::kThresholdedRelu, true, false, 1.f, 0.f},
    {"scaledtanh", Activation::Fn::kScaledTanh, true, true, 1.f, 1.f},
    {"hardsigmoid", Activation::Fn::kHardSigmoid, true, true, 0.2f, 0.5f},
    {"elu", Activation::Fn::kElu, true, false, 1.f, 0.f},
    {"softsign", Activation::Fn::kSoftsign, false, false, 0.f, 0.f},
    {"softplus", Activation::Fn::kSoftplus, false, false, 0.f, 0.f},
}};

std::string lower(const std::string& s) {
  std::string out;
  for (char c : s) out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Activations per direction. `activation_alpha`/`activation_beta` are consumed
// in order by the activations that take an alpha (beta), as onnxruntime does;
// missing values take the op's default. One direction's list given for a
// bidirectional node serves both directions.
Result<std::vector<std::vector<Activation>>> parse_activations(const ir::Node& node, RnnKind kind, int64_t dirs) {
  std::vector<std::string> defaults;
  switch (kind) {
    case RnnKind::kRnn: defaults = {"Tanh"}; break;
    case RnnKind::kGru: defaults = {"Sigmoid", "Tanh"}; break;
    case RnnKind::kLstm: defaults = {"Sigmoid", "Tanh", "Tanh"}; break;
  }
  size_t per_dir = defaults.size();
  std::vector<std::string> names = node.attr_strings("activations");
  if (names.empty()) names = defaults;
  if (names.size() == per_dir && dirs == 2) {
    std::vector<std::string> once = names;
    names.insert(names.end(), once.begin(), once.end());
  }
  if (names.size() != per_dir * static_cast<size_t>(dirs)) {
    return invalid_argument("{}: attribute activations lists {} functions; expected {} per direction ({} in all)",
                            node.describe(), names.size(), per_dir, per_dir * static_cast<size_t>(dirs));
  }
  std::vector<float> alphas = node.attr_floats("activation_alpha");
  std::vector<float> betas = node.attr_floats("activation_beta");
  size_t next_alpha = 0;
  size_t next_beta = 0;
  std::vector<std::vector<Activation>> out(static_cast<size_t>(dirs));
  for (size_t i = 0; i < names.size(); ++i) {
    const ActivationInfo* info = nullptr;
    for (const auto& a : kActivations) {
      if (lower(names[i]) == a.name) info = &a;
    }
    if (info == nullptr) {
      return invalid_argument(
          "{}: activation '{}' is not supported; use Relu, Tanh, Sigmoid, Affine, LeakyRelu, ThresholdedRelu, "
          "ScaledTanh, HardSigmoid, Elu, Softsign or Softplus",
          node.describe(), names[i]);
    }
    Activation act{info->fn, info->alpha, info->beta};
    if (info->uses_alpha && next_alpha < alphas.size()) act.alpha = alphas[next_alpha++];
    if (info->uses_beta && next_beta < betas.size()) act.beta = betas[next_beta++];
    out[i / per_dir].push_back(act);
  }
  return out;
}

bool is_rnn_float(DataType t) {
  return t == DataType::kFloat32 || t == DataType::kFloat64 || t == DataType::kFloat16 || t == DataType::kBFloat16;
}

// Checks an optional input (index i, named `name`) against dtype and dims.
Status check_input(const KernelContext& ctx, size_t i, const char* name, DataType dtype, const Dims& want) {
  if (!ctx.has_input(i)) return Status::ok();
  KILN_ASSIGN_OR_RETURN(const Tensor* t, ctx.tensor_input(i));
  if (t->dtype() != dtype) {
    return invalid_argument("{}: input {} is {} but X is {}", ctx.node().describe(), name, t->debug_string(),
                            data_type_name(dtype));
  }
  if (t->dims() != want) {
    return invalid_argument("{}: input {} has shape {}, expected {}", ctx.node().describe(), name,
                            dims_to_string(t->dims()), dims_to_string(want));
  }
  return Status::ok();
}

// 1 or 2 directions from the `direction` attribute.
Result<int64_t> parse_direction(const ir::Node& node, std::vector<bool>& reverse) {
  std::string dir = node.attr_string("direction", "forward");
  if (dir == "forward")
    reverse = {false};
  else if (dir == "reverse")
    reverse = {true};
  else if (dir == "bidirectional")
    reverse = {false, true};
  else {
    return invalid_argument("{}: attribute direction is '{}'; expected forward, reverse or bidirectional",
                            node.describe(), dir);
  }
  return static_cast<int64_t>(reverse.size());
}

int64_t gates_of(RnnKind kind) { return kind == RnnKind::kRnn ? 1 : kind == RnnKind::kGru ? 3 : 4; }

}  // namespace

Result<RnnSpec> make_rnn_spec(const KernelContext& ctx, RnnKind kind) {
  const ir::Node& node = ctx.node();
  RnnSpec s;
  s.kind = kind;
  s.gates = gates_of(kind);
  KILN_ASSIGN_OR_RETURN(s.dirs, parse_direction(node, s.reverse));
  if (ctx.opset() >= 14) {
    int64_t layout = node.attr_int("layout", 0);
    if (layout != 0 && layout != 1) {
      return invalid_argument("{}: attribute layout is {}; expected 0 or 1", node.describe(), layout);
    }
    s.layout1 = layout == 1;
  }
  if (node.has_attr("clip")) {
    float c = node.attr_float("clip", 0.f);
    if (!(c > 0.f)) return invalid_argument("{}: attribute clip is {}; it must be positive", node.describe(), c);
    s.clip = c;
  }
  s.input_forget = kind == RnnKind::kLstm && node.attr_int("input_forget", 0) != 0;
  s.linear_before_reset = kind == RnnKind::kGru && node.attr_int("linear_before_reset", 0) != 0;
  KILN_ASSIGN_OR_RETURN(s.f, parse_activations(node, kind, s.dirs));

  KILN_ASSIGN_OR_RETURN(const Tensor* x, ctx.tensor_input(0));
  KILN_ASSIGN_OR_RETURN(const Tensor* r, ctx.tensor_input(2));
  DataType dtype = x->dtype();
  if (!is_rnn_float(dtype)) {
    return invalid_argument("{}: X is {}; expected float, double, float16 or bfloat16", node.describe(),
                            x->debug_string());
  }
  if (x->rank() != 3) {
    return invalid_argument("{}: X has shape {}; expected rank 3 ({})", node.describe(), dims_to_string(x->dims()),
                            s.layout1 ? "[batch, seq, input]" : "[seq, batch, input]");
  }
  s.seq = s.layout1 ? x->dim(1) : x->dim(0);
  s.batch = s.layout1 ? x->dim(0) : x->dim(1);
  s.input = x->dim(2);
  if (r->rank() != 3) {
    return invalid_argument("{}: R has shape {}; expected [{}, {}*hidden, hidden]", node.describe(),
                            dims_to_string(r->dims()), s.dirs, s.gates);
  }
  s.hidden = node.has_attr("hidden_size") ? node.attr_int("hidden_size", 0) : r->dim(2);
  if (s.hidden <= 0 || s.hidden > (int64_t{1} << 32)) {
    return invalid_argument("{}: hidden_size is {}; it must be positive", node.describe(), s.hidden);
  }
  int64_t gh = s.gates * s.hidden;
  // W and R are required (the arity check guarantees they are present).
  KILN_RETURN_IF_ERROR(check_input(ctx, 1, "W", dtype, {s.dirs, gh, s.input}));
  KILN_RETURN_IF_ERROR(check_input(ctx, 2, "R", dtype, {s.dirs, gh, s.hidden}));
  KILN_RETURN_IF_ERROR(check_input(ctx, 3, "B", dtype, {s.dirs, 2 * gh}));
  KILN_RETURN_IF_ERROR(check_input(ctx, 5, "initial_h", dtype, s.state_dims()));
  if (kind == RnnKind::kLstm) {
    KILN_RETURN_IF_ERROR(check_input(ctx, 6, "initial_c", dtype, s.state_dims()));
    KILN_RETURN_IF_ERROR(check_input(ctx, 7, "P", dtype, {s.dirs, 3 * s.hidden}));
  }

  // The outputs must be allocatable (X may have a zero input size and huge seq/batch).
  auto y_numel = checked_numel(s.y_dims());
  if (!y_numel.is_ok()) return y_numel.status().with_context(node.describe() + ": output Y");

  s.lengths.assign(static_cast<size_t>(s.batch), s.seq);
  if (ctx.has_input(4)) {
    KILN_ASSIGN_OR_RETURN(const Tensor* lens, ctx.tensor_input(4));
    if ((lens->dtype() != DataType::kInt32 && lens->dtype() != DataType::kInt64) || lens->dims() != Dims{s.batch}) {
      return invalid_argument("{}: sequence_lens is {}; expected int32[{}]", node.describe(), lens->debug_string(),
                              s.batch);
    }
    KILN_ASSIGN_OR_RETURN(auto values, to_int64_vector(*lens));
    for (size_t b = 0; b < values.size(); ++b) {
      if (values[b] < 0 || values[b] > s.seq) {
        return invalid_argument("{}: sequence_lens[{}] is {}, outside [0, {}]", node.describe(), b, values[b], s.seq);
      }
      s.lengths[b] = values[b];
    }
  }
  return s;
}

Status rnn_infer(InferContext& ctx) {
  const ir::Node& node = ctx.node();
  std::vector<bool> reverse;
  KILN_ASSIGN_OR_RETURN(int64_t dirs, parse_direction(node, reverse));
  bool layout1 = ctx.opset() >= 14 && node.attr_int("layout", 0) == 1;
  const ir::ValueType& x = ctx.input_type(0);
  if (!x.is_tensor()) return Status::ok();
  Dim seq;
  Dim batch;
  if (x.shape.rank_known() && x.shape.rank() == 3) {
    seq = x.shape[layout1 ? 1 : 0];
    batch = x.shape[layout1 ? 0 : 1];
  }
  Dim hidden;
  if (node.has_attr("hidden_size")) {
    hidden = node.attr_int("hidden_size", -1);
  } else if (const ir::ValueType& r = ctx.input_type(2); r.is_tensor() && r.shape.rank_known() && r.shape.rank() == 3) {
    hidden = r.shape[2];
  }
  auto state = layout1 ? std::vector<Dim>{batch, dirs, hidden} : std::vector<Dim>{dirs, batch, hidden};
  auto y = layout1 ? std::vector<Dim>{batch, seq, dirs, hidden} : std::vector<Dim>{seq, dirs, batch, hidden};
  ctx.set_output_type(0, ir::ValueType::tensor(x.dtype, Shape(y)));
  for (size_t i = 1; i < ctx.num_outputs(); ++i) ctx.set_output_type(i, ir::ValueType::tensor(x.dtype, Shape(state)));
  return Status::ok();
}

}  // namespace kiln::ops
