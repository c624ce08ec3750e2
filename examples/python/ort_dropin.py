#!/usr/bin/env python3
"""Kiln as a drop-in for onnxruntime: `classify` below is ordinary onnxruntime
code (session options, providers, get_inputs/get_outputs, run). It runs once
with `onnxruntime` and once with `kiln` passed in its place, on the same
inputs, and the two outputs are compared.

    python examples/python/ort_dropin.py [MODEL.onnx] [--batch N]

Exits 1 when the outputs differ by more than 1e-4 (relative and absolute).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import kiln

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "models" / "tiny_cnn.onnx"


def classify(ort, model_path: str, batch: int, seed: int = 0) -> np.ndarray:
    """Code written against onnxruntime's API; `ort` is the onnxruntime module or kiln."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    sess = ort.InferenceSession(model_path, sess_options=options, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [batch if not isinstance(d, int) else d for d in inp.shape]
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    (out,) = sess.run([sess.get_outputs()[0].name], {inp.name: x})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", default=str(DEFAULT_MODEL))
    ap.add_argument("--batch", type=int, default=4)
    args = ap.parse_args()
    try:
        import onnxruntime
    except ImportError:
        sys.exit("onnxruntime is not installed (pip install onnxruntime)")

    expected = classify(onnxruntime, args.model, args.batch)
    got = classify(kiln, args.model, args.batch)
    print(f"model {Path(args.model).name}: output {got.shape} {got.dtype}")
    print("onnxruntime argmax:", expected.reshape(len(expected), -1).argmax(axis=1))
    print("kiln        argmax:", got.reshape(len(got), -1).argmax(axis=1))
    diff = float(np.max(np.abs(got - expected))) if got.size else 0.0
    print(f"max |kiln - onnxruntime| = {diff:.2e}")
    if got.shape != expected.shape or not np.allclose(got, expected, rtol=1e-4, atol=1e-4):
        print("outputs differ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
