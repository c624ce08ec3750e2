"""Standard architectures from ../shared/models/make_models.py (seeded random
weights), run by Kiln and by onnxruntime on the same seeded inputs and compared
at rtol = atol = 1e-4: batch 1 for every model, batch 2 for the CNNs.

The models are generated once into <build>/.cache/zoo_models and regenerated
only when make_models.py changes. Set KILN_MAKE_MODELS to the script's path
where the shared folder is elsewhere.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import kiln

from conftest import REPO, build_dir, random_feeds

# ../shared/models/make_models.py from the repo root; KILN_MAKE_MODELS overrides it.
MAKE_MODELS = Path(os.environ.get("KILN_MAKE_MODELS", REPO.parent / "shared" / "models" / "make_models.py"))

CNNS = ["resnet50", "resnet18", "mobilenetv2", "tiny_cnn"]
TRANSFORMERS = ["bert_base", "bert_tiny"]
MLPS = ["tiny_mlp"]
SLOW = {"resnet50", "resnet18", "mobilenetv2", "bert_base"}
SEQ = {"bert_base": 128, "bert_tiny": 128}  # sequence lengths fed to the BERTs


@pytest.fixture(scope="session")
def zoo_dir() -> Path:
    if not MAKE_MODELS.is_file():
        pytest.skip(f"{MAKE_MODELS} is absent (it lives in the workplace's shared folder, next to the repo)")
    out = build_dir() / ".cache" / "zoo_models"
    out.mkdir(parents=True, exist_ok=True)
    return out


def zoo_model(zoo_dir: Path, name: str) -> Path:
    """The model file, generated on first use (and again whenever make_models.py is newer)."""
    path = zoo_dir / f"{name}.onnx"
    if not path.is_file() or path.stat().st_mtime < MAKE_MODELS.stat().st_mtime:
        subprocess.run(
            [sys.executable, str(MAKE_MODELS), "--out", str(zoo_dir), "--only", name],
            check=True, capture_output=True, text=True,
        )
    return path


def cases():
    for name in CNNS + TRANSFORMERS + MLPS:
        batches = (1, 2) if name in CNNS else (1,)
        for batch in batches:
            marks = [pytest.mark.slow] if name in SLOW else []
            yield pytest.param(name, batch, id=f"{name}-batch{batch}", marks=marks)


@pytest.mark.parametrize("name,batch", list(cases()))
def test_matches_onnxruntime(zoo_dir, name, batch):
    path = zoo_model(zoo_dir, name)
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = random_feeds(ref.get_inputs(), batch=batch, seq=SEQ.get(name, 16), seed=batch)
    want = ref.run(None, feeds)

    sess = kiln.InferenceSession(str(path))
    assert [(a.name, a.shape, a.type) for a in sess.get_inputs()] == [
        (a.name, a.shape, a.type) for a in ref.get_inputs()
    ]
    start = time.perf_counter()
    got = sess.run(None, feeds)
    elapsed = time.perf_counter() - start
    assert len(got) == len(want)
    for out, g, w in zip(ref.get_outputs(), got, want):
        assert g.dtype == w.dtype and g.shape == w.shape, out.name
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4, err_msg=f"{name} output {out.name}")
    print(f"{name} batch {batch}: kiln {elapsed * 1000:.1f} ms")
