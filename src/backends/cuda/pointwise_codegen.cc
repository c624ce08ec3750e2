#include "backends/cuda/pointwise_codegen.h"

#include <bit>
#include <cmath>
#include <map>
#include <unordered_map>

#include "backends/cuda/plan_builder.h"
#include "core/error.h"

namespace kiln::backends::cuda {
namespace {

bool is_float(DataType t) { return t == DataType::kFloat32 || t == DataType::kFloat16 || t == DataType::kBFloat16; }

struct UnaryInfo {
  PwOp op;
  float p0, p1;  // attribute defaults (ONNX)
};

// Unary ops by type; parameters are read from attributes below.
const std::map<std::string, UnaryInfo, std::less<>>& unary_table() {
  static const std::map<std::string, UnaryInfo, std::less<>> t = {
      {"Relu", {PwOp::kRelu, 0, 0}},
      {"Sigmoid", {PwOp::kSigmoid, 0, 0}},
      {"Tanh", {PwOp::kTanh, 0, 0}},
      {"Exp", {PwOp::kExp, 0, 0}},
      {"Log", {PwOp::kLog, 0, 0}},
      {"Abs", {PwOp::kAbs, 0, 0}},
      {"Neg", {PwOp::kNeg, 0, 0}},
      {"Sqrt", {PwOp::kSqrt, 0, 0}},
      {"Reciprocal", {PwOp::kReciprocal, 0, 0}},
      {"Erf", {PwOp::kErf, 0, 0}},
      {"Floor", {PwOp::kFloor, 0, 0}},
      {"Ceil", {PwOp::kCeil, 0, 0}},
      {"Round", {PwOp::kRound, 0, 0}},
      {"Sign", {PwOp::kSign, 0, 0}},
      {"LeakyRelu", {PwOp::kLeakyRelu, 0.01f, 0}},
      {"Elu", {PwOp::kElu, 1.0f, 0}},
      {"Selu", {PwOp::kSelu, 1.67326319217681884765625f, 1.05070102214813232421875f}},
      {"Celu", {PwOp::kCelu, 1.0f, 0}},
      {"HardSigmoid", {PwOp::kHardSigmoid, 0.2f, 0.5f}},
      {"HardSwish", {PwOp::kHardSwish, 0, 0}},
      {"Softplus", {PwOp::kSoftplus, 0, 0}},
      {"Softsign", {PwOp::kSoftsign, 0, 0}},
      {"ThresholdedRelu", {PwOp::kThresholdedRelu, 1.0f, 0}},
      {"Sin", {PwOp::kSin, 0, 0}},
      {"Cos", {PwOp::kCos, 0, 0}},
      {"Mish", {PwOp::kMish, 0, 0}},
  };
  return t;
}

const std::map<std::string, PwOp, std::less<>>& binary_table() {
  static const std::map<std::string, PwOp, std::less<>> t = {
      {"Add", PwOp::kAdd}, {"Sub", PwOp::kSub}, {"Mul", PwOp::kMul}, {"Div", PwOp::kDiv},
      {"Pow", PwOp::kPow}, {"Max", PwOp::kMax}, {"Min", PwOp::kMin}, {"PRelu", PwOp::kPRelu},
  };
  return t;
}

class Translator {
 public:
  Translator(const ir::Graph& body, DataType x_dtype) : body_(body), x_dtype_(x_dtype) {}

  Result<PointwiseProgram> run() {
    if (body_.inputs().size() != 1 || body_.outputs().size() != 1) {
      return unimplemented("a Pointwise body with {} inputs and {} outputs", body_.inputs().size(),
                           body_.outputs().size());
    }
    if (!pointwise_loads(x_dtype_)) return unimplemented("a Pointwise input of type {}", data_type_name(x_dtype_));
    prog_.code.push_back(PwInstr{.op = PwOp::kInput});
    regs_[body_.inputs()[0]] = 0;
    types_.push_back(x_dtype_);
    for (const auto& node : body_.nodes()) {
      Status st = translate(*node);
      if (!st.is_ok()) return std::move(st).with_context(node->describe());
    }
    auto it = regs_.find(body_.outputs()[0]);
    if (it == regs_.end()) return unimplemented("the Pointwise body's output is not computed from its input");
    if (!is_float(types_[static_cast<size_t>(it->second)])) {
      return unimplemented("a Pointwise output of type {}", data_type_name(types_[static_cast<size_t>(it->second)]));
    }
    prog_.result = it->second;
    return std::move(prog_);
  }

 private:
  int emit(PwInstr in, DataType type) {
    prog_.code.push_back(in);
    types_.push_back(type);
    return static_cast<int>(prog_.code.size()) - 1;
  }

  // The register of input i of `n`: a computed value or a constant.
  Result<int> operand(const ir::Node& n, size_t i) {
    const ir::Value* v = n.input(i);
    if (v == nullptr) return invalid_argument("input {} is missing", i);
    auto it = regs_.find(v);
    if (it != regs_.end()) return it->second;
    if (!v->is_constant()) return unimplemented("input {} ('{}') is neither computed nor constant", i, v->name());
    KILN_ASSIGN_OR_RETURN(std::vector<float> f, tensor_floats(v->constant()));
    int r;
    if (f.size() == 1) {
      r = emit(PwInstr{.op = PwOp::kConst, .value = f[0]}, DataType::kFloat32);
    } else {
      KILN_ASSIGN_OR_RETURN(Tensor t, convert_tensor(v->constant(), DataType::kFloat32));
      prog_.tensors.push_back(t);
      r = emit(PwInstr{.op = PwOp::kTensor, .slot = static_cast<int>(prog_.tensors.size()) - 1}, DataType::kFloat32);
    }
    regs_[v] = r;
    return r;
  }

  Result<float> scalar_input(const ir::Node& n, size_t i) {
    const ir::Value* v = n.input(i);
    if (v == nullptr || !v->is_constant() || v->constant().numel() != 1) {
      return unimplemented("input {} must be a scalar constant", i);
    }
    KILN_ASSIGN_OR_RETURN(std::vector<float> f, tensor_floats(v->constant()));
    return f[0];
  }

  Status translate(const ir::Node& n) {
    const bool kiln_gelu = (n.domain() == "kiln" || n.domain() == "com.kiln") && n.op_type() == "Gelu";
    if (!kiln_gelu && !n.domain().empty() && n.domain() != "ai.onnx") {
      return unimplemented("op {}.{} in a Pointwise body", n.domain(), n.op_type());
    }
    if (n.num_outputs() != 1 || n.output(0) == nullptr) return unimplemented("a body node with several outputs");
    const std::string& t = n.op_type();
    KILN_ASSIGN_OR_RETURN(int a, operand(n, 0));
    DataType at = types_[static_cast<size_t>(a)];
    PwInstr in{.a = a};
    DataType out_type = at;
    if (t == "Cast") {
      auto to = data_type_from_int(n.attr_int("to", 0));
      if (!to || !is_float(*to)) return unimplemented("Cast to type {}", n.attr_int("to", 0));
      in.op = PwOp::kIdentity;  // float math is float; int inputs were converted at the load
      out_type = *to;
    } else if (!is_float(at)) {
      return unimplemented("{} on {} data", t, data_type_name(at));
    } else if (kiln_gelu || t == "Gelu") {
      std::string approx = n.attr_string("approximate", "none");
      if (approx != "none" && approx != "tanh") return invalid_argument("Gelu approximate '{}'", approx);
      in.op = approx == "tanh" ? PwOp::kGeluTanh : PwOp::kGelu;
    } else if (t == "Clip") {
      in.op = PwOp::kClip;
      in.p0 = -INFINITY;
      in.p1 = INFINITY;
      if (n.opset() >= 11) {
        if (n.has_input(1)) {
          KILN_ASSIGN_OR_RETURN(in.p0, scalar_input(n, 1));
        }
        if (n.has_input(2)) {
          KILN_ASSIGN_OR_RETURN(in.p1, scalar_input(n, 2));
        }
      } else {
        in.p0 = n.attr_float("min", -INFINITY);
        in.p1 = n.attr_float("max", INFINITY);
      }
    } else if (auto u = unary_table().find(t); u != unary_table().end()) {
      if (n.num_inputs() != 1) return unimplemented("{} with {} inputs", t, n.num_inputs());
      in.op = u->second.op;
      in.p0 = u->second.p0;
      in.p1 = u->second.p1;
      switch (in.op) {
        case PwOp::kLeakyRelu:
        case PwOp::kElu:
        case PwOp::kCelu:
        case PwOp::kThresholdedRelu:
          in.p0 = n.attr_float("alpha", in.p0);
          break;
        case PwOp::kSelu:
          in.p0 = n.attr_float("alpha", in.p0);
          in.p1 = n.attr_float("gamma", in.p1);
          break;
        case PwOp::kHardSigmoid:
          in.p0 = n.attr_float("alpha", in.p0);
          in.p1 = n.attr_float("beta", in.p1);
          break;
        default:
          break;
      }
    } else if (auto b = binary_table().find(t); b != binary_table().end()) {
      if (n.num_inputs() != 2) return unimplemented("{} with {} inputs", t, n.num_inputs());
      KILN_ASSIGN_OR_RETURN(int rb, operand(n, 1));
      if (!is_float(types_[static_cast<size_t>(rb)])) return unimplemented("{} of {} data", t, data_type_name(at));
      in.op = b->second;
      in.b = rb;
    } else {
      return unimplemented("op {} in a Pointwise body", t);
    }
    regs_[n.output(0)] = emit(in, out_type);
    return Status::ok();
  }

  const ir::Graph& body_;
  DataType x_dtype_;
  PointwiseProgram prog_;
  std::unordered_map<const ir::Value*, int> regs_;
  std::vector<DataType> types_;  // per register
};

std::string float_literal(float v) {
  if (!std::isfinite(v)) return fmt::format("__int_as_float({:#010x})", std::bit_cast<uint32_t>(v));
  std::string s = fmt::format("{:.9g}", v);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s + "f";
}

// The C expression of instruction `in` over registers named r<i>.
std::string expression(const PwInstr& in) {
  std::string a = fmt::format("r{}", in.a), b = fmt::format("r{}", in.b);
  std::string p0 = float_literal(in.p0), p1 = float_literal(in.p1);
  switch (in.op) {
    case PwOp::kInput:
    case PwOp::kConst:
    case PwOp::kTensor:
      return "";  // emitted by the caller
    case PwOp::kIdentity:
      return a;
    case PwOp::kRelu:
      return fmt::format("({0} > 0.0f ? {0} : 0.0f)", a);
    case PwOp::kSigmoid:
      return fmt::format("1.0f / (1.0f + expf(-{}))", a);
    case PwOp::kTanh:
      return fmt::format("tanhf({})", a);
    case PwOp::kExp:
      return fmt::format("expf({})", a);
    case PwOp::kLog:
      return fmt::format("logf({})", a);
    case PwOp::kAbs:
      return fmt::format("fabsf({})", a);
    case PwOp::kNeg:
      return fmt::format("-{}", a);
    case PwOp::kSqrt:
      return fmt::format("sqrtf({})", a);
    case PwOp::kReciprocal:
      return fmt::format("1.0f / {}", a);
    case PwOp::kErf:
      return fmt::format("erff({})", a);
    case PwOp::kFloor:
      return fmt::format("floorf({})", a);
    case PwOp::kCeil:
      return fmt::format("ceilf({})", a);
    case PwOp::kRound:
      return fmt::format("rintf({})", a);
    case PwOp::kSign:
      return fmt::format("({0} > 0.0f ? 1.0f : ({0} < 0.0f ? -1.0f : {0}))", a);
    case PwOp::kLeakyRelu:
      return fmt::format("({0} >= 0.0f ? {0} : {1} * {0})", a, p0);
    case PwOp::kElu:
      return fmt::format("({0} >= 0.0f ? {0} : {1} * (expf({0}) - 1.0f))", a, p0);
    case PwOp::kSelu:
      return fmt::format("({0} > 0.0f ? {2} * {0} : {2} * ({1} * expf({0}) - {1}))", a, p0, p1);
    case PwOp::kCelu:
      return fmt::format("(fmaxf({0}, 0.0f) + fminf(0.0f, {1} * (expf({0} / {1}) - 1.0f)))", a, p0);
    case PwOp::kHardSigmoid:
      return fmt::format("fmaxf(0.0f, fminf(1.0f, {1} * {0} + {2}))", a, p0, p1);
    case PwOp::kHardSwish:
      return fmt::format("{0} * fmaxf(0.0f, fminf(1.0f, {0} * (1.0f / 6.0f) + 0.5f))", a);
    case PwOp::kSoftplus:
      return fmt::format("({0} > 20.0f ? {0} : log1pf(expf({0})))", a);
    case PwOp::kSoftsign:
      return fmt::format("{0} / (1.0f + fabsf({0}))", a);
    case PwOp::kThresholdedRelu:
      return fmt::format("({0} > {1} ? {0} : 0.0f)", a, p0);
    case PwOp::kSin:
      return fmt::format("sinf({})", a);
    case PwOp::kCos:
      return fmt::format("cosf({})", a);
    case PwOp::kGelu:
      return fmt::format("0.5f * {0} * (1.0f + erff({0} * 0.707106781f))", a);
    case PwOp::kGeluTanh:
      return fmt::format("0.5f * {0} * (1.0f + tanhf(0.797884561f * ({0} + 0.044715f * {0} * {0} * {0})))", a);
    case PwOp::kMish:
      return fmt::format("{0} * tanhf({0} > 20.0f ? {0} : log1pf(expf({0})))", a);
    case PwOp::kClip:
      return fmt::format("fminf(fmaxf({}, {}), {})", a, p0, p1);
    case PwOp::kAdd:
      return fmt::format("{} + {}", a, b);
    case PwOp::kSub:
      return fmt::format("{} - {}", a, b);
    case PwOp::kMul:
      return fmt::format("{} * {}", a, b);
    case PwOp::kDiv:
      return fmt::format("{} / {}", a, b);
    case PwOp::kPow:
      return fmt::format("powf({}, {})", a, b);
    case PwOp::kMax:
      return fmt::format("fmaxf({}, {})", a, b);
    case PwOp::kMin:
      return fmt::format("fminf({}, {})", a, b);
    case PwOp::kPRelu:
      return fmt::format("({0} < 0.0f ? {1} * {0} : {0})", a, b);
  }
  return a;
}

const char* c_type(DataType t) {
  switch (t) {
    case DataType::kFloat32:
      return "float";
    case DataType::kFloat16:
    case DataType::kBFloat16:
      return "unsigned short";
    case DataType::kFloat64:
      return "double";
    case DataType::kInt64:
      return "long long";
    case DataType::kInt32:
      return "int";
    case DataType::kInt8:
      return "signed char";
    default:  // uint8, bool
      return "unsigned char";
  }
}

std::string load(DataType t, const std::string& e) {
  switch (t) {
    case DataType::kFloat32:
      return e;
    case DataType::kFloat16:
      return "kiln_half_to_float(" + e + ")";
    case DataType::kBFloat16:
      return "kiln_bf16_to_float(" + e + ")";
    case DataType::kBool:
      return "(" + e + " != 0 ? 1.0f : 0.0f)";
    default:
      return "(float)" + e;
  }
}

std::string store(DataType t, const std::string& e) {
  switch (t) {
    case DataType::kFloat16:
      return "kiln_float_to_half(" + e + ")";
    case DataType::kBFloat16:
      return "kiln_float_to_bf16(" + e + ")";
    default:
      return e;
  }
}

// Conversions without cuda_fp16.h / cuda_bf16.h: PTX cvt for half (sm_53+),
// bit manipulation for bfloat16 (round to nearest even, NaN kept quiet).
constexpr const char* kHelpers = R"(__forceinline__ float kiln_half_to_float(unsigned short h) {
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
  return f;
}
__forceinline__ unsigned short kiln_float_to_half(float f) {
  unsigned short h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
  return h;
}
__forceinline__ float kiln_bf16_to_float(unsigned short h) { return __uint_as_float(((unsigned int)h) << 16); }
__forceinline__ unsigned short kiln_float_to_bf16(float f) {
  unsigned int u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (unsigned short)(u >> 16);
}
)";

}  // namespace

bool pointwise_loads(DataType t) {
  switch (t) {
    case DataType::kFloat32:
    case DataType::kFloat16:
    case DataType::kBFloat16:
    case DataType::kFloat64:
    case DataType::kInt64:
    case DataType::kInt32:
    case DataType::kInt8:
    case DataType::kUInt8:
    case DataType::kBool:
      return true;
    default:
      return false;
  }
}

bool pointwise_stores(DataType t) { return is_float(t); }

Result<PointwiseProgram> translate_pointwise_body(const ir::Graph& body, DataType x_dtype) {
  return Translator(body, x_dtype).run();
}

std::string pointwise_cuda_source(const PointwiseProgram& program, DataType x_dtype, DataType y_dtype, int rank) {
  const size_t k = program.tensors.size();
  const int r = k == 0 ? 0 : rank;
  std::string s = "// kiln.Pointwise kernel (generated by the Kiln GPU plan)\n";
  s += kHelpers;
  s += fmt::format("struct KilnPwArgs {{\n  long long v[{}];\n}};\n", 1 + r + static_cast<int>(k) * r);
  s +=
      fmt::format("extern \"C\" __global__ void __launch_bounds__(256) {}({}* __restrict__ y, const {}* __restrict__ x",
                  kPointwiseKernelName, c_type(y_dtype), c_type(x_dtype));
  for (size_t i = 0; i < k; ++i) s += fmt::format(", const float* __restrict__ t{}", i);
  s += ", KilnPwArgs args) {\n";
  s += "  const long long n = args.v[0];\n";
  s += "  const long long step = (long long)gridDim.x * blockDim.x;\n";
  s += "  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {\n";
  if (k > 0) {
    for (size_t i = 0; i < k; ++i) s += fmt::format("    long long o{} = 0;\n", i);
    s += "    long long rem = i;\n";
    for (int d = r - 1; d >= 0; --d) {
      s += fmt::format("    {{\n      const long long idx = rem % args.v[{0}];\n      rem /= args.v[{0}];\n", 1 + d);
      for (size_t i = 0; i < k; ++i) {
        s += fmt::format("      o{} += idx * args.v[{}];\n", i, 1 + r + static_cast<int>(i) * r + d);
      }
      s += "    }\n";
    }
  }
  for (size_t i = 0; i < program.code.size(); ++i) {
    const PwInstr& in = program.code[i];
    std::string e = in.op == PwOp::kInput    ? load(x_dtype, "x[i]")
                    : in.op == PwOp::kConst  ? float_literal(in.value)
                    : in.op == PwOp::kTensor ? fmt::format("t{0}[o{0}]", in.slot)
                                             : expression(in);
    s += fmt::format("    const float r{} = {};\n", i, e);
  }
  s += fmt::format("    y[i] = {};\n  }}\n}}\n", store(y_dtype, fmt::format("r{}", program.result)));
  return s;
}

std::vector<int64_t> pointwise_args(const Dims& dims, const std::vector<Dims>& strides) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  std::vector<int64_t> v = {n};
  if (strides.empty()) return v;
  v.insert(v.end(), dims.begin(), dims.end());
  for (const Dims& s : strides) v.insert(v.end(), s.begin(), s.end());
  return v;
}

float evaluate_pointwise(const PointwiseProgram& program, float x, const float* tensor_values) {
  std::vector<float> r(program.code.size(), 0.0f);
  for (size_t i = 0; i < program.code.size(); ++i) {
    const PwInstr& in = program.code[i];
    float a = in.a >= 0 ? r[static_cast<size_t>(in.a)] : 0.0f;
    float b = in.b >= 0 ? r[static_cast<size_t>(in.b)] : 0.0f;
    float p0 = in.p0, p1 = in.p1;
    float v = 0.0f;
    switch (in.op) {
      case PwOp::kInput:
        v = x;
        break;
      case PwOp::kConst:
        v = in.value;
        break;
      case PwOp::kTensor:
        v = tensor_values[in.slot];
        break;
      case PwOp::kIdentity:
        v = a;
        break;
      case PwOp::kRelu:
        v = a > 0.0f ? a : 0.0f;
        break;
      case PwOp::kSigmoid:
        v = 1.0f / (1.0f + std::exp(-a));
        break;
      case PwOp::kTanh:
        v = std::tanh(a);
        break;
      case PwOp::kExp:
        v = std::exp(a);
        break;
      case PwOp::kLog:
        v = std::log(a);
        break;
      case PwOp::kAbs:
        v = std::fabs(a);
        break;
      case PwOp::kNeg:
        v = -a;
        break;
      case PwOp::kSqrt:
        v = std::sqrt(a);
        break;
      case PwOp::kReciprocal:
        v = 1.0f / a;
        break;
      case PwOp::kErf:
        v = std::erf(a);
        break;
      case PwOp::kFloor:
        v = std::floor(a);
        break;
      case PwOp::kCeil:
        v = std::ceil(a);
        break;
      case PwOp::kRound:
        v = std::nearbyint(a);
        break;
      case PwOp::kSign:
        v = a > 0.0f ? 1.0f : a < 0.0f ? -1.0f : a;
        break;
      case PwOp::kLeakyRelu:
        v = a >= 0.0f ? a : p0 * a;
        break;
      case PwOp::kElu:
        v = a >= 0.0f ? a : p0 * (std::exp(a) - 1.0f);
        break;
      case PwOp::kSelu:
        v = a > 0.0f ? p1 * a : p1 * (p0 * std::exp(a) - p0);
        break;
      case PwOp::kCelu:
        v = std::fmax(a, 0.0f) + std::fmin(0.0f, p0 * (std::exp(a / p0) - 1.0f));
        break;
      case PwOp::kHardSigmoid:
        v = std::fmax(0.0f, std::fmin(1.0f, p0 * a + p1));
        break;
      case PwOp::kHardSwish:
        v = a * std::fmax(0.0f, std::fmin(1.0f, a * (1.0f / 6.0f) + 0.5f));
        break;
      case PwOp::kSoftplus:
        v = a > 20.0f ? a : std::log1p(std::exp(a));
        break;
      case PwOp::kSoftsign:
        v = a / (1.0f + std::fabs(a));
        break;
      case PwOp::kThresholdedRelu:
        v = a > p0 ? a : 0.0f;
        break;
      case PwOp::kSin:
        v = std::sin(a);
        break;
      case PwOp::kCos:
        v = std::cos(a);
        break;
      case PwOp::kGelu:
        v = 0.5f * a * (1.0f + std::erf(a * 0.707106781f));
        break;
      case PwOp::kGeluTanh:
        v = 0.5f * a * (1.0f + std::tanh(0.797884561f * (a + 0.044715f * a * a * a)));
        break;
      case PwOp::kMish:
        v = a * std::tanh(a > 20.0f ? a : std::log1p(std::exp(a)));
        break;
      case PwOp::kClip:
        v = std::fmin(std::fmax(a, p0), p1);
        break;
      case PwOp::kAdd:
        v = a + b;
        break;
      case PwOp::kSub:
        v = a - b;
        break;
      case PwOp::kMul:
        v = a * b;
        break;
      case PwOp::kDiv:
        v = a / b;
        break;
      case PwOp::kPow:
        v = std::pow(a, b);
        break;
      case PwOp::kMax:
        v = std::fmax(a, b);
        break;
      case PwOp::kMin:
        v = std::fmin(a, b);
        break;
      case PwOp::kPRelu:
        v = a < 0.0f ? b * a : a;
        break;
    }
    r[i] = v;
  }
  return r[static_cast<size_t>(program.result)];
}

}  // namespace kiln::backends::cuda
