// AVX2 spans of the QuantizeLinear / DequantizeLinear tactics
// (qdq_tactics.cc), bit-exact with its scalar loops. Called only after
// detect_isa() says AVX2. Each handles a multiple of 32 elements from the
// start and returns how many; the caller finishes the rest.
#pragma once

#include <cstdint>

namespace kiln::backends::cpu {

// out[i] = saturate(nearbyint(in[i] / scale) + zp), NaN -> zp, with
// [clo, chi] = [lo - zp - 1, hi - zp + 1] as in quantize_span.
int64_t quantize_span_avx2(const float* in, uint8_t* out, int64_t n, float scale, float zp, float lo, float hi,
                           float clo, float chi, bool is_signed);
// out[i] = float(q(in[i]) - zp) * scale, q the byte as int8 or uint8.
int64_t dequantize_span_avx2(const uint8_t* in, float* out, int64_t n, int32_t zp, float scale, bool is_signed);

}  // namespace kiln::backends::cpu
