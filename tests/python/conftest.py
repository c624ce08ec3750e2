"""Shared fixtures of the Python tests: paths, the kiln CLI and seeded inputs."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import kiln

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_MODELS = REPO / "examples" / "models"


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a test that takes tens of seconds (deselect with -m 'not slow')")


def build_dir() -> Path:
    """The build folder whose python/ provides the imported kiln package (build/ by default)."""
    pkg = Path(kiln.__file__).resolve().parent  # <build>/python/kiln
    return pkg.parents[1]


def kiln_cli() -> str | None:
    """Path of the kiln command-line tool next to the imported package, or on PATH."""
    exe = build_dir() / "tools" / "kiln" / "kiln"
    if exe.is_file():
        return str(exe)
    return shutil.which("kiln")


@pytest.fixture(scope="session")
def kiln_exe() -> str:
    exe = kiln_cli()
    if exe is None:
        pytest.skip("the kiln command-line tool is not built (build/tools/kiln/kiln)")
    return exe


def random_feeds(inputs, batch: int = 1, seq: int = 16, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded inputs for onnxruntime-style NodeArgs: symbolic dims take `batch` (first) or `seq` (later).

    int64 inputs named like token ids get ids below 1000; attention masks get ones with a padded tail.
    """
    rng = np.random.default_rng(seed)
    feeds = {}
    for arg in inputs:
        shape = []
        for i, d in enumerate(arg.shape):
            shape.append(d if isinstance(d, int) else (batch if i == 0 else seq))
        if arg.type == "tensor(float)":
            feeds[arg.name] = rng.standard_normal(shape).astype(np.float32)
        elif arg.type == "tensor(int64)" and "mask" in arg.name:
            mask = np.ones(shape, np.int64)
            if mask.ndim == 2 and mask.shape[1] > 4:
                mask[-1, -3:] = 0
            feeds[arg.name] = mask
        elif arg.type == "tensor(int64)":
            feeds[arg.name] = rng.integers(0, 1000, size=shape, dtype=np.int64)
        else:
            raise NotImplementedError(f"no random data for {arg.name}: {arg.type}")
    return feeds
