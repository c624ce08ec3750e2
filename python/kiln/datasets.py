"""Small real datasets for examples and accuracy tables.

`digits()` is scikit-learn's handwritten digits (1797 8x8 images, bundled with
scikit-learn, no download) split into train and held-out parts with a fixed
seed, as NCHW float32 in [0, 1] and int64 labels. The split is the one
examples/train_digits.py trains on and examples/models/digits_cnn.onnx was
evaluated on.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Split(NamedTuple):
    x_train: np.ndarray  # [N, 1, 8, 8] float32, pixel / 16
    y_train: np.ndarray  # [N] int64
    x_test: np.ndarray   # held-out
    y_test: np.ndarray


def digits(test_fraction: float = 0.25, seed: int = 0) -> Split:
    """scikit-learn's digits, shuffled with numpy's PCG64(seed) and split
    (the last `test_fraction` of the permutation is held out)."""
    from sklearn.datasets import load_digits  # scikit-learn, pinned in requirements.txt

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = d.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(len(x) * test_fraction))
    train, test = order[: len(x) - n_test], order[len(x) - n_test:]
    return Split(np.ascontiguousarray(x[train]), y[train], np.ascontiguousarray(x[test]), y[test])


def digits_test(seed: int = 0):
    """The held-out part only: (x [N, 1, 8, 8] float32, y [N] int64)."""
    s = digits(seed=seed)
    return s.x_test, s.y_test


__all__ = ["Split", "digits", "digits_test"]
