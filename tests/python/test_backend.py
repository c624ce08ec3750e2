"""The real-model cases shipped in the onnx wheel (onnx/backend/test/data/light),
run through onnx's backend test runner with kiln.backend.

The runner feeds deterministic inputs and compares with the outputs stored
next to each model. It writes its test data under $ONNX_HOME (here the build
folder, not ~/.onnx). The largest CNNs are marked slow; the file takes about
20 s.
"""
from __future__ import annotations

import os
import sys

import pytest

from conftest import build_dir

os.environ.setdefault("ONNX_HOME", str(build_dir() / ".onnx_home"))

from unittest import mock  # noqa: E402

import onnx.backend.test  # noqa: E402
import onnx.backend.test.runner as onnx_runner  # noqa: E402

import kiln.backend  # noqa: E402

MODELS = [
    "bvlc_alexnet",
    "densenet121",
    "inception_v1",
    "inception_v2",
    "resnet50",
    "shufflenet",
    "squeezenet",
    "vgg19",
    "zfnet512",
]
# The largest (several GFLOPs): 2.5-8 s each on reference kernels with 2 cores; the rest take about 1 s.
SLOW = {"vgg19", "bvlc_alexnet", "zfnet512"}


_load_model_tests = onnx_runner.load_model_tests


def _real_model_tests_only(*args, kind="node", **kwargs):
    # BackendTest() loads every category; reading the ~1900 node-test models
    # alone takes ~40 s, and only the real models run here.
    return _load_model_tests(*args, kind=kind, **kwargs) if kind == "real" else []


with mock.patch.object(onnx_runner, "load_model_tests", _real_model_tests_only):
    backend_test = onnx.backend.test.BackendTest(kiln.backend, __name__)
for _name in MODELS:
    backend_test.include(rf"^test_{_name}_cpu$")

# Only the real-model category is exposed: the other categories would add
# thousands of skipped node tests to the report.
OnnxBackendRealModelTest = backend_test.test_cases["OnnxBackendRealModelTest"]
for _name in MODELS:
    _attr = f"test_{_name}_cpu"
    if _name in SLOW:
        setattr(OnnxBackendRealModelTest, _attr, pytest.mark.slow(getattr(OnnxBackendRealModelTest, _attr)))
# CUDA variants are skipped by the runner (supports_device); keep them out of the report.
for _attr in [a for a in vars(OnnxBackendRealModelTest) if a.endswith("_cuda")]:
    delattr(OnnxBackendRealModelTest, _attr)


def test_every_model_is_collected():
    names = {a for a in vars(OnnxBackendRealModelTest) if a.startswith("test_")}
    assert names == {f"test_{m}_cpu" for m in MODELS}, sorted(names)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
