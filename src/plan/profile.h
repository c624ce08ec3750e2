// Optimization profiles: per input, the min/opt/max shapes a plan serves.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "ir/graph.h"
#include "kiln/status.h"
#include "kiln/tensor.h"
#include "plan/plan.h"

namespace kiln::plan {

// Input name -> dims, as trtexec writes them: "input_ids:8x128,attention_mask:8x128".
// A scalar input is written "name:" (no dims). Names may contain ':' (the
// last ':' separates the dims).
using ShapeSpec = std::map<std::string, Dims>;
Result<ShapeSpec> parse_shape_spec(std::string_view text);
std::string format_dims(const Dims& dims);  // "8x128"

// Makes the profiles of `graph`'s inputs from --shapes (min = opt = max) or
// --min/--opt/--max-shapes (any of them may be empty; a missing one takes
// opt's, then the other's). Checks every name is an input, ranks and fixed
// dims match the declared shape, and min <= opt <= max. Inputs mentioned in
// no spec get a profile only when their declared shape is fully known.
Result<std::vector<InputProfile>> make_profiles(const ir::Graph& graph, const ShapeSpec& shapes,
                                                const ShapeSpec& min, const ShapeSpec& opt, const ShapeSpec& max);

// OK if `dims` fits `profile`; otherwise an error naming the input, the dim and the range.
Status check_profile(const InputProfile& profile, const Dims& dims);

}  // namespace kiln::plan
