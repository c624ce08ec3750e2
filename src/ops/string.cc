// Op family: strings. StringConcat, StringSplit, StringNormalizer and
// RegexFullMatch here; TfIdfVectorizer in string_tfidf.cc.
//
// Strings are byte strings holding UTF-8 (ONNX's convention). Splitting on
// whitespace and case changes follow Python's str methods, which ONNX's
// reference implementation uses, for ASCII and the common alphabets (see
// string_util.cc); regular expressions use RE2, the syntax the spec names.
#include <re2/re2.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "core/error.h"
#include "ops/families.h"
#include "ops/op_util.h"
#include "ops/registry.h"
#include "ops/string_util.h"

namespace kiln::ops {
namespace {

Result<const Tensor*> string_input(KernelContext& ctx, size_t i, std::string_view what) {
  KILN_ASSIGN_OR_RETURN(const Tensor* t, ctx.tensor_input(i));
  if (t->dtype() != DataType::kString) {
    return ctx.error(invalid_argument("{} must be a string tensor, got {}", what, data_type_name(t->dtype())));
  }
  return t;
}

// The input's shape when it is a tensor of known rank, else nullptr.
const Shape* known_shape(const InferContext& ctx, size_t i) {
  const ir::ValueType& t = ctx.input_type(i);
  return t.is_tensor() && t.shape.rank_known() ? &t.shape : nullptr;
}

// ---- StringConcat ---------------------------------------------------------------

Status string_concat_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, string_input(ctx, 0, "input X"));
  KILN_ASSIGN_OR_RETURN(const Tensor* y, string_input(ctx, 1, "input Y"));
  auto dims = broadcast_dims(x->dims(), y->dims());
  if (!dims.is_ok()) return ctx.error(dims.status());
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.allocate_output(0, DataType::kString, *dims));
  BroadcastIterator it(*dims, {x->dims(), y->dims()});
  std::string* po = out->data<std::string>();
  for (int64_t i = 0; i < out->numel(); ++i, it.next()) {
    po[i] = x->data<std::string>()[it.offset(0)] + y->data<std::string>()[it.offset(1)];
  }
  return Status::ok();
}

Status string_concat_infer(InferContext& ctx) {
  const Shape* a = known_shape(ctx, 0);
  const Shape* b = known_shape(ctx, 1);
  Shape out;
  if (a != nullptr && b != nullptr) {
    auto s = broadcast_shapes(*a, *b);
    if (!s.is_ok()) return s.status().with_context(ctx.node().describe());
    out = *s;
  }
  ctx.set_output_type(0, ir::ValueType::tensor(DataType::kString, out));
  return Status::ok();
}

// ---- StringSplit ----------------------------------------------------------------

Status string_split_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, string_input(ctx, 0, "input X"));
  const ir::Node& node = ctx.node();
  const std::string delimiter = node.attr_string("delimiter", "");
  // Absent or negative maxsplit: no limit (Python's str.split(maxsplit=-1)).
  const int64_t maxsplit = node.has_attr("maxsplit") ? node.attr_int("maxsplit", -1) : -1;

  std::vector<std::vector<std::string>> parts(static_cast<size_t>(x->numel()));
  int64_t width = 0;
  for (int64_t i = 0; i < x->numel(); ++i) {
    const std::string& s = x->data<std::string>()[i];
    parts[i] = delimiter.empty() ? split_whitespace(s, maxsplit) : split_on(s, delimiter, maxsplit);
    width = std::max<int64_t>(width, static_cast<int64_t>(parts[i].size()));
  }
  Dims y_dims = x->dims();
  y_dims.push_back(width);
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0, DataType::kString, y_dims));
  for (int64_t i = 0; i < x->numel(); ++i) {
    for (size_t j = 0; j < parts[i].size(); ++j) y->data<std::string>()[i * width + static_cast<int64_t>(j)] = parts[i][j];
  }
  if (ctx.wants_output(1)) {
    KILN_ASSIGN_OR_RETURN(Tensor * z, ctx.allocate_output(1, DataType::kInt64, x->dims()));
    for (int64_t i = 0; i < x->numel(); ++i) z->data<int64_t>()[i] = static_cast<int64_t>(parts[i].size());
  }
  return Status::ok();
}

Status string_split_infer(InferContext& ctx) {
  Shape y;
  Shape z;
  if (const Shape* x = known_shape(ctx, 0)) {
    std::vector<Dim> dims = x->dims();
    dims.emplace_back();
    y = Shape(dims);
    z = *x;
  }
  ctx.set_output_type(0, ir::ValueType::tensor(DataType::kString, y));
  if (ctx.num_outputs() > 1) ctx.set_output_type(1, ir::ValueType::tensor(DataType::kInt64, z));
  return Status::ok();
}

// ---- StringNormalizer -------------------------------------------------------------

enum class CaseChange { kNone, kLower, kUpper };

Result<CaseChange> case_change_of(const ir::Node& node) {
  std::string action = node.attr_string("case_change_action", "NONE");
  if (action == "NONE") return CaseChange::kNone;
  if (action == "LOWER") return CaseChange::kLower;
  if (action == "UPPER") return CaseChange::kUpper;
  return invalid_argument("{}: case_change_action must be NONE, LOWER or UPPER, got '{}'", node.describe(), action);
}

// Removes the elements equal to a stopword (compared ignoring case unless
// is_case_sensitive), then changes case. Accepts [C] and [1, C]; when every
// element is removed the output is one empty string ([1] or [1, 1]).
Status string_normalizer_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, string_input(ctx, 0, "input X"));
  const ir::Node& node = ctx.node();
  KILN_ASSIGN_OR_RETURN(CaseChange action, case_change_of(node));
  if (!(x->rank() == 1 || (x->rank() == 2 && x->dim(0) == 1))) {
    return ctx.error(invalid_argument("input X must have shape [C] or [1, C], got {}", dims_to_string(x->dims())));
  }
  const bool case_sensitive = node.attr_int("is_case_sensitive", 0) != 0;
  std::unordered_set<std::string> stops;
  for (const std::string& w : node.attr_strings("stopwords")) stops.insert(case_sensitive ? w : utf8_lower(w));

  std::vector<std::string> kept;
  for (int64_t i = 0; i < x->numel(); ++i) {
    const std::string& s = x->data<std::string>()[i];
    if (!stops.empty() && stops.contains(case_sensitive ? s : utf8_lower(s))) continue;
    kept.push_back(action == CaseChange::kLower ? utf8_lower(s) : action == CaseChange::kUpper ? utf8_upper(s) : s);
  }
  if (kept.empty()) kept.emplace_back();
  const int64_t c = static_cast<int64_t>(kept.size());
  Dims dims = x->rank() == 1 ? Dims{c} : Dims{1, c};
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0, DataType::kString, dims));
  for (int64_t i = 0; i < c; ++i) y->data<std::string>()[i] = std::move(kept[static_cast<size_t>(i)]);
  return Status::ok();
}

Status string_normalizer_infer(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(case_change_of(ctx.node()).status());
  Shape out;
  if (const Shape* x = known_shape(ctx, 0)) {
    if (x->rank() != 1 && x->rank() != 2) {
      return invalid_argument("{}: input X must have shape [C] or [1, C], got rank {}", ctx.node().describe(),
                              x->rank());
    }
    if (x->rank() == 2 && (*x)[0].known() && (*x)[0].value != 1) {
      return invalid_argument("{}: input X must have shape [C] or [1, C], got {}", ctx.node().describe(),
                              x->to_string());
    }
    // Without stopwords no element is dropped and the shape is kept, except
    // that an empty input gives one empty string.
    out = *x;
    Dim& c = out[x->rank() - 1];
    if (!ctx.node().attr_strings("stopwords").empty()) {
      c = Dim();
    } else if (c.known() && c.value == 0) {
      c = Dim(1);
    }
    if (x->rank() == 2) out[0] = Dim(1);
  }
  ctx.set_output_type(0, ir::ValueType::tensor(DataType::kString, out));
  return Status::ok();
}

// ---- RegexFullMatch -----------------------------------------------------------------

Status regex_full_match_kernel(KernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(const Tensor* x, string_input(ctx, 0, "input X"));
  const ir::Attribute* pattern = ctx.node().attr("pattern");
  if (pattern == nullptr || pattern->kind != ir::Attribute::Kind::kString) {
    return ctx.error(invalid_argument("attribute 'pattern' (a string) is required"));
  }
  RE2::Options options;
  options.set_log_errors(false);
  RE2 re(pattern->s, options);
  if (!re.ok()) return ctx.error(invalid_argument("invalid RE2 pattern '{}': {}", pattern->s, re.error()));
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0, DataType::kBool, x->dims()));
  for (int64_t i = 0; i < x->numel(); ++i) y->data<bool>()[i] = RE2::FullMatch(x->data<std::string>()[i], re);
  return Status::ok();
}

Status regex_full_match_infer(InferContext& ctx) {
  const Shape* x = known_shape(ctx, 0);
  ctx.set_output_type(0, ir::ValueType::tensor(DataType::kBool, x != nullptr ? *x : Shape()));
  return Status::ok();
}

}  // namespace

void register_string(Registry& r) {
  r.add({.name = "StringConcat", .domain = "", .since_version = 20, .min_inputs = 2, .max_inputs = 2,
         .kernel = string_concat_kernel, .infer = string_concat_infer});
  r.add({.name = "StringSplit", .domain = "", .since_version = 20, .min_inputs = 1, .max_inputs = 1,
         .min_outputs = 1, .max_outputs = 2, .kernel = string_split_kernel, .infer = string_split_infer});
  r.add({.name = "StringNormalizer", .domain = "", .since_version = 10, .min_inputs = 1, .max_inputs = 1,
         .kernel = string_normalizer_kernel, .infer = string_normalizer_infer});
  r.add({.name = "RegexFullMatch", .domain = "", .since_version = 20, .min_inputs = 1, .max_inputs = 1,
         .kernel = regex_full_match_kernel, .infer = regex_full_match_infer});
  register_tfidf_vectorizer(r);
}

}  // namespace kiln::ops
