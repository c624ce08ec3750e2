"""Packaging: the CMake package (install the existing build to a temporary
prefix, then configure, build and run examples/cpp/consumer against it) and
the wheel (pyproject.toml through scikit-build-core on the existing build
folder, installed into a fresh virtualenv). Both reuse the build folder: no
second build of the tree."""
from __future__ import annotations

import importlib.util
import re
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
    for component in ("library", "cli", "python"):
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
    # The PyTorch backend's plugin, where bin/kiln looks for it (../lib/kiln), when the build has one.
    if (build_dir() / "src" / "server" / "torch_plugin" / "libkiln_torch_backend.so").is_file():
        assert (prefix / "lib" / "kiln" / "libkiln_torch_backend.so").is_file()


def test_installed_python_package(prefix):
    """The python component: `import kiln` from the prefix's site-packages runs a model."""
    import os
    import sys
    import sysconfig

    site = prefix / sysconfig.get_path("platlib", vars={"base": "", "platbase": ""}).lstrip("/")
    code = ("import kiln, numpy as np; s = kiln.InferenceSession(%r); "
            "print(kiln.__file__, s.run(None, {'input': np.zeros((1, 64), np.float32)})[0].shape)"
            % str(EXAMPLE_MODELS / "tiny_mlp.onnx"))
    r = run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(site)))
    path, shape = r.stdout.split(" ", 1)
    assert Path(path).is_relative_to(prefix) and shape.strip() == "(1, 10)", r.stdout


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


# --- the wheel ---------------------------------------------------------------


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """`pip wheel .` (pyproject.toml, scikit-build-core) with the build folder as its build-dir.

    The build folder was configured by the Makefile with the build type pyproject.toml names,
    so ninja finds kiln and kiln._core up to date and the wheel step only configures, installs
    the `wheel` component and zips (tens of seconds, no compile)."""
    import sys

    build = build_dir()
    if not (build / "CMakeCache.txt").is_file():
        pytest.skip(f"{build} is not a CMake build folder")
    pytest.importorskip("scikit_build_core")
    # Keep the folder's build type (pyproject.toml's default matches the Makefile's build):
    # another one would recompile everything.
    cache = (build / "CMakeCache.txt").read_text()
    build_type = re.search(r"^CMAKE_BUILD_TYPE:\w+=(.*)$", cache, re.M)
    build_type = (build_type.group(1) if build_type else "") or "RelWithDebInfo"
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "pip", "wheel", REPO, "--no-build-isolation", "--no-deps", "--no-index",
         "-w", out, f"-Cbuild-dir={build}", f"-Ccmake.build-type={build_type}"], timeout=600)
    wheels = list(out.glob("kiln-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


# What the wheel needs at run time (numpy) and what kiln.backend needs (onnx and its
# dependencies), taken from the test environment: tests do not download.
RUNTIME_MODULES = ("numpy", "onnx", "google", "typing_extensions", "ml_dtypes")
RUNTIME_DISTRIBUTIONS = ("numpy", "onnx", "protobuf", "typing_extensions", "ml_dtypes")


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory):
    """A fresh virtualenv with the wheel installed by pip. Its dependencies come from a folder
    that links only RUNTIME_MODULES of the test environment (added by a .pth file), so nothing
    else of the test environment, and no other kiln, is visible."""
    import importlib.metadata
    import importlib.util
    import sys
    import sysconfig

    root = tmp_path_factory.mktemp("venv")
    env = root / "env"
    run([sys.executable, "-m", "venv", "--without-pip", env])
    run([sys.executable, "-m", "pip", "--python", env / "bin" / "python", "install", "--no-deps", "--no-index",
         "--no-compile", wheel])
    deps = root / "deps"
    deps.mkdir()
    for module in RUNTIME_MODULES:
        spec = importlib.util.find_spec(module)
        if spec is None:
            continue
        location = Path(spec.origin) if spec.origin and spec.origin.endswith(".py") and not \
            spec.submodule_search_locations else Path(list(spec.submodule_search_locations)[0])
        (deps / location.name).symlink_to(location)
        libs = location.parent / f"{module}.libs"  # auditwheel's vendored libraries
        if libs.is_dir():
            (deps / libs.name).symlink_to(libs)
    for dist in RUNTIME_DISTRIBUTIONS:
        try:
            info = Path(importlib.metadata.distribution(dist)._path)  # the .dist-info folder
        except importlib.metadata.PackageNotFoundError:
            continue
        (deps / info.name).symlink_to(info)
    site = run([env / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    (Path(site.stdout.strip()) / "test_deps.pth").write_text(f"{deps}\n")
    assert sysconfig.get_paths()["purelib"] != site.stdout.strip()
    return env


def test_wheel_contents(wheel):
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    assert "kiln/__init__.py" in names and "kiln/session.py" in names
    assert any(re.fullmatch(r"kiln/_core\..*\.so", n) for n in names), names
    assert "kiln-0.1.0.data/scripts/kiln" in names
    if (build_dir() / "src" / "server" / "torch_plugin" / "libkiln_torch_backend.so").is_file():
        assert "kiln-0.1.0.data/data/lib/kiln/libkiln_torch_backend.so" in names, names
    metadata = zipfile.ZipFile(wheel).read("kiln-0.1.0.dist-info/METADATA").decode()
    assert "Requires-Dist: numpy" in metadata


def test_wheel_import_and_run(venv, tmp_path):
    """`import kiln` in the fresh venv is the wheel's package, and runs a model (session, build, backend names)."""
    script = tmp_path / "use_kiln.py"
    script.write_text(f"""
import numpy as np, kiln
assert "site-packages" in kiln.__file__, kiln.__file__
sess = kiln.InferenceSession({str(EXAMPLE_MODELS / 'tiny_mlp.onnx')!r})
x = np.linspace(-1, 1, 64, dtype=np.float32).reshape(1, 64)
(y,) = sess.run(None, {{sess.get_inputs()[0].name: x}})
kiln.build({str(EXAMPLE_MODELS / 'tiny_mlp.onnx')!r}, {str(tmp_path / 'mlp.plan')!r})
(z,) = kiln.InferenceSession({str(tmp_path / 'mlp.plan')!r}).run(None, {{sess.get_inputs()[0].name: x}})
np.testing.assert_allclose(y, z, rtol=1e-4, atol=1e-5)
np.save({str(tmp_path / 'y.npy')!r}, y)
try:
    import onnx
except ImportError:
    onnx = None
if onnx is not None:
    import kiln.backend
    (b,) = kiln.backend.prepare({str(EXAMPLE_MODELS / 'tiny_mlp.onnx')!r}).run([x])
    np.testing.assert_allclose(b, y, rtol=1e-5, atol=1e-6)
    print("backend ok")
print(kiln.__version__, kiln.__file__)
""")
    r = run([venv / "bin" / "python", "-I", script])
    if importlib.util.find_spec("onnx") is not None:
        assert r.stdout.startswith("backend ok\n"), r.stdout
        r.stdout = r.stdout.split("\n", 1)[1]
    assert r.stdout.split()[0] == kiln.__version__
    assert str(venv) in r.stdout
    x = np.linspace(-1, 1, 64, dtype=np.float32).reshape(1, 64)
    ref = kiln.InferenceSession(str(EXAMPLE_MODELS / "tiny_mlp.onnx"))
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), ref.run(None, {ref.get_inputs()[0].name: x})[0],
                               rtol=1e-5, atol=1e-6)


def test_wheel_cli(venv, tmp_path):
    """The `kiln` command lands in the venv's bin/ and runs."""
    exe = venv / "bin" / "kiln"
    assert exe.is_file()
    r = run([exe, "--help"])
    assert "serve" in r.stdout and "build" in r.stdout
    assert run([exe, "--version"]).stdout.strip() == f"kiln {kiln.__version__}"
    run([exe, "build", EXAMPLE_MODELS / "tiny_mlp.onnx", "-o", tmp_path / "m.plan"])
    assert (tmp_path / "m.plan").stat().st_size > 0
