// bf16 / fp16 builds (kiln build --bf16 / --fp16).
//
// What this does today: the numerics of 16-bit storage with fp32 compute.
// The constant weights of Conv, ConvTranspose, Gemm and MatMul are rounded
// to the 16-bit type (round to nearest even; biases stay fp32), and each such
// layer's activation input passes through Cast(to 16-bit) -> Cast(to float),
// so layers see exactly the values a 16-bit tensor would hold and accumulate
// in fp32. Everything else stays fp32 automatically, the numerically fragile
// ops included (LayerNormalization statistics, Softmax, Exp, Pow,
// reductions): only the listed matrix layers are converted.
// What it does not do yet: keep the weights in 16 bits in the plan or run
// 16-bit kernels (F16C / AVX-512 BF16), so there is no memory or speed gain.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "kiln/status.h"

namespace kiln::quant {

// A layer and the precision it got ("bf16", "fp16" or "fp32").
struct LayerPrecision {
  std::string layer;
  std::string precision;
};

// `precision` is "bf16" or "fp16". Layers named in `keep_fp32` stay fp32
// (an error if a name matches no node). Returns every matrix layer with its precision.
Result<std::vector<LayerPrecision>> apply_half_precision(ir::Graph& graph, const std::string& precision,
                                                         const std::set<std::string>& keep_fp32);

// Layers kept in float from "NAME:fp32" overrides; `allowed` lists the other
// precisions a layer may name (e.g. {"int8"}).
Result<std::set<std::string>> parse_layer_overrides(const std::vector<std::string>& overrides,
                                                    const std::set<std::string>& allowed);

}  // namespace kiln::quant
