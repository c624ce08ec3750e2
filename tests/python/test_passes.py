"""The optimizer keeps outputs equal on real models.

Every model runs unoptimized and optimized on the same seeded inputs and the
outputs are compared at rtol = atol = 1e-4 (fp32):

- every make_models.py model after each pass in turn (the pipeline
  truncated after it; resnet50, mobilenetv2 and bert_base marked slow);
- the onnx wheel's light models after each pass, except the four that take
  several seconds a run on reference kernels (whole pipeline only; slow
  ones marked);

and the optimized graphs must be smaller: resnet50 below 45% of its ONNX
node count, every model no larger than before. Models are loaded once per
model (module-scoped cache of the baseline outputs).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

import kiln

from conftest import random_feeds
from test_zoo import SEQ, zoo_dir, zoo_model  # noqa: F401  (zoo_dir is a fixture)

# The onnx wheel's light models (test_backend.py runs the same list).
LIGHT_MODELS = ["bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50", "shufflenet",
                "squeezenet", "vgg19", "zfnet512"]
SMALL_ZOO = ["resnet18", "tiny_cnn", "tiny_mlp", "bert_tiny"]
LARGE_ZOO = ["resnet50", "mobilenetv2", "bert_base"]
SLOW_LIGHT = {"vgg19", "bvlc_alexnet", "zfnet512", "densenet121", "inception_v2", "resnet50"}
# Light models too slow on reference kernels to run once per pass.
WHOLE_PIPELINE_ONLY = {"vgg19", "bvlc_alexnet", "zfnet512", "resnet50"}
PASSES = kiln.optimizer_pass_names()
# Largest optimized/ONNX node-count ratio allowed per model (the bar for resnet50).
MAX_RATIO = {"resnet50": 0.45, "resnet18": 0.45, "mobilenetv2": 0.45, "tiny_cnn": 0.5, "bert_base": 0.6, "bert_tiny": 0.6}


def light_model(name: str) -> Path:
    return Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / f"light_{name}.onnx"


class Baseline:
    """A model's unoptimized outputs on seeded inputs."""

    def __init__(self, path: Path, seq: int = 16):
        self.path = path
        sess = kiln.InferenceSession(str(path), threads=2)
        self.feeds = random_feeds(sess.get_inputs(), batch=1, seq=seq, seed=7)
        self.outputs = sess.run(None, self.feeds)
        self.onnx_nodes = len(onnx.load(str(path), load_external_data=False).graph.node)

    def check(self, passes: list[str]) -> kiln.InferenceSession:
        sess = kiln.InferenceSession(str(self.path), threads=2, passes=passes)
        got = sess.run(None, self.feeds)
        assert len(got) == len(self.outputs)
        for i, (g, w) in enumerate(zip(got, self.outputs)):
            assert g.dtype == w.dtype and g.shape == w.shape, f"output {i}"
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4, err_msg=f"{self.path.name} output {i} after {passes}")
        return sess


_baselines: dict[str, Baseline] = {}


def baseline(key: str, path: Path, seq: int = 16) -> Baseline:
    if key not in _baselines:
        _baselines[key] = Baseline(path, seq)
    return _baselines[key]


def check_node_count(name: str, base: Baseline, sess: kiln.InferenceSession) -> None:
    layers = len(sess.get_layers())
    assert layers <= base.onnx_nodes, f"{name}: {layers} layers after optimizing {base.onnx_nodes} ONNX nodes"
    if name in MAX_RATIO:
        assert layers < MAX_RATIO[name] * base.onnx_nodes, f"{name}: {layers} of {base.onnx_nodes} nodes left"


def test_pipeline_names():
    assert PASSES[:2] == ["qdq_lowering", "constant_folding"] and PASSES[-1] == "dead_code_elimination"
    assert len(set(PASSES)) == len(PASSES)


def test_unknown_pass_is_an_error(zoo_dir):
    with pytest.raises(kiln.InvalidArgumentError, match="no_such_pass"):
        kiln.InferenceSession(str(zoo_model(zoo_dir, "tiny_mlp")), passes=["no_such_pass"])


def per_pass_cases():
    """(key, stop) for every model checked after each pass; the slow ones marked."""
    for name in SMALL_ZOO + LARGE_ZOO:
        for stop in PASSES:
            marks = [pytest.mark.slow] if name in LARGE_ZOO else []
            yield pytest.param(name, stop, marks=marks, id=f"{name}-{stop}")


@pytest.mark.parametrize("name,stop", list(per_pass_cases()))
def test_zoo_after_each_pass(zoo_dir, name, stop):
    base = baseline(name, zoo_model(zoo_dir, name), SEQ.get(name, 16))
    sess = base.check([stop])
    if stop == PASSES[-1]:  # the whole pipeline
        check_node_count(name, base, sess)


def light_cases():
    """Light models after each pass where a run takes about a second, else the whole pipeline only."""
    for name in LIGHT_MODELS:
        slow = name in SLOW_LIGHT
        stops = ["all"] if name in WHOLE_PIPELINE_ONLY else PASSES
        for stop in stops:
            marks = [pytest.mark.slow] if slow else []
            yield pytest.param(name, stop, marks=marks, id=f"{name}-{stop}")


@pytest.mark.parametrize("name,stop", list(light_cases()))
def test_light_models(name, stop):
    path = light_model(name)
    if not path.is_file():
        pytest.skip(f"{path} is not in this onnx wheel")
    base = baseline("light_" + name, path)
    sess = base.check([stop])
    if stop in ("all", PASSES[-1]):
        check_node_count(name, base, sess)


def test_fused_layers_name_their_sources(zoo_dir):
    sess = kiln.InferenceSession(str(zoo_model(zoo_dir, "tiny_cnn")), passes=["all"])
    fused = [layer for layer in sess.get_layers() if layer["op"].startswith("kiln.")]
    assert fused, sess.get_layers()
    for layer in fused:
        assert layer["fused_from"], layer
