"""Training from Python: the few-line AMP API, the digits loader, and ONNX
export checked against onnxruntime and Kiln's own session."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import EXAMPLE_MODELS

from kiln import InferenceSession
from kiln.train import SGD, Adam, DataLoader, Model, accuracy, amp, cross_entropy, mse

sklearn = pytest.importorskip("sklearn")
from kiln import datasets  # noqa: E402

LAYERS = ["conv:8:3:1:1", "bn", "relu", "maxpool:2", "flatten", "dropout:0.1", "linear:10"]


def test_digits_split_is_fixed():
    a = datasets.digits()
    b = datasets.digits()
    assert a.x_train.shape == (1348, 1, 8, 8) and a.x_test.shape == (449, 1, 8, 8)
    assert a.x_train.dtype == np.float32 and a.y_test.dtype == np.int64
    assert np.array_equal(a.y_test, b.y_test) and np.array_equal(a.x_test, b.x_test)
    assert 0.0 <= a.x_train.min() and a.x_train.max() <= 1.0
    x, y = datasets.digits_test()
    assert np.array_equal(y, a.y_test)


@pytest.mark.parametrize("level", ["O0", "O1", "O2-bf16"])
def test_few_line_amp_training_learns_digits(level):
    split = datasets.digits()
    model = Model.sequential((1, 8, 8), LAYERS, seed=1)
    opt = SGD(model, lr=0.05, momentum=0.9)
    amp.initialize(model, opt, level)
    assert model.amp_level == level
    loader = DataLoader(split.x_train, split.y_train, 64, seed=1)
    for epoch in range(2):
        for x, y in loader.epoch(epoch):
            loss = cross_entropy(model.forward(x), y)
            amp.scaled_backward(model, opt, loss)
            opt.step()
    assert accuracy(model, split.x_test, split.y_test) > 85.0


def test_export_agrees_with_onnxruntime_and_kiln(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    split = datasets.digits()
    model = Model.sequential((1, 8, 8), LAYERS, seed=2)
    opt = Adam(model, lr=3e-3)
    loader = DataLoader(split.x_train, split.y_train, 64, seed=2)
    for x, y in loader.epoch(0):
        loss = cross_entropy(model.forward(x), y)
        loss_grad = loss.grad
        model.backward(loss_grad)
        opt.step()
    path = tmp_path / "digits.onnx"
    model.save_onnx(str(path))
    onnx = pytest.importorskip("onnx")
    onnx.checker.check_model(str(path), full_check=True)
    probe = split.x_test[:32]
    want = model.predict(probe)
    got_ort = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": probe})[0]
    got_kiln = InferenceSession(str(path)).run(None, {"input": probe})[0]
    np.testing.assert_allclose(got_ort, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got_kiln, want, rtol=1e-4, atol=1e-4)


def test_checkpoint_roundtrip_and_mse(tmp_path):
    model = Model.sequential((3,), ["linear:4", "tanh", "linear:2"], seed=3)
    opt = Adam(model, lr=1e-2)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 3)).astype(np.float32)
    target = rng.standard_normal((16, 2)).astype(np.float32)
    first = None
    for _ in range(20):
        loss = mse(model.forward(x), target)
        first = first if first is not None else loss.value
        model.backward(loss.grad)
        opt.step()
    assert loss.value < first
    ckpt = tmp_path / "m.ckpt"
    opt.save_checkpoint(str(ckpt))
    twin = Model.sequential((3,), ["linear:4", "tanh", "linear:2"], seed=99)
    twin_opt = Adam(twin, lr=1e-2)
    twin_opt.load_checkpoint(str(ckpt))
    assert twin_opt.steps == 20
    np.testing.assert_array_equal(twin.predict(x), model.predict(x))


def test_overflow_is_skipped_from_python():
    model = Model.sequential((4,), ["linear:3"], seed=0)
    opt = SGD(model, lr=0.1)
    amp.initialize(model, opt, "O1", init_scale=2.0 ** 40)
    x = np.random.default_rng(1).standard_normal((8, 4)).astype(np.float32)
    loss = cross_entropy(model.forward(x), np.zeros(8, dtype=np.int64))
    amp.scaled_backward(model, opt, loss)
    assert opt.step() is False
    assert opt.skipped_steps == 1 and opt.loss_scale == 2.0 ** 39


def test_shipped_digits_classifier():
    ort = pytest.importorskip("onnxruntime")
    path = EXAMPLE_MODELS / "digits_cnn.onnx"
    assert path.stat().st_size < 100_000
    onnx = pytest.importorskip("onnx")
    onnx.checker.check_model(str(path), full_check=True)
    x, y = datasets.digits_test()
    logits = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    assert (logits.argmax(1) == y).mean() > 0.95
    kiln_logits = InferenceSession(str(path)).run(None, {"input": x})[0]
    np.testing.assert_allclose(kiln_logits, logits, rtol=1e-4, atol=1e-4)


def test_kiln_train_command(tmp_path, kiln_exe):
    import subprocess

    exe = kiln_exe
    split = datasets.digits()
    for name, arr in [("x", split.x_train), ("y", split.y_train), ("tx", split.x_test), ("ty", split.y_test)]:
        np.save(tmp_path / f"{name}.npy", arr)
    out = tmp_path / "m.onnx"
    r = subprocess.run([exe, "train", "--layers", "conv:8:3:1:1,bn,relu,maxpool:2,flatten,linear:10",
                        "--x", str(tmp_path / "x.npy"), "--y", str(tmp_path / "y.npy"),
                        "--test-x", str(tmp_path / "tx.npy"), "--test-y", str(tmp_path / "ty.npy"),
                        "--amp", "O2", "--epochs", "2", "-o", str(out), "--checkpoint", str(tmp_path / "m.ckpt")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "epoch 2" in r.stdout and "held-out accuracy" in r.stdout
    logits = InferenceSession(str(out)).run(None, {"input": split.x_test})[0]
    assert (logits.argmax(1) == split.y_test).mean() > 0.85
    bad = subprocess.run([exe, "train", "--layers", "bogus", "--x", str(tmp_path / "x.npy"),
                          "--y", str(tmp_path / "y.npy")], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "unknown layer 'bogus'" in bad.stderr
