// kiln.Pointwise on the GPU: the body (a chain of elementwise ops, see
// ops/fused_misc.cc and passes/pointwise_fusion.cc) is translated into a
// small register program, from which CUDA C source is generated at plan
// time; the engine compiles it with NVRTC (nvrtc_compile.h) and launches it
// one thread per output element.
//
// The program computes in float registers: register 0 is the input x loaded
// from its storage type (float, half, bfloat16 or an integer/bool type that a
// Cast turns into float), scalar constants are literals in the source, and
// larger constants (which broadcast into x without enlarging it) are float
// device arrays read with per-dimension strides. Casts among float types are
// no-ops, as everywhere in the plan (floating values share the precision's
// storage type). The same program is evaluated on the host by the plan
// emulator, so the lowering is tested without a GPU.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln::backends::cuda {

enum class PwOp : int {
  kInput,   // x
  kConst,   // `value`
  kTensor,  // constant tensor `slot`, at this element's broadcast offset
  // unary (operand a; parameters p0, p1)
  kIdentity,
  kRelu,
  kSigmoid,
  kTanh,
  kExp,
  kLog,
  kAbs,
  kNeg,
  kSqrt,
  kReciprocal,
  kErf,
  kFloor,
  kCeil,
  kRound,
  kSign,
  kLeakyRelu,    // p0 alpha
  kElu,          // p0 alpha
  kSelu,         // p0 alpha, p1 gamma
  kCelu,         // p0 alpha
  kHardSigmoid,  // p0 alpha, p1 beta
  kHardSwish,
  kSoftplus,
  kSoftsign,
  kThresholdedRelu,  // p0 alpha
  kSin,
  kCos,
  kGelu,
  kGeluTanh,
  kMish,
  kClip,  // p0 min, p1 max
  // binary (operands a, b)
  kAdd,
  kSub,
  kMul,
  kDiv,
  kPow,
  kMax,
  kMin,
  kPRelu,  // b is the slope
};

// One instruction; instruction i writes register i.
struct PwInstr {
  PwOp op = PwOp::kIdentity;
  int a = -1, b = -1;
  float p0 = 0.0f, p1 = 0.0f;
  float value = 0.0f;  // kConst
  int slot = -1;       // kTensor
};

struct PointwiseProgram {
  std::vector<PwInstr> code;    // code[0] is kInput
  std::vector<Tensor> tensors;  // constants with more than one element (float32), by slot
  int result = 0;               // the register stored to the output
};

// Translates a kiln.Pointwise body of one input and one output whose input
// has storage type `x_dtype`. Fails (unimplemented, naming the node) for an
// op or a type the generator does not handle; the plan then lowers the body's
// nodes one by one instead.
Result<PointwiseProgram> translate_pointwise_body(const ir::Graph& body, DataType x_dtype);

// CUDA C source of the kernel `kiln_pointwise` for `program`:
//   kiln_pointwise(OUT* y, const IN* x, const float* t0, ..., KilnPwArgs args)
// with args.v = {n, dims[rank], strides of t0[rank], strides of t1[rank], ...}
// (pointwise_args()); rank is ignored (0) when there are no tensor constants.
// Needs no headers (NVRTC with -default-device). The source depends on the
// program, the storage types and the rank only, not on the dims: it is the
// compile cache's key.
std::string pointwise_cuda_source(const PointwiseProgram& program, DataType x_dtype, DataType y_dtype, int rank);
inline constexpr const char* kPointwiseKernelName = "kiln_pointwise";

// The kernel's args.v for an output of `dims` (in memory order) where tensor
// constant k is read at sum_d idx_d * strides[k][d].
std::vector<int64_t> pointwise_args(const Dims& dims, const std::vector<Dims>& strides);

// The value of the program at one element: x and the tensor constants'
// values there (by slot). The host meaning of the generated kernel.
float evaluate_pointwise(const PointwiseProgram& program, float x, const float* tensor_values);

// Storage types the kernel loads x from / stores y to.
bool pointwise_loads(DataType t);
bool pointwise_stores(DataType t);

}  // namespace kiln::backends::cuda
