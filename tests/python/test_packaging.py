"""Packaging: the CMake package (install the existing build to a temporary
prefix, then configure, build and run examples/cpp/consumer against it) and
the wheel (pyproject.toml through scikit-build-core on the existing build
folder, installed into a fresh virtualenv). Both reuse the build folder: no
second build of the tree."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import kiln

from conftest import EXAMPLE_MODELS, REPO, build_dir

CONSUMER = REPO / "examples" / "cpp" / "consumer"


def run(cmd, timeout=300, **kwargs):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kwargs)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))}: rc {r.returncode}\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    return r


def consumer_feed(session: kiln.InferenceSession, name: str) -> np.ndarray:
    """The input examples/cpp/consumer/main.cc feeds: (i % 7) * 0.25 - 0.5, dynamic dims as 1."""
    arg = next(a for a in session.get_inputs() if a.name == name)
    shape = [d if isinstance(d, int) and d >= 0 else 1 for d in arg.shape]
    return ((np.arange(int(np.prod(shape))) % 7) * 0.25 - 0.5).astype(np.float32).reshape(shape)


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    """`cmake --install` of the build folder's library and CLI components into a temporary prefix."""
    build = build_dir()
    if not (build / "cmake_install.cmake").is_file():
        pytest.skip(f"{build} is not a CMake build folder")
    prefix = tmp_path_factory.mktemp("prefix")
    for component in ("library", "cli"):
        run(["cmake", "--install", build, "--prefix", prefix, "--component", component])
    return prefix


def test_install_tree(prefix):
    for rel in ("include/kiln/session.h", "include/kiln/version.h", "lib/cmake/Kiln/KilnConfig.cmake",
                "lib/cmake/Kiln/KilnConfigVersion.cmake", "lib/cmake/Kiln/KilnTargets.cmake", "bin/kiln"):
        assert (prefix / rel).is_file(), rel
    assert list((prefix / "lib").glob("libkiln.so*"))
    # Public headers are self-contained: only <std> and "kiln/..." includes.
    for header in (prefix / "include" / "kiln").glob("*.h"):
        for line in header.read_text().splitlines():
            if line.startswith('#include "'):
                assert re.match(r'#include "kiln/\w+\.h"', line), f"{header.name}: {line}"
                assert (prefix / "include" / line.split('"')[1]).is_file(), f"{header.name}: {line}"
    r = run([prefix / "bin" / "kiln", "--version"])
    assert r.stdout.strip() == f"kiln {kiln.__version__}"


def test_cpp_consumer(prefix, tmp_path):
    build = tmp_path / "consumer"
    run(["cmake", "-S", CONSUMER, "-B", build, "-G", "Ninja", f"-DCMAKE_PREFIX_PATH={prefix}",
         "-DCMAKE_CXX_FLAGS=-Wall -Wextra -Werror"])
    run(["cmake", "--build", build])
    model = EXAMPLE_MODELS / "tiny_cnn.onnx"
    out = run([build / "kiln_consumer", model]).stdout.splitlines()
    assert out[0] == f"Kiln {kiln.__version__}"
    # The same input through the Python module gives the same output.
    session = kiln.InferenceSession(str(model))
    feeds = {a.name: consumer_feed(session, a.name) for a in session.get_inputs()}
    expected = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
    for line in out[1:]:
        name, rest = line.split(": ", 1)
        values = [float(v) for v in rest.split()[1:]]
        assert rest.split()[0] == f"float[{','.join(map(str, expected[name].shape))}]"
        np.testing.assert_allclose(values, expected[name].ravel()[: len(values)], rtol=1e-4, atol=1e-5)
    assert len(out) == 1 + len(expected)


def test_version_mismatch_is_refused(prefix, tmp_path):
    """KilnConfigVersion.cmake: a different minor version is not compatible (0.x)."""
    project = tmp_path / "wants_other_version"
    project.mkdir()
    (project / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.20)\nproject(p LANGUAGES CXX)\nfind_package(Kiln 0.99 CONFIG REQUIRED)\n")
    r = subprocess.run(["cmake", "-S", str(project), "-B", str(tmp_path / "b"), f"-DCMAKE_PREFIX_PATH={prefix}"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "Kiln" in r.stderr
