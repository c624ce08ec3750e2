"""Reduced precision: explicit Q/DQ models (onnxruntime's quantize_static) and
implicit int8 from calibration (kiln.build(precision="int8") and `kiln build --int8`).

Tolerances: Kiln's int8 layers against onnxruntime on the same Q/DQ model, at
most one quantization step of the output (both requantize exact int32 sums;
they may round a tie or a float product differently; observed: identical).
Two onnxruntime references: its unoptimized graph (the Q/DQ model's float
semantics) on full-range 8-bit weights, and its optimized int8 kernels on a
reduce_range (7-bit weight) model: on a CPU without VNNI its u8s8 kernels use
vpmaddubsw, whose int16 pair sums saturate with full-range weights (the reason
quantize_static has reduce_range), so they are not a reference for 8-bit
weights there. Against the fp32 model: loosely (a few percent of the range).
"""
from __future__ import annotations

import os
import re
import subprocess

import numpy as np
import onnxruntime as ort
import pytest

import kiln
from precision_models import make_cnn, make_mlp, quantize_qdq


def _cnn_batches(n: int, seed: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{"x": rng.random((4, 1, 8, 8), dtype=np.float32)} for _ in range(n)]


def _mlp_batches(n: int, seed: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{"x": rng.standard_normal((4, 20)).astype(np.float32)} for _ in range(n)]


MODELS = {"cnn": (make_cnn, _cnn_batches), "mlp": (make_mlp, _mlp_batches)}


def _output_scale(qdq_path) -> float:
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(qdq_path))
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    last = [n for n in m.graph.node if n.op_type == "DequantizeLinear" and n.output[0] == m.graph.output[0].name][0]
    return float(inits[last.input[1]])


@pytest.fixture(scope="module", params=sorted(MODELS))
def models(request, tmp_path_factory):
    name = request.param
    make, batches = MODELS[name]
    d = tmp_path_factory.mktemp(name)
    fp32 = d / f"{name}.onnx"
    qdq = d / f"{name}.qdq.onnx"
    make(str(fp32))
    quantize_qdq(str(fp32), str(qdq), batches(8, 1))
    quantize_qdq(str(fp32), str(d / f"{name}.qdq7.onnx"), batches(8, 1), reduce_range=True)
    return name, fp32, qdq, batches


def test_qdq_model_matches_onnxruntime_within_one_step(models, tmp_path, kiln_exe):
    name, fp32, qdq, batches = models
    feeds = batches(1, 42)[0]
    unoptimized = ort.SessionOptions()
    unoptimized.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    want = ort.InferenceSession(str(qdq), unoptimized, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    step = _output_scale(qdq)
    got = kiln.InferenceSession(str(qdq)).run(None, feeds)[0]
    assert np.max(np.abs(got - want)) <= step * 1.001 + 1e-6
    # onnxruntime's own int8 kernels, on 7-bit weights.
    qdq7 = qdq.parent / f"{name}.qdq7.onnx"
    want7 = ort.InferenceSession(str(qdq7), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    got7 = kiln.InferenceSession(str(qdq7)).run(None, feeds)[0]
    assert np.max(np.abs(got7 - want7)) <= _output_scale(qdq7) * 1.001 + 1e-6
    # The plan holds int8 layers (the Q/DQ lowering ran) and runs the same.
    plan = tmp_path / f"{name}.plan"
    out = subprocess.run([kiln_exe, "build", str(qdq), "-o", str(plan), "--skip-timing"], capture_output=True,
                         text=True, check=True).stdout
    layers = 4 if name == "cnn" else 3
    assert f"precision: {layers} int8 layers, 0 fp32 layers" in out, out
    np.testing.assert_array_equal(kiln.InferenceSession(str(plan)).run(None, feeds)[0], got)
    # And loosely like the float model.
    ref = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    assert np.max(np.abs(got - ref)) <= 0.1 * np.max(np.abs(ref)) + 4 * step


@pytest.mark.parametrize("calibrator", ["entropy", "minmax", "percentile"])
def test_int8_build_from_calibration_and_cache(models, tmp_path, calibrator):
    name, fp32, _, batches = models
    feeds = batches(1, 7)[0]
    want = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    plan = tmp_path / "int8.plan"
    cache = tmp_path / "calib.cache"
    summary = kiln.build(fp32, plan, precision="int8", calib=batches(8, 1), calib_cache=cache, calibrator=calibrator,
                         time_tactics=False)
    assert summary["int8_layers"] == (4 if name == "cnn" else 3)
    got = kiln.InferenceSession(str(plan)).run(None, feeds)[0]
    assert np.max(np.abs(got - want)) <= 0.15 * np.max(np.abs(want))
    # The cache stands in for the data.
    assert cache.read_text().startswith(f"kiln-calibration 1 {calibrator} 8")
    again = tmp_path / "again.plan"
    kiln.build(fp32, again, precision="int8", calib_cache=cache, time_tactics=False)
    np.testing.assert_array_equal(kiln.InferenceSession(str(again)).run(None, feeds)[0], got)
    # A layer kept in fp32.
    first = "conv1" if name == "cnn" else "fc1"
    kept = kiln.build(fp32, tmp_path / "kept.plan", precision="int8", calib_cache=cache,
                      layer_precision={first: "fp32"}, time_tactics=False)
    assert kept["int8_layers"] == summary["int8_layers"] - 1


def test_bad_calibration_data_and_overrides(models, tmp_path):
    name, fp32, _, batches = models
    plan = tmp_path / "x.plan"
    with pytest.raises(kiln.KilnError, match="calibration data|calibration cache"):
        kiln.build(fp32, plan, precision="int8")
    with pytest.raises(kiln.KilnError, match="empty"):
        kiln.build(fp32, plan, precision="int8", calib=[], calib_cache=tmp_path / "none.cache")
    good = batches(1, 3)[0]["x"]
    with pytest.raises(kiln.KilnError, match="shape"):
        kiln.build(fp32, plan, precision="int8", calib=[{"x": good[..., :-1]}])
    with pytest.raises(kiln.KilnError, match="double, the model expects float"):
        kiln.build(fp32, plan, precision="int8", calib=[{"x": good.astype(np.float64)}])
    bad = good.copy()
    bad.flat[3] = np.nan
    with pytest.raises(kiln.KilnError, match="NaN"):
        kiln.build(fp32, plan, precision="int8", calib=[{"x": bad}])
    with pytest.raises(kiln.KilnError, match="no_such_layer"):
        kiln.build(fp32, plan, precision="int8", calib=[{"x": good}], layer_precision=["no_such_layer:fp32"])
    with pytest.raises(kiln.KilnError, match="fp64"):
        kiln.build(fp32, plan, precision="int8", calib=[{"x": good}], layer_precision=["fc:fp64"])
    with pytest.raises(kiln.KilnError, match="not int8"):
        kiln.build(fp32, plan, calib=[{"x": good}])


def test_cli_int8_build_from_npy_dir(models, tmp_path, kiln_exe):
    name, fp32, _, batches = models
    calib = tmp_path / "calib"
    calib.mkdir()
    for i, b in enumerate(batches(4, 1)):
        np.save(calib / f"batch{i}.npy", b["x"])
    plan = tmp_path / "cli.plan"
    r = subprocess.run([kiln_exe, "build", str(fp32), "-o", str(plan), "--int8", "--calib", str(calib),
                        "--calibrator", "minmax", "--skip-timing"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "int8:" in r.stdout and "precision:" in r.stdout, r.stdout
    assert "kiln build: calibration: ranges 4/4" in r.stderr  # plain progress lines when not a terminal
    budget = subprocess.run([kiln_exe, "build", str(fp32), "-o", str(plan), "--int8", "--calib", str(calib),
                             "--max-accuracy-drop", "0", "--skip-timing"], capture_output=True, text=True)
    assert budget.returncode == 0, budget.stderr
    assert "accuracy budget: all" in budget.stdout, budget.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    r = subprocess.run([kiln_exe, "build", str(fp32), "-o", str(plan), "--int8", "--calib", str(empty)],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "holds no .npy files" in r.stderr, r.stderr


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_half_precision_builds(models, tmp_path, precision, kiln_exe):
    name, fp32, _, batches = models
    feeds = batches(1, 11)[0]
    want = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    plan = tmp_path / f"{precision}.plan"
    kiln.build(fp32, plan, precision=precision, time_tactics=False)
    got = kiln.InferenceSession(str(plan)).run(None, feeds)[0]
    rel = 3e-2 if precision == "bf16" else 3e-3
    assert np.max(np.abs(got - want)) <= rel * np.max(np.abs(want))
    # The 16-bit kernels (AVX-512 BF16 where the CPU has it) against the
    # reference kernels on the same rounded values: fp32 sums in another order.
    emulated = tmp_path / f"{precision}_reference.plan"
    kiln.build(fp32, emulated, precision=precision, time_tactics=False, tactic_sources=["reference"])
    same = kiln.InferenceSession(str(emulated)).run(None, feeds)[0]
    assert np.max(np.abs(got - same)) <= 1e-4 * np.max(np.abs(same))
    if precision == "fp16":
        # The matrix layers store their rounded weights as halves (F16C widens them while the product runs).
        layers = subprocess.run([kiln_exe, "inspect", str(plan)], capture_output=True, text=True)
        assert layers.returncode == 0, layers.stderr
        assert "_fp16." in layers.stdout, layers.stdout
        fp32_plan = tmp_path / "fp32.plan"
        kiln.build(fp32, fp32_plan, time_tactics=False, tactic_sources=["own"])
        assert os.path.getsize(plan) < os.path.getsize(fp32_plan), "packed halves take less room than packed floats"
    first = "conv1" if name == "cnn" else "fc1"
    out = subprocess.run([kiln_exe, "build", str(fp32), "-o", str(plan), f"--{precision}", "--skip-timing",
                          "--layer-precision", f"{first}:fp32"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert f"{first}" in out.stdout and "fp32" in out.stdout and precision in out.stdout, out.stdout
    if precision == "fp16":
        # Untimed, every fp16 layer takes the half-storage tactic, and the round trips before them are float16.
        stored = re.search(r"fp16 storage: (\d+) layers keep their weights as halves, (\d+) values", out.stdout)
        assert stored and int(stored.group(1)) > 0 and int(stored.group(2)) > 0, out.stdout
    bad = subprocess.run([kiln_exe, "build", str(fp32), "-o", str(plan), f"--{precision}", "--layer-precision",
                          "nope:fp32"], capture_output=True, text=True)
    assert bad.returncode != 0 and "nope" in bad.stderr


def test_kiln_quantize_writes_a_qdq_model_onnxruntime_runs(models, tmp_path, kiln_exe):
    name, fp32, _, batches = models
    calib = tmp_path / "calib"
    calib.mkdir()
    for i, b in enumerate(batches(4, 1)):
        np.save(calib / f"b{i}.npy", b["x"])
    out = tmp_path / "ours.qdq.onnx"
    r = subprocess.run([kiln_exe, "quantize", str(fp32), "--calib", str(calib), "--calibrator", "minmax", "-o",
                        str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    feeds = batches(1, 5)[0]
    optimized = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    want = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    assert optimized.shape == want.shape and np.all(np.isfinite(optimized))
    unoptimized = ort.SessionOptions()
    unoptimized.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    theirs = ort.InferenceSession(str(out), unoptimized, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    assert np.max(np.abs(theirs - want)) <= 0.1 * np.max(np.abs(want))
    # Kiln runs the model it wrote in int8, within one output step of its float semantics
    # (onnxruntime unoptimized; see the module docstring for why not its AVX2 int8 kernels).
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(out))
    ops = [n.op_type for n in m.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    got = kiln.InferenceSession(str(out)).run(None, feeds)[0]
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    last = [n for n in m.graph.node if n.op_type == "DequantizeLinear" and n.output[0] == m.graph.output[0].name][0]
    assert np.max(np.abs(got - theirs)) <= float(inits[last.input[1]]) * 1.001 + 1e-6


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    from precision_models import make_digits_classifier

    d = tmp_path_factory.mktemp("digits")
    model = d / "digits.onnx"
    _, _, xte, yte = make_digits_classifier(str(model))
    data = d / "data"
    data.mkdir()
    for i in range(0, len(xte), 50):
        np.save(data / f"batch{i // 50:03d}.npy", xte[i:i + 50])
    np.save(d / "labels.npy", yte)
    return model, data, d / "labels.npy", yte


def test_kiln_accuracy_table_on_digits(digits, kiln_exe):
    model, data, labels, yte = digits
    r = subprocess.run([kiln_exe, "accuracy", str(model), "--data", str(data), "--labels", str(labels)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rows = {}
    for line in r.stdout.splitlines():
        parts = line.split()
        if parts and parts[0] in ("fp32", "bf16", "fp16", "int8"):
            rows[parts[0]] = parts[1:]
    assert set(rows) == {"fp32", "bf16", "fp16", "int8"}, r.stdout
    fp32 = float(rows["fp32"][0])
    assert fp32 > 95.0, r.stdout
    for p in ("bf16", "fp16"):
        assert float(rows[p][0]) == fp32 and float(rows[p][2]) == 100.0, r.stdout
    assert float(rows["int8"][0]) >= fp32 - 1.0, r.stdout  # calibrated on 4 batches of the data
    # Progress on stderr (plain lines when not a terminal): every precision's build, int8's
    # calibration and each evaluation to its end; none with --quiet.
    batches = len(list(data.iterdir()))
    for p in ("fp32", "bf16", "fp16", "int8"):
        assert f"kiln accuracy: {p}: evaluating {batches}/{batches}" in r.stderr, r.stderr
    assert "kiln accuracy: int8: calibration" in r.stderr, r.stderr
    quiet = subprocess.run([kiln_exe, "--quiet", "accuracy", str(model), "--data", str(data), "--labels", str(labels),
                            "--precisions", "fp32"], capture_output=True, text=True)
    assert quiet.returncode == 0 and "evaluating" not in quiet.stderr, quiet.stderr
    bad = subprocess.run([kiln_exe, "accuracy", str(model), "--data", str(data), "--labels", str(labels),
                          "--precisions", "fp32,int4"], capture_output=True, text=True)
    assert bad.returncode != 0 and "int4" in bad.stderr
