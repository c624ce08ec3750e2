// The accuracy budget (--max-accuracy-drop): which quantized layers to keep
// in fp32 so that int8 stays within `max_drop` top-1 points of fp32.
//
// Measured on the calibration batches with the reference interpreter on the
// Q/DQ graph (before lowering), with fp32's own predictions as the labels,
// so the drop is 100 - (top-1 agreement with fp32), an upper bound of the
// real top-1 drop. Each quantized layer's sensitivity is the agreement gained
// by keeping only it in fp32; layers go back to fp32 most sensitive first
// until the budget holds (or none is left). A layer is switched by pointing
// its activation and weight inputs at the float values instead of their
// DequantizeLinear, so the search needs no copies of the graph.
#pragma once

#include <string>
#include <vector>

#include "ir/graph.h"
#include "kiln/status.h"
#include "quant/quantizer.h"

namespace kiln::quant {

// A quantized layer's two forms of its inputs (values owned by the graph).
struct LayerSwitch {
  ir::Node* layer = nullptr;
  ir::Value* float_input = nullptr;
  ir::Value* dq_input = nullptr;
  ir::Value* float_weight = nullptr;
  ir::Value* dq_weight = nullptr;
};

struct SensitivityResult {
  std::vector<std::string> fp32_layers;  // chosen, most sensitive first
  double int8_drop = 0;                  // all layers int8
  double final_drop = 0;
  std::vector<std::string> lines;        // the trade-off, for printing
};

// Searches and leaves `graph` with the chosen layers switched to fp32.
Result<SensitivityResult> keep_sensitive_layers(ir::Graph& graph, const std::vector<LayerSwitch>& layers,
                                                const std::vector<Feed>& batches, double max_drop);

}  // namespace kiln::quant
