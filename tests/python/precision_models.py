"""Small fp32 models for the precision tests, and their onnxruntime Q/DQ versions.

A CNN (Conv-Relu, strided Conv-Relu, 1x1 Conv, Flatten, Gemm) and an MLP
(Gemm-Relu, MatMul-Relu, Gemm) with random weights, built with the onnx
helpers, plus onnxruntime.quantization.quantize_static in QDQ format with
per-channel int8 weights and uint8 activations (its defaults otherwise).
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _init(name: str, arr: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name)


def make_cnn(path: str, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.3, (8, 1, 3, 3))
    b1 = rng.normal(0, 0.1, (8,))
    w2 = rng.normal(0, 0.15, (16, 8, 3, 3))
    b2 = rng.normal(0, 0.1, (16,))
    w3 = rng.normal(0, 0.2, (8, 16, 1, 1))
    b3 = rng.normal(0, 0.1, (8,))
    fc = rng.normal(0, 0.1, (10, 8 * 4 * 4))
    fcb = rng.normal(0, 0.1, (10,))
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("Conv", ["r2", "w3", "b3"], ["c3"], name="conv3"),
        helper.make_node("Relu", ["c3"], ["r3"], name="relu3"),
        helper.make_node("Flatten", ["r3"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc", "fcb"], ["y"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
        [_init(n, a) for n, a in [("w1", w1), ("b1", b1), ("w2", w2), ("b2", b2), ("w3", w3), ("b3", b3),
                                  ("fc", fc), ("fcb", fcb)]],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def make_mlp(path: str, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.2, (32, 20))
    b1 = rng.normal(0, 0.1, (32,))
    w2 = rng.normal(0, 0.2, (32, 24))  # MatMul layout [K, N]
    w3 = rng.normal(0, 0.2, (5, 24))
    b3 = rng.normal(0, 0.1, (5,))
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h1"], name="fc1", transB=1),
        helper.make_node("Relu", ["h1"], ["a1"], name="relu1"),
        helper.make_node("MatMul", ["a1", "w2"], ["h2"], name="mm2"),
        helper.make_node("Relu", ["h2"], ["a2"], name="relu2"),
        helper.make_node("Gemm", ["a2", "w3", "b3"], ["y"], name="fc3", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 20])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])],
        [_init(n, a) for n, a in [("w1", w1), ("b1", b1), ("w2", w2), ("w3", w3), ("b3", b3)]],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def quantize_qdq(fp32_path: str, qdq_path: str, batches: list[dict[str, np.ndarray]], reduce_range: bool = False) -> None:
    """onnxruntime's quantize_static in QDQ format, per-channel weights (7-bit with reduce_range)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(batches)

        def get_next(self):
            return next(self.it, None)

    quantize_static(fp32_path, qdq_path, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    reduce_range=reduce_range, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)


def make_digits_classifier(path: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A 64-48-10 MLP (Gemm-Relu-Gemm) trained with numpy on scikit-learn's digits.

    Test-only stand-in for the trained classifier of examples/models: full-batch
    gradient descent with momentum, inputs scaled to [0, 1]. Writes the ONNX
    model to `path` and returns (x_train, y_train, x_test, y_test), a fixed
    75/25 split.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    x, y = x[order], y[order]
    split = int(len(x) * 0.75)
    xtr, ytr, xte, yte = x[:split], y[:split], x[split:], y[split:]
    w1 = rng.normal(0, np.sqrt(2 / 64), (64, 48)).astype(np.float32)
    b1 = np.zeros(48, np.float32)
    w2 = rng.normal(0, np.sqrt(2 / 48), (48, 10)).astype(np.float32)
    b2 = np.zeros(10, np.float32)
    params = [w1, b1, w2, b2]
    velocity = [np.zeros_like(p) for p in params]
    onehot = np.eye(10, dtype=np.float32)[ytr]
    for _ in range(300):
        h = np.maximum(xtr @ w1 + b1, 0)
        z = h @ w2 + b2
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        dz = (p - onehot) / len(xtr)
        dh = (dz @ w2.T) * (h > 0)
        grads = [xtr.T @ dh, dh.sum(0), h.T @ dz, dz.sum(0)]
        for i, g in enumerate(grads):
            velocity[i] = 0.9 * velocity[i] - 0.5 * g
            params[i] += velocity[i]
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1", transB=1),
        helper.make_node("Relu", ["h"], ["a"], name="relu1"),
        helper.make_node("Gemm", ["a", "w2", "b2"], ["logits"], name="fc2", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "digits_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        [_init("w1", w1.T), _init("b1", b1), _init("w2", w2.T), _init("b2", b2)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return xtr, ytr, xte, yte
