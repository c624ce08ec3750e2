// Static shape inference over a whole graph.
#pragma once

#include "ir/graph.h"
#include "kiln/status.h"

namespace kiln::ops {

// Walks the nodes of `g` in order (and their subgraphs, first) and runs each
// op's InferFn, if it has one, to set output types. A type inference cannot
// determine keeps its declared value; where the declared and inferred types
// contradict each other, the declared one wins (logged at debug level).
// Captures of subgraphs take the types of the values they refer to.
// Fails, naming the node, if an InferFn finds a contradiction or a node's
// input/output counts do not fit its op.
Status infer_shapes(ir::Graph& g);

// Combines a declared and an inferred type: the inferred facts where the
// declaration is silent, the declared type where they conflict. `conflict`
// is set when they contradict each other.
ir::ValueType merge_types(const ir::ValueType& declared, const ir::ValueType& inferred, bool& conflict);

}  // namespace kiln::ops
