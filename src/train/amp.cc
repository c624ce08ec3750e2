#include "train/amp.h"

#include <algorithm>
#include <cctype>

#include "core/error.h"

namespace kiln::train {

std::string AmpConfig::name() const {
  std::string n = "O" + std::to_string(static_cast<int>(level));
  if (level != AmpLevel::kO0 && low == Precision::kBf16) n += "-bf16";
  return n;
}

Result<AmpConfig> parse_amp_level(std::string_view text) {
  std::string s(text);
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  std::replace(s.begin(), s.end(), '_', '-');
  AmpConfig c;
  std::string level = s;
  if (size_t dash = s.find('-'); dash != std::string::npos) {
    level = s.substr(0, dash);
    std::string type = s.substr(dash + 1);
    if (type == "bf16" || type == "bfloat16") {
      c.low = Precision::kBf16;
    } else if (type != "fp16" && type != "float16") {
      return invalid_argument("unknown AMP precision '{}' (fp16 or bf16)", type);
    }
  }
  if (level == "o0") {
    c.level = AmpLevel::kO0;
  } else if (level == "o1") {
    c.level = AmpLevel::kO1;
  } else if (level == "o2") {
    c.level = AmpLevel::kO2;
  } else if (level == "o3") {
    c.level = AmpLevel::kO3;
  } else {
    return invalid_argument("unknown AMP level '{}' (O0, O1, O2, O3, optionally -bf16)", text);
  }
  c.master_weights = c.level != AmpLevel::kO3;
  // fp16 needs the dynamic scaler; bf16 has fp32's range; O3 is the unscaled reference.
  bool dynamic = c.low == Precision::kFp16 && (c.level == AmpLevel::kO1 || c.level == AmpLevel::kO2);
  c.scaler.dynamic = dynamic;
  if (!dynamic) c.scaler.init_scale = 1.0;
  return c;
}

PrecisionPlan make_precision_plan(const ir::Graph& graph, const AmpConfig& config,
                                  const std::vector<const ir::Value*>& params) {
  PrecisionPlan plan;
  if (config.level == AmpLevel::kO0) return plan;
  const Precision low = config.low;
  const Precision f32 = Precision::kFp32;
  // Storage precision of values as the nodes are visited in order.
  auto storage = [&](const ir::Value* v) {
    if (auto it = plan.values.find(v); it != plan.values.end()) return it->second;
    if (v->producer() != nullptr) {
      if (auto it = plan.nodes.find(v->producer()); it != plan.nodes.end()) return it->second;
    }
    return f32;
  };
  if (config.level != AmpLevel::kO1) {
    // O2/O3: the model's inputs and weights are in the low precision, except
    // normalization parameters in O2.
    for (const ir::Value* v : graph.inputs()) plan.values[v] = low;
    for (const ir::Value* p : params) {
      bool norm_param = false;
      for (const ir::Use& u : p->uses()) {
        const GradRule* r = find_grad_rule(u.node->op_type());
        norm_param = norm_param || (r != nullptr && r->is_norm);
      }
      plan.values[p] = (config.level == AmpLevel::kO2 && norm_param) ? f32 : low;
    }
  }
  for (const auto& node_ptr : graph.nodes()) {
    const ir::Node* n = node_ptr.get();
    const GradRule* r = find_grad_rule(n->op_type());
    Precision p = f32;
    if (r == nullptr) {
      p = f32;  // the tape reports the missing rule
    } else if (config.level == AmpLevel::kO3) {
      p = low;
    } else if (config.level == AmpLevel::kO2) {
      p = r->is_norm ? f32 : low;
    } else if (r->op_class == OpClass::kLowPrecision) {
      p = low;
    } else if (r->op_class == OpClass::kFp32) {
      p = f32;
    } else {  // promote: the widest float input
      bool any = false;
      for (const ir::Value* v : n->inputs()) {
        if (v == nullptr) continue;
        if (v->is_constant() && v->constant().dtype() != DataType::kFloat32) continue;
        p = any ? widest(p, storage(v)) : storage(v);
        any = true;
      }
      if (!any) p = f32;
    }
    plan.nodes[n] = p;
  }
  return plan;
}

}  // namespace kiln::train
