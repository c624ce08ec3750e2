"""The kiln command-line tool: run and inspect on a model, help, usage errors,
missing and malformed files. Every error must print a message naming the file
or input on stderr and exit with 1 (2 for usage errors), never crash."""
from __future__ import annotations

import json
import subprocess
from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import kiln

from conftest import EXAMPLE_MODELS, random_feeds

TINY_MLP = EXAMPLE_MODELS / "tiny_mlp.onnx"
TINY_CNN = EXAMPLE_MODELS / "tiny_cnn.onnx"


def cli(exe, *args, expect=0):
    r = subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=300)
    assert r.returncode >= 0, f"kiln {' '.join(map(str, args))} died of signal {-r.returncode}: {r.stderr}"
    assert r.returncode == expect, f"kiln {' '.join(map(str, args))}: rc {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


@pytest.fixture
def mlp_input(tmp_path):
    ref = ort.InferenceSession(str(TINY_MLP), providers=["CPUExecutionProvider"])
    feeds = random_feeds(ref.get_inputs(), batch=2, seed=7)
    path = tmp_path / "x.npy"
    np.save(path, feeds["input"])
    return path, feeds, ref


def test_help_and_version(kiln_exe):
    r = cli(kiln_exe, "--help")
    assert "run" in r.stdout and "inspect" in r.stdout
    assert "--output-dir" in cli(kiln_exe, "run", "--help").stdout
    assert "--json" in cli(kiln_exe, "inspect", "--help").stdout
    assert cli(kiln_exe, "--version").stdout.strip() == f"kiln {kiln.__version__}"


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["frobnicate"],
        ["run"],
        ["run", "m.onnx", "--threads", "-1"],
        ["run", "m.onnx", "--threads", "many"],
        ["run", "m.onnx", "--no-such-flag"],
        ["inspect"],
        ["inspect", "a.onnx", "b.onnx"],
    ],
    ids=["nothing", "unknown-command", "run-no-model", "negative-threads", "threads-not-int", "unknown-flag",
         "inspect-no-model", "inspect-two-models"],
)
def test_usage_errors_exit_2(kiln_exe, args):
    r = cli(kiln_exe, *args, expect=2)
    assert r.stderr.strip(), "a usage error must say what is wrong"


def test_missing_model(kiln_exe, tmp_path):
    missing = tmp_path / "nope.onnx"
    for command in ("run", "inspect"):
        r = cli(kiln_exe, command, missing, expect=1)
        assert str(missing) in r.stderr


def test_garbage_model(kiln_exe, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x0a\xff\xff\xff\xff\x0f" + b"\x00" * 100)
    for command in ("run", "inspect"):
        r = cli(kiln_exe, command, bad, expect=1)
        assert "bad.onnx" in r.stderr


def test_missing_and_bad_npy(kiln_exe, tmp_path):
    r = cli(kiln_exe, "run", TINY_MLP, "--input", f"input={tmp_path / 'absent.npy'}", expect=1)
    assert "absent.npy" in r.stderr and "'input'" in r.stderr

    good = tmp_path / "good.npy"
    np.save(good, np.zeros((2, 64), np.float32))
    data = good.read_bytes()
    truncated = tmp_path / "truncated.npy"
    truncated.write_bytes(data[:-5])
    r = cli(kiln_exe, "run", TINY_MLP, "--input", f"input={truncated}", expect=1)
    assert "truncated" in r.stderr and "truncated.npy" in r.stderr
    header_cut = tmp_path / "header_cut.npy"
    header_cut.write_bytes(data[:30])
    r = cli(kiln_exe, "run", TINY_MLP, "--input", f"input={header_cut}", expect=1)
    assert "truncated" in r.stderr

    fortran = tmp_path / "fortran.npy"
    np.save(fortran, np.asfortranarray(np.zeros((2, 64), np.float32)))
    r = cli(kiln_exe, "run", TINY_MLP, "--input", f"input={fortran}", expect=1)
    assert "Fortran" in r.stderr and "fortran.npy" in r.stderr

    pickled = tmp_path / "pickled.npy"
    np.save(pickled, np.array(["a", None], dtype=object), allow_pickle=True)
    r = cli(kiln_exe, "run", TINY_MLP, "--input", f"input={pickled}", expect=1)
    assert "pickled" in r.stderr

    not_npy = tmp_path / "text.npy"
    not_npy.write_text("hello")
    r = cli(kiln_exe, "run", TINY_MLP, "--input", f"input={not_npy}", expect=1)
    assert "text.npy" in r.stderr


def test_run_prints_outputs(kiln_exe, mlp_input):
    path, feeds, ref = mlp_input
    r = cli(kiln_exe, "run", TINY_MLP, "--input", f"input={path}", "--threads", "1")
    (want,) = ref.run(None, feeds)
    name = ref.get_outputs()[0].name
    line = next(l for l in r.stdout.splitlines() if l.startswith(name + ":"))
    assert "float [2,10]" in line
    first = float(line.split("= [")[1].split(",")[0])
    assert abs(first - float(want.flat[0])) <= 1e-4 * (1 + abs(float(want.flat[0])))
    # A one-input model also takes a bare file.
    cli(kiln_exe, "run", TINY_MLP, "-i", path)


def test_run_writes_npy(kiln_exe, mlp_input, tmp_path):
    path, feeds, ref = mlp_input
    out_dir = tmp_path / "out"
    cli(kiln_exe, "run", TINY_MLP, "--input", f"input={path}", "--output-dir", out_dir)
    (want,) = ref.run(None, feeds)
    got = np.load(out_dir / f"{ref.get_outputs()[0].name}.npy")
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_run_input_errors(kiln_exe, tmp_path):
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((2, 64), np.float64))
    r = cli(kiln_exe, "run", TINY_MLP, "--input", f"input={wrong}", expect=1)
    assert "'input'" in r.stderr and "double" in r.stderr
    r = cli(kiln_exe, "run", TINY_MLP, "--input", f"nosuch={wrong}", expect=1)
    assert "'nosuch'" in r.stderr
    r = cli(kiln_exe, "run", TINY_MLP, expect=1)
    assert "missing input 'input'" in r.stderr


def test_inspect_text(kiln_exe):
    r = cli(kiln_exe, "inspect", TINY_CNN)
    model = onnx.load(TINY_CNN)
    assert "opset" in r.stdout and "ai.onnx 17" in r.stdout
    assert f"nodes: {len(model.graph.node)}" in r.stdout
    for op in {n.op_type for n in model.graph.node}:
        assert op in r.stdout
    assert "input" in r.stdout and "[batch,3,32,32]" in r.stdout


def test_inspect_json(kiln_exe):
    for path in (TINY_MLP, TINY_CNN):
        info = json.loads(cli(kiln_exe, "inspect", "--json", path).stdout)
        model = onnx.load(path)
        assert info["nodes"] == len(model.graph.node)
        assert info["op_histogram"] == dict(Counter(n.op_type for n in model.graph.node))
        assert info["opset_imports"] == {"ai.onnx": 17}
        assert [i["name"] for i in info["inputs"] if not i["has_default"]] == [i.name for i in model.graph.input]
        assert info["inputs"][0]["type"] == "tensor(float)"
        assert info["inputs"][0]["shape"][0] == "batch"
        assert [o["name"] for o in info["outputs"]] == [o.name for o in model.graph.output]
        assert info["initializers"] == len(model.graph.initializer)


@pytest.mark.parametrize("given,want", [
    ({}, {"OMP_WAIT_POLICY": "ACTIVE", "GOMP_SPINCOUNT": "10000"}),
    ({"OMP_WAIT_POLICY": "PASSIVE"}, {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": None}),
    ({"GOMP_SPINCOUNT": "0"}, {"OMP_WAIT_POLICY": None, "GOMP_SPINCOUNT": "0"}),
])
def test_openmp_waits_with_a_short_spin_unless_set(kiln_exe, tmp_path, given, want):
    """kiln sets OMP_WAIT_POLICY=ACTIVE with GOMP_SPINCOUNT=10000 and executes
    itself again when neither is set (libgomp reads them once, at load); an
    explicit value of either wins. Seen in the environment of a running
    `kiln serve` (/proc/PID/environ)."""
    import os

    from server_util import KilnServer

    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(given)
    (tmp_path / "repo").mkdir()
    srv = KilnServer(tmp_path / "repo", exe=kiln_exe, wait_ready=False, env=env)
    try:
        with open(f"/proc/{srv.proc.pid}/environ", "rb") as f:
            environ = dict(e.split(b"=", 1) for e in f.read().split(b"\0") if b"=" in e)
        for k, v in want.items():
            assert environ.get(k.encode()) == (v.encode() if v is not None else None), (k, environ.get(k.encode()))
    finally:
        srv.stop()


def test_layer_tactic_pins_a_layer(kiln_exe, tmp_path):
    plan = tmp_path / "m.plan"
    shapes = ("--shapes", "input:4x64")
    out = cli(kiln_exe, "build", TINY_MLP, "-o", plan, *shapes, "--verbose", "--layer-tactic", "fc1=reference").stdout
    row = next(line for line in out.splitlines() if line.split()[1:2] == ["fc1"])
    assert row.split()[3] == "reference", row
    err = cli(kiln_exe, "build", TINY_MLP, "-o", plan, *shapes, "--layer-tactic", "fc9=reference", expect=1).stderr
    assert "no layer named 'fc9'" in err
    err = cli(kiln_exe, "build", TINY_MLP, "-o", plan, *shapes, "--layer-tactic", "fc1=own.nope", expect=1).stderr
    assert "'own.nope' is not one of its candidates" in err and "reference" in err
    err = cli(kiln_exe, "build", TINY_MLP, "-o", plan, "--layer-tactic", "fc1", expect=1).stderr
    assert "expected LAYER=TACTIC" in err
