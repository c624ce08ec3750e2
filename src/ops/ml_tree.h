// TreeEnsemble (ai.onnx.ml opset 5), registered by register_ml (ml_tree.cc).
#pragma once

namespace kiln::ops {

class Registry;
void register_tree_ensemble(Registry& r);

}  // namespace kiln::ops
