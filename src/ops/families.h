// The op families. Each family lives in one file, ops/<family>.cc, holding
// the schema, shape inference and reference kernel of its ops, and exposes
// one registration function listed here and in registry.cc's kFamilies.
#pragma once

namespace kiln::ops {

class Registry;

void register_elementwise(Registry& r);    // arithmetic, math, activations, comparison, logic, Where, Clip
void register_reduction(Registry& r);      // Reduce*, ArgMax/ArgMin
void register_softmax(Registry& r);        // Softmax, LogSoftmax, Hardmax
void register_cast(Registry& r);           // Cast, CastLike
void register_matmul(Registry& r);         // Gemm, MatMul
void register_conv(Registry& r);           // Conv, ConvTranspose
void register_pool(Registry& r);           // MaxPool, AveragePool, Global*Pool, LpPool
void register_normalization(Registry& r);  // BatchNormalization, LayerNormalization, InstanceNormalization, LRN
void register_shape_ops(Registry& r);  // Shape, Size, Reshape, Flatten, Squeeze, Unsqueeze, Expand, Transpose, Identity
void register_tensor_ops(
    Registry& r);  // Constant, ConstantOfShape, Concat, Split, Slice, Gather, Tile, Range, Dropout...
void register_pad_resize(Registry& r);    // Pad, Resize, Upsample
void register_control_flow(Registry& r);  // If, Loop, Scan
void register_rnn(Registry& r);           // RNN, LSTM, GRU
void register_attention(
    Registry& r);  // Attention, RotaryEmbedding, SwiGLU, LinearAttention, FlexAttention, CausalConvWithState
void register_loss(Registry& r);      // NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss, Det, Shrink, MaxUnpool,
                                      // CumProd, BitCast, TensorScatter
void register_random(Registry& r);    // RandomUniform(Like), RandomNormal(Like), Bernoulli, Multinomial
void register_training(Registry& r);  // ai.onnx.preview.training: Momentum, Adagrad, Adam, Gradient
void register_quantization(
    Registry& r);  // QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, QLinearMatMul, QLinearConv
void register_signal(Registry& r);  // DFT, STFT, Hann/Hamming/BlackmanWindow, MelWeightMatrix
void register_geometry(
    Registry& r);  // GridSample, AffineGrid, RoiAlign, Col2Im, DeformConv, NonMaxSuppression, CenterCropPad
void register_sequence(Registry& r);  // Sequence*, SplitToSequence, ConcatFromSequence, SequenceMap, Optional*
void register_string(Registry& r);    // StringSplit, StringNormalizer, StringConcat, RegexFullMatch, TfIdfVectorizer
void register_ml(Registry& r);        // ai.onnx.ml operators
void register_image(Registry& r);     // ImageDecoder
void register_fused(Registry& r);     // domain "kiln": FusedConv/Gemm/MatMul, Attention, LayerNormalization, Gelu, Pointwise

enum class Family {
  kElementwise,
  kReduction,
  kSoftmax,
  kCast,
  kMatMul,
  kConv,
  kPool,
  kNormalization,
  kShapeOps,
  kTensorOps,
  kPadResize,
  kControlFlow,
  kRnn,
  kAttention,
  kLoss,
  kRandom,
  kTraining,
  kQuantization,
  kSignal,
  kGeometry,
  kSequence,
  kString,
  kMl,
  kImage,
  kFused,
  kCount,
};

}  // namespace kiln::ops
