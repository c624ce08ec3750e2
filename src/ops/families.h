// The op families. Each family lives in one file, ops/<family>.cc, holding
// the schema, shape inference and reference kernel of its ops, and exposes
// one registration function listed here and in registry.cc's kFamilies.
#pragma once

namespace kiln::ops {

class Registry;

void register_elementwise(Registry& r);   // arithmetic, math, activations, comparison, logic, Where, Clip
void register_reduction(Registry& r);     // Reduce*, ArgMax/ArgMin
void register_softmax(Registry& r);       // Softmax, LogSoftmax, Hardmax
void register_cast(Registry& r);          // Cast, CastLike
void register_matmul(Registry& r);        // Gemm, MatMul
void register_conv(Registry& r);          // Conv, ConvTranspose
void register_pool(Registry& r);          // MaxPool, AveragePool, Global*Pool, LpPool
void register_normalization(Registry& r); // BatchNormalization, LayerNormalization, InstanceNormalization, LRN
void register_shape_ops(Registry& r);     // Shape, Size, Reshape, Flatten, Squeeze, Unsqueeze, Expand, Transpose, Identity
void register_tensor_ops(Registry& r);    // Constant, ConstantOfShape, Concat, Split, Slice, Gather, Tile, Range, Dropout...
void register_pad_resize(Registry& r);    // Pad, Resize, Upsample
void register_control_flow(Registry& r);  // If, Loop, Scan
void register_rnn(Registry& r);           // RNN, LSTM, GRU

enum class Family {
  kElementwise, kReduction, kSoftmax, kCast, kMatMul, kConv, kPool, kNormalization,
  kShapeOps, kTensorOps, kPadResize, kControlFlow, kRnn,
  kCount,
};

}  // namespace kiln::ops
