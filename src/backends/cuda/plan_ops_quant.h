// Internal to the GPU plan: the pieces of the int8 lowering that
// plan_ops_quant.cc (QuantizeLinear / DequantizeLinear) and
// plan_ops_qgemm.cc (int8 GEMMs) share.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "backends/cuda/plan_builder.h"

namespace kiln::backends::cuda::qdq {

inline bool is_float_storage(DataType t) {
  return t == DataType::kFloat32 || t == DataType::kFloat16 || t == DataType::kBFloat16;
}

inline int64_t numel_of(const Dims& d) {
  int64_t n = 1;
  for (int64_t x : d) n *= x;
  return n;
}

// Scale and zero point of a Q/DQ node over data of dims `x`: one per tensor,
// or one per index of `axis`.
struct QParams {
  std::vector<float> scale;
  std::vector<int32_t> zero_point;  // as many as scale
  int64_t channels = 1, inner = 1;  // element i is in channel (i / inner) % channels
  bool per_tensor() const { return scale.size() == 1; }
};

Result<QParams> read_qparams(PlanBuilder& b, const ir::Node& n, const Dims& x);

// Persistent float [C] and int32 [C] copies of a Q/DQ's parameters, the zero
// points moved by `shift`.
Result<std::pair<int, int>> param_consts(PlanBuilder& b, const ir::Node& n, const QParams& p, int32_t shift);

// A kDequantize step of device value `x` (int8/uint8/int32 storage) to the
// activation type; per-axis data is read row-major.
Result<int> emit_dequantize(PlanBuilder& b, const ir::Node& n, int x, const QParams& p, int32_t shift,
                            const std::string& name);

// The type a QuantizeLinear writes: its zero point's, output_dtype (opset 21), or uint8.
Result<DataType> quantized_type(const ir::Node& n);

// A uint8 value whose every reader takes int8 storage shifted by 128 (a
// DequantizeLinear or kiln.QGemm reading it as input 0), and no graph output.
bool can_store_shifted(const ir::Value* v);

}  // namespace kiln::backends::cuda::qdq
