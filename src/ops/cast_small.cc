#include "ops/cast_small.h"

#include "core/error.h"

namespace kiln::ops {

bool is_small_type(DataType t) {
  switch (t) {
    case DataType::kFloat8E4M3FN:
    case DataType::kFloat8E4M3FNUZ:
    case DataType::kFloat8E5M2:
    case DataType::kFloat8E5M2FNUZ:
    case DataType::kFloat8E8M0:
    case DataType::kFloat4E2M1:
    case DataType::kUInt4:
    case DataType::kInt4:
    case DataType::kUInt2:
    case DataType::kInt2:
      return true;
    default:
      return false;
  }
}

Result<Tensor> cast_small(const Tensor& x, DataType to, bool saturate, const std::string& round_mode) {
  (void)saturate;
  (void)round_mode;
  return unimplemented("Cast from {} to {} is not supported yet", data_type_name(x.dtype()), data_type_name(to));
}

}  // namespace kiln::ops
