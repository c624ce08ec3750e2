// Helpers shared by the sequence family's files (sequence.cc,
// sequence_split.cc, sequence_map.cc, sequence_optional.cc).
#pragma once

#include <cstdint>
#include <string>

#include "core/datum.h"
#include "ir/value_type.h"
#include "ops/op_def.h"

namespace kiln::ops {

class Registry;

// Registered by register_sequence (sequence.cc).
void register_sequence_split(Registry& r);     // SplitToSequence, ConcatFromSequence
void register_sequence_map(Registry& r);       // SequenceMap
void register_sequence_optional(Registry& r);  // Optional, OptionalHasElement, OptionalGetElement

// Input i as a sequence, or an error naming the node and `what` (the input's name).
Result<const Datum*> sequence_input(const KernelContext& ctx, size_t i, const std::string& what);

// The type of a sequence holding `elem` (which may be unknown).
ir::ValueType sequence_type(ir::ValueType elem);
// The element type of a sequence type, or unknown.
ir::ValueType sequence_elem(const ir::ValueType& t);

// The element dtype a new sequence built from `items` gets: items[0]'s dtype,
// else `fallback` (an empty sequence keeps the element type it had).
DataType items_dtype(const std::vector<Tensor>& items, DataType fallback);

}  // namespace kiln::ops
