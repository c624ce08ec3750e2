"""Generates the expected values of tests/ops/rnn_cases.inc with onnxruntime.

Run with the project virtualenv (onnx 1.23.2, onnxruntime 1.32):
    /work/main/.venv/bin/python tests/ops/gen/rnn_expected.py > tests/ops/rnn_cases.inc
Inputs are small, seeded random values rounded to two decimals (to fp16 for
the fp16 case); each case becomes one RnnCase initializer.
"""
import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}


def fmt(a, digits=8):
    return "{" + ", ".join("%.*g" % (digits, v) for v in np.asarray(a, dtype=np.float64).ravel()) + "}"


def dims(a):
    return "{" + ", ".join(str(d) for d in a.shape) + "}"


def attr_cpp(k, v):
    if isinstance(v, str):
        return 'Attribute::make_string("%s", "%s")' % (k, v)
    if isinstance(v, float):
        return 'Attribute::make_float("%s", %sf)' % (k, repr(v))
    if isinstance(v, int):
        return 'Attribute::make_int("%s", %d)' % (k, v)
    if isinstance(v, list) and v and isinstance(v[0], str):
        return 'make_strings("%s", {%s})' % (k, ", ".join('"%s"' % s for s in v))
    if isinstance(v, list):
        return 'Attribute::make_floats("%s", {%s})' % (k, ", ".join("%sf" % repr(x) for x in v))
    raise TypeError(v)


def case(name, op, opset, seq, batch, inp, hidden, attrs, with_b=True, lens=None, with_h0=True, with_c0=True,
         with_p=False, seed=0, scale=1.0, fp16=False):
    rng = np.random.default_rng(seed)
    g = GATES[op]
    nd = 2 if attrs.get("direction") == "bidirectional" else 1
    layout = attrs.get("layout", 0)

    def rand(*shape):
        a = np.round(rng.uniform(-scale, scale, shape), 2).astype(np.float32)
        return a.astype(np.float16).astype(np.float32) if fp16 else a

    x = rand(*((batch, seq, inp) if layout else (seq, batch, inp)))
    feeds = {"X": x, "W": rand(nd, g * hidden, inp), "R": rand(nd, g * hidden, hidden)}
    names = ["X", "W", "R", "", "", ""]
    if with_b:
        feeds["B"] = rand(nd, 2 * g * hidden)
        names[3] = "B"
    if lens is not None:
        feeds["sequence_lens"] = np.array(lens, dtype=np.int32)
        names[4] = "sequence_lens"
    hshape = (batch, nd, hidden) if layout else (nd, batch, hidden)
    if with_h0:
        feeds["initial_h"] = rand(*hshape)
        names[5] = "initial_h"
    outs = ["Y", "Y_h"]
    if op == "LSTM":
        names += ["", ""]
        if with_c0:
            feeds["initial_c"] = rand(*hshape)
            names[6] = "initial_c"
        if with_p:
            feeds["P"] = rand(nd, 3 * hidden)
            names[7] = "P"
        outs.append("Y_c")
    while names and names[-1] == "":
        names.pop()
    # onnxruntime has no layout=1 kernels: run layout 0 on transposed inputs
    # and transpose the outputs back (which is what layout=1 means).
    ort_attrs = {k: v for k, v in attrs.items() if k != "layout"}
    ort_feeds = dict(feeds)
    if layout:
        ort_feeds["X"] = x.transpose(1, 0, 2)
        for k in ("initial_h", "initial_c"):
            if k in feeds:
                ort_feeds[k] = feeds[k].transpose(1, 0, 2)
    node = helper.make_node(op, names, outs, hidden_size=hidden, **ort_attrs)
    ins = [helper.make_tensor_value_info(k, TensorProto.INT32 if k == "sequence_lens" else TensorProto.FLOAT, None)
           for k in names if k]
    graph = helper.make_graph([node], "g", ins, [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    results = ort.InferenceSession(model.SerializeToString()).run(None, ort_feeds)
    if layout:
        results = [results[0].transpose(2, 0, 1, 3)] + [r.transpose(1, 0, 2) for r in results[1:]]

    lines = ['    {"%s", "%s", %d, %s,' % (name, op, opset, "true" if fp16 else "false")]
    attr_list = [attr_cpp("hidden_size", hidden)] + [attr_cpp(k, v) for k, v in attrs.items()]
    lines.append("     {%s}," % ", ".join(attr_list))
    lines.append("     {")
    for k in names:
        if not k:
            lines.append("         {},")
        else:
            lines.append("         {true, %s, %s}," % (dims(feeds[k]), fmt(feeds[k], 6)))
    lines.append("     },")
    lines.append("     {")
    for r in results:
        lines.append("         {true, %s, %s}," % (dims(r), fmt(r)))
    lines.append("     }},")
    return "\n".join(lines)


def main():
    cases = [
        case("RnnForward", "RNN", 7, 3, 2, 2, 3, {}, seed=1),
        case("RnnReverseLayout1SeqLens", "RNN", 14, 3, 2, 2, 3, {"direction": "reverse", "layout": 1}, lens=[3, 1],
             seed=2),
        # Bidirectional; Affine takes the first alpha/beta because Tanh uses none.
        case("RnnBidirectionalAlphaOrder", "RNN", 14, 2, 2, 2, 2,
             {"direction": "bidirectional", "activations": ["Tanh", "Affine"], "activation_alpha": [0.5],
              "activation_beta": [0.2]}, with_b=False, with_h0=False, seed=3),
        case("RnnClipZeroLength", "RNN", 14, 3, 3, 2, 2, {"clip": 0.3}, lens=[2, 0, 3], seed=4),
        case("GruForward", "GRU", 7, 3, 2, 2, 3, {}, seed=5),
        case("GruBidirectionalLinearBeforeResetClip", "GRU", 14, 3, 2, 2, 2,
             {"direction": "bidirectional", "linear_before_reset": 1, "clip": 0.8}, lens=[2, 3], seed=6),
        case("GruReverseLayout1Activations", "GRU", 14, 2, 2, 3, 2,
             {"direction": "reverse", "layout": 1, "activations": ["HardSigmoid", "Softsign"],
              "activation_alpha": [0.3], "activation_beta": [0.4]}, with_b=False, seed=7),
        case("LstmForwardPeepholes", "LSTM", 7, 3, 2, 2, 3, {}, with_p=True, seed=8),
        case("LstmBidirectionalLayout1SeqLensClip", "LSTM", 14, 3, 2, 2, 2,
             {"direction": "bidirectional", "layout": 1, "clip": 0.6}, lens=[3, 1], with_p=True, seed=9),
        case("LstmInputForgetReverse", "LSTM", 14, 3, 1, 2, 2, {"direction": "reverse", "input_forget": 1},
             with_p=True, seed=10),
        case("LstmActivations", "LSTM", 14, 2, 2, 2, 2,
             {"activations": ["HardSigmoid", "Elu", "Softplus"], "activation_alpha": [0.25, 0.9],
              "activation_beta": [0.45]}, with_c0=False, seed=11, scale=2.0),
        case("LstmFp16", "LSTM", 14, 2, 2, 2, 3, {}, with_p=True, seed=12, fp16=True),
    ]
    # Each activation alone in a one-direction RNN (inputs scaled so every branch is hit).
    # onnxruntime gives ThresholdedRelu, Affine and ScaledTanh no defaults (alpha =
    # beta = 0) where ONNX says to use the ops' defaults, so those always get values
    # here; Kiln's defaults are tested by hand in rnn_test.cc.
    acts = [("Relu", None, None), ("Tanh", None, None), ("Sigmoid", None, None), ("Affine", 0.5, 0.3),
            ("LeakyRelu", None, None), ("LeakyRelu", 0.2, None), ("ThresholdedRelu", 0.3, None),
            ("ScaledTanh", 1.5, 0.7), ("HardSigmoid", None, None),
            ("HardSigmoid", 0.3, 0.6), ("Elu", 0.8, None), ("Elu", None, None), ("Softsign", None, None),
            ("Softplus", None, None)]
    for i, (act, alpha, beta) in enumerate(acts):
        attrs = {"activations": [act]}
        if alpha is not None:
            attrs["activation_alpha"] = [alpha]
        if beta is not None:
            attrs["activation_beta"] = [beta]
        label = act + ("" if alpha is None else "Alpha")
        cases.append(case("RnnActivation" + label, "RNN", 14, 3, 2, 2, 2, attrs, seed=100 + i, scale=2.0))
    print("// Generated by tests/ops/gen/rnn_expected.py (onnxruntime 1.32); do not edit.")
    print("\n".join(cases))


if __name__ == "__main__":
    main()
