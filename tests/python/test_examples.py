"""The examples run as a user runs them: the onnxruntime drop-in
(examples/python/ort_dropin.py), INT8 calibration from a folder of images
(examples/python/calibrate_images.py) and the tritonclient HTTP + gRPC demo against
`kiln serve` (examples/serve_examples.py). The C++ embedding example
(examples/cpp/consumer) is built and run by test_packaging.py."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
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


def test_calibrate_from_a_folder_of_images(tmp_path):
    """The digits classifier calibrated on 64 PNG files of held-out digits: int8 agrees with
    fp32 and keeps its accuracy (labels from the file names)."""
    Image = pytest.importorskip("PIL.Image")
    from kiln.datasets import digits_test

    x, y = digits_test()
    images = tmp_path / "images"
    images.mkdir()
    for i in range(160):
        Image.fromarray(np.clip(np.rint(x[i, 0] * 255), 0, 255).astype(np.uint8)).save(images / f"{y[i]}_{i:04d}.png")
    (images / "notes.txt").write_text("not an image: skipped")
    r = run_example(REPO / "examples" / "python" / "calibrate_images.py", EXAMPLE_MODELS / "digits_cnn.onnx", images,
                    "--calib-count", "64", "--out", tmp_path / "out")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = dict(line.split(":", 1) for line in r.stdout.splitlines() if ":" in line)
    assert "160 images from" in r.stdout and "calibrating on 64 (entropy)" in r.stdout, r.stdout
    assert float(lines["top-1 agreement int8 vs fp32"].split("%")[0]) >= 98.0, r.stdout
    fp32 = float(lines["accuracy fp32"].strip().rstrip("%"))
    int8 = float(lines["accuracy int8"].strip().rstrip("%"))
    assert fp32 >= 95.0 and int8 >= fp32 - 1.0, r.stdout
    assert (tmp_path / "out" / "model.int8.plan").is_file() and (tmp_path / "out" / "calibration.cache").is_file()
    # A folder without images is a clear error, not a traceback.
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run_example(REPO / "examples" / "python" / "calibrate_images.py", EXAMPLE_MODELS / "digits_cnn.onnx", empty)
    assert r.returncode != 0 and "no images" in r.stderr and "Traceback" not in r.stderr, r.stderr
    # So is a file that is not an image, named.
    (empty / "7_broken.png").write_bytes(b"not a png")
    r = run_example(REPO / "examples" / "python" / "calibrate_images.py", EXAMPLE_MODELS / "digits_cnn.onnx", empty)
    assert r.returncode != 0 and "7_broken.png: not a readable image" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr, r.stderr


def test_serve_examples(kiln_exe):
    pytest.importorskip("tritonclient.http")
    pytest.importorskip("tritonclient.grpc")
    r = run_example(REPO / "examples" / "serve_examples.py")
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "simple (HTTP):   OUTPUT0 = [1. 2. 3. 4. 5. 6.]" in out, out
    assert "simple (gRPC):   OUTPUT1 = [-1.  0.  1.  2.  3.  4.]" in out, out
    assert "tiny_mlp (HTTP): argmax =" in out and "strings (gRPC):" in out, out
