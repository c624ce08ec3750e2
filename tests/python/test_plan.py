"""Plans end to end: kiln.build, save/load round trips on the zoo models
compared with onnxruntime at 1e-4, the memory planner's savings on resnet50
and bert_base at batch 8, and clear errors for bad plans and bad shapes.
"""
from __future__ import annotations

import json
import subprocess

import numpy as np
import onnxruntime as ort
import pytest

import kiln

from conftest import random_feeds
from test_zoo import CNNS, MLPS, SEQ, SLOW, TRANSFORMERS, zoo_dir, zoo_model  # noqa: F401 (zoo_dir is a fixture)


def shapes_for(name: str, batch: int, inputs) -> dict:
    out = {}
    for arg in inputs:
        out[arg.name] = [d if isinstance(d, int) else (batch if i == 0 else SEQ.get(name, 16)) for i, d in enumerate(arg.shape)]
    return out


def cases():
    for name in CNNS + TRANSFORMERS + MLPS:
        marks = [pytest.mark.slow] if name in SLOW else []
        yield pytest.param(name, id=name, marks=marks)


@pytest.mark.parametrize("name", list(cases()))
def test_plan_round_trip_matches_onnxruntime(zoo_dir, tmp_path, name):
    path = zoo_model(zoo_dir, name)
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch = 2 if name in CNNS else 1
    feeds = random_feeds(ref.get_inputs(), batch=batch, seq=SEQ.get(name, 16), seed=3)
    want = ref.run(None, feeds)
    plan = tmp_path / f"{name}.plan"
    summary = kiln.build(path, plan, shapes=shapes_for(name, batch, ref.get_inputs()), time_tactics=False)
    assert summary["layers"] > 0 and summary["onnx_nodes"] > 0
    assert summary["peak_activation_bytes"] <= summary["naive_activation_bytes"]
    sess = kiln.InferenceSession(str(plan))
    assert [a.name for a in sess.get_inputs()] == [a.name for a in ref.get_inputs()]
    for _ in range(2):  # twice: the second run reuses the arena
        got = sess.run(None, feeds)
        assert len(got) == len(want)
        for out, g, w in zip(ref.get_outputs(), got, want):
            assert g.dtype == w.dtype and g.shape == w.shape, out.name
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4, err_msg=f"{name} output {out.name}")
    # The .onnx opened directly is built with default options: same outputs.
    direct = kiln.InferenceSession(str(path)).run(None, feeds)
    for g, w in zip(direct, want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet50", "bert_base"])
def test_peak_activation_memory_at_batch_8(zoo_dir, tmp_path, name):
    path = zoo_model(zoo_dir, name)
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    summary = kiln.build(path, tmp_path / "m.plan", shapes=shapes_for(name, 8, ref.get_inputs()), time_tactics=False)
    peak, naive = summary["peak_activation_bytes"], summary["naive_activation_bytes"]
    print(f"{name} batch 8: peak {peak} B vs naive {naive} B = {100.0 * peak / naive:.1f}%")
    assert peak <= 0.35 * naive


def test_dynamic_profile_and_out_of_range_shapes(zoo_dir, tmp_path):
    path = zoo_model(zoo_dir, "tiny_cnn")
    plan = tmp_path / "dyn.plan"
    kiln.build(path, plan, min_shapes={"input": (1, 3, 32, 32)}, opt_shapes="input:2x3x32x32",
               max_shapes={"input": (4, 3, 32, 32)}, time_tactics=False)
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    sess = kiln.InferenceSession(str(plan))
    for batch in (1, 3, 4):
        feeds = random_feeds(ref.get_inputs(), batch=batch, seed=batch)
        np.testing.assert_allclose(sess.run(None, feeds)[0], ref.run(None, feeds)[0], rtol=1e-4, atol=1e-4)
    with pytest.raises(kiln.InvalidArgumentError, match=r"input 'input'.*dim 0 is 5.*\[1, 4\]"):
        sess.run(None, random_feeds(ref.get_inputs(), batch=5))


def test_bad_build_arguments(zoo_dir, tmp_path):
    path = zoo_model(zoo_dir, "tiny_cnn")
    with pytest.raises(kiln.KilnError, match="'nope'"):
        kiln.build(path, tmp_path / "x.plan", shapes={"nope": (1, 3, 32, 32)})
    with pytest.raises(kiln.KilnError, match="dim 1"):
        kiln.build(path, tmp_path / "x.plan", shapes="input:1x4x32x32")
    with pytest.raises(kiln.KilnError, match="not a dimension"):
        kiln.build(path, tmp_path / "x.plan", shapes="input:1xfoo")
    with pytest.raises(kiln.KilnError, match="tactic source"):
        kiln.build(path, tmp_path / "x.plan", tactic_sources="own,bogus")


def test_bad_plans_give_clear_errors(zoo_dir, tmp_path):
    path = zoo_model(zoo_dir, "tiny_cnn")
    plan = tmp_path / "good.plan"
    kiln.build(path, plan, shapes={"input": (1, 3, 32, 32)}, time_tactics=False)
    data = plan.read_bytes()
    truncated = tmp_path / "truncated.plan"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(kiln.KilnError, match="truncated"):
        kiln.InferenceSession(str(truncated))
    corrupt = tmp_path / "corrupt.plan"
    flipped = bytearray(data)
    flipped[200] ^= 0x10  # inside the metadata
    corrupt.write_bytes(bytes(flipped))
    with pytest.raises(kiln.KilnError, match="corrupt"):
        kiln.InferenceSession(str(corrupt))
    newer = tmp_path / "newer.plan"
    bumped = bytearray(data)
    bumped[8] = 99  # the format version
    newer.write_bytes(bytes(bumped))
    with pytest.raises(kiln.KilnError, match="newer"):
        kiln.InferenceSession(str(newer))


def test_timing_cache_is_written_and_reused(zoo_dir, tmp_path):
    path = zoo_model(zoo_dir, "tiny_mlp")
    cache = tmp_path / "timing.cache"
    first = kiln.build(path, tmp_path / "a.plan", shapes={"input": (4, 64)}, timing_cache=cache)
    if first["timed_layers"] == 0:
        pytest.skip("no node has more than one tactic in this build (only the reference kernels)")
    assert cache.is_file()
    second = kiln.build(path, tmp_path / "b.plan", shapes={"input": (4, 64)}, timing_cache=cache)
    assert second["cache_misses"] == 0 and second["cache_hits"] > 0


def test_cli_build_inspect_bench(kiln_exe, zoo_dir, tmp_path):
    path = zoo_model(zoo_dir, "tiny_cnn")
    plan = tmp_path / "cli.plan"
    r = subprocess.run([kiln_exe, "build", str(path), "-o", str(plan), "--shapes", "input:2x3x32x32", "--verbose"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "layers" in r.stdout and "activation memory" in r.stdout
    assert "\r" not in r.stderr  # no progress display in a pipe
    r = subprocess.run([kiln_exe, "inspect", str(plan), "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["onnx_nodes"] == 13
    assert len(info["layers"]) == info["layer_count"] > 0
    assert {"name", "op", "fused", "precision", "tactic"} <= set(info["layers"][0])
    assert 0 < info["peak_activation_bytes"] <= info["naive_activation_bytes"]
    assert info["target"]["arch"]
    r = subprocess.run([kiln_exe, "bench", str(plan), "--iterations", "5", "--warmup", "0", "--profile"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "percentile(99%)" in r.stdout and "Throughput" in r.stdout and "Profile" in r.stdout
    r = subprocess.run([kiln_exe, "bench", str(plan), "--shapes", "input:3x3x32x32", "--iterations", "1"],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "input 'input'" in r.stderr
