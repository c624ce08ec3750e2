"""Kiln: ONNX in, fast inference out.

    import kiln
    sess = kiln.InferenceSession("model.onnx")
    outputs = sess.run(None, {"input": array})
    kiln.build("model.onnx", "model.plan", shapes={"input": (8, 3, 224, 224)})
    sess = kiln.InferenceSession("model.plan")

`kiln.InferenceSession` mirrors onnxruntime.InferenceSession; `kiln.backend`
implements onnx.backend.base.Backend (imported on first use: it needs onnx).
"""
import os as _os

# oneDNN's tactics run on libgomp, whose idle workers by default spin for
# ~3 ms after each parallel region (taking a core from Kiln's own thread
# pool) or, when PASSIVE, sleep at once (a wake-up per layer). A short spin
# is best of both (tools/kiln/main.cc). libgomp reads these once, when _core
# loads it; an explicit setting of either in the environment wins.
if "OMP_WAIT_POLICY" not in _os.environ and "GOMP_SPINCOUNT" not in _os.environ:
    _os.environ["OMP_WAIT_POLICY"] = "ACTIVE"
    _os.environ["GOMP_SPINCOUNT"] = "10000"

from . import _core  # noqa: E402
from ._core import InvalidArgumentError, KilnError, NotFoundError, UnimplementedError
from ._core import optimizer_pass_names
from .build import build
from .session import InferenceSession, NodeArg, SessionOptions

__version__ = _core.__version__

__all__ = [
    "build",
    "InferenceSession",
    "NodeArg",
    "SessionOptions",
    "KilnError",
    "InvalidArgumentError",
    "NotFoundError",
    "UnimplementedError",
    "optimizer_pass_names",
    "backend",
    "__version__",
]


def __getattr__(name):
    # `kiln.backend` imports onnx, which plain inference does not need.
    if name == "backend":
        import importlib

        return importlib.import_module(".backend", __name__)
    raise AttributeError(f"module 'kiln' has no attribute {name!r}")
