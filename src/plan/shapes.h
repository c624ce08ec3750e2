// Concrete shapes of a graph's values for given input shapes.
#pragma once

#include <map>
#include <string>
#include <unordered_map>

#include "ir/graph.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::plan {

using ValueDims = std::unordered_map<const ir::Value*, Dims>;

// Runs shape inference on `graph` with its inputs fixed to `inputs` (input
// name -> dims; inputs not named keep their declared shape) and returns the
// dims of every top-level tensor value whose shape is then fully known. The
// graph's types (subgraphs included) are restored before returning.
Result<ValueDims> concrete_shapes(ir::Graph& graph, const std::map<std::string, Dims>& inputs);

// The dims of every top-level tensor value whose declared shape is fully known.
ValueDims static_shapes(const ir::Graph& graph);

// Every value of `g` (inputs, captures, constants, node inputs and outputs,
// outputs), each once, in a stable order: inputs, captures, constants, then
// node by node.
std::vector<ir::Value*> all_values(const ir::Graph& g);

}  // namespace kiln::plan
