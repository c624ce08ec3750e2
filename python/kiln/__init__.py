"""Kiln: ONNX in, fast inference out."""
from . import _core  # noqa: F401
