"""The examples run as a user runs them: the onnxruntime drop-in
(examples/python/ort_dropin.py) and the tritonclient HTTP + gRPC demo against
`kiln serve` (examples/serve_examples.py). The C++ embedding example
(examples/cpp/consumer) is built and run by test_packaging.py."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import kiln

from conftest import EXAMPLE_MODELS, REPO


def run_example(*args, timeout=300):
    env = dict(os.environ, PYTHONPATH=str(Path(kiln.__file__).resolve().parents[1]))
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.parametrize("model", ["tiny_cnn.onnx", "tiny_mlp.onnx"])
def test_ort_dropin(model):
    pytest.importorskip("onnxruntime")
    r = run_example(REPO / "examples" / "python" / "ort_dropin.py", EXAMPLE_MODELS / model, "--batch", "3")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = dict(line.split(":", 1) for line in r.stdout.splitlines() if ":" in line)
    assert lines["onnxruntime argmax"].strip() == lines["kiln        argmax"].strip()


def test_serve_examples(kiln_exe):
    pytest.importorskip("tritonclient.http")
    pytest.importorskip("tritonclient.grpc")
    r = run_example(REPO / "examples" / "serve_examples.py")
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "simple (HTTP):   OUTPUT0 = [1. 2. 3. 4. 5. 6.]" in out, out
    assert "simple (gRPC):   OUTPUT1 = [-1.  0.  1.  2.  3.  4.]" in out, out
    assert "tiny_mlp (HTTP): argmax =" in out and "strings (gRPC):" in out, out
