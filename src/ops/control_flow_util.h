// Helpers shared by the control-flow ops (If, Loop, Scan): reading a
// condition, checking a body's formal parameters, slicing a tensor along an
// axis and stacking per-iteration tensors into scan outputs.
#pragma once

#include "ops/op_util.h"

#include <cstdint>
#include <string>
#include <vector>

#include "core/datum.h"
#include "ir/graph.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::ops {

class Registry;

// Registers Scan (ops/control_flow_scan.cc); called by register_control_flow.
void register_scan(Registry& r);

// "tensor", "sequence", "optional" or "nothing", for messages.
const char* datum_kind_name(const Datum& d);

// Reads a one-element bool tensor (If's cond, Loop's cond and cond_out).
// `what` names the value in the error, e.g. "input 'cond'".
Result<bool> read_condition(const Datum& d, const ir::Node& node, const std::string& what);

// The graph attribute `name` of `node`, or an error naming both.
Result<const ir::Graph*> graph_attr(const ir::Node& node, const std::string& name);


// The sub-tensor of rank r-1 at `index` along `axis` (a copy).
// Preconditions: 0 <= axis < t.rank(), 0 <= index < t.dim(axis).
Result<Tensor> slice_along_axis(const Tensor& t, int64_t axis, int64_t index);

// Stacks `items` (same dtype and dims, at least one) along a new axis `axis`
// (in [0, rank]) of the result: item i lands at position positions[i].
// `positions` is a permutation of [0, items.size()).
Result<Tensor> stack_along_axis(const std::vector<Tensor>& items, int64_t axis, const std::vector<int64_t>& positions);

// Per-iteration dims of a scan output that never ran, from the body output's
// static type: its dims when the type is a tensor of fully known shape,
// otherwise nothing (the caller then gives a 1-d empty tensor).
bool static_dims(const ir::ValueType& type, Dims& dims);
// Element type from a body output's static type; float when unknown.
DataType static_dtype(const ir::ValueType& type);

// Checks that an iteration's scan output `d` is a tensor matching the first
// iteration's `first` (if any). `what` names it in the error.
Status check_scan_item(const Datum& d, const Tensor* first, const ir::Node& node, const std::string& what);

// The static type both `a` and `b` satisfy (If branches, a loop-carried value
// before and after the body): equal parts are kept, differing dims become
// unknown, anything else is unknown.
ir::ValueType merge_value_types(const ir::ValueType& a, const ir::ValueType& b);
// The type of a scan output stacking items of type `item` along `axis` (may be
// negative) with `length` items (unknown when < 0).
ir::ValueType scan_output_type(const ir::ValueType& item, int64_t axis, int64_t length);

}  // namespace kiln::ops
