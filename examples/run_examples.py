#!/usr/bin/env python3
"""Runs the example models in examples/models/ with Kiln, through the Python
API (kiln.InferenceSession) and the `kiln run` command, on seeded random
inputs; builds a plan of each (kiln.build) and runs it too; compares all of
them with onnxruntime and prints a table, then the plans' layer counts and
activation memory.

The models (tiny_mlp, tiny_cnn) were written by make_models.py
(--only tiny_mlp --only tiny_cnn, seed 0). Exits 1 if any model fails or
differs from onnxruntime by more than 1e-4 (relative and absolute).
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import kiln

try:
    import onnxruntime as ort
except ImportError:  # the comparison column then reads "-"
    ort = None

HERE = Path(__file__).resolve().parent
MODELS = HERE / "models"
TOLERANCE = 1e-4
BATCH = 2


def kiln_cli() -> str | None:
    """The kiln tool: next to the imported package's build folder, else on PATH."""
    exe = Path(kiln.__file__).resolve().parents[2] / "tools" / "kiln" / "kiln"
    return str(exe) if exe.is_file() else shutil.which("kiln")


def seeded_inputs(sess: kiln.InferenceSession, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds = {}
    for arg in sess.get_inputs():
        shape = [d if isinstance(d, int) else BATCH for d in arg.shape]
        if arg.type == "tensor(float)":
            feeds[arg.name] = rng.standard_normal(shape).astype(np.float32)
        elif arg.type == "tensor(int64)":
            feeds[arg.name] = rng.integers(0, 100, size=shape, dtype=np.int64)
        else:
            raise NotImplementedError(f"input {arg.name}: no random data for {arg.type}")
    return feeds


def max_diff(got: list[np.ndarray], want: list[np.ndarray]) -> float:
    worst = 0.0
    for g, w in zip(got, want):
        if g.shape != w.shape:
            return float("inf")
        if g.size:
            worst = max(worst, float(np.max(np.abs(g.astype(np.float64) - w.astype(np.float64)))))
    return worst


def within(got: list[np.ndarray], want: list[np.ndarray]) -> bool:
    return len(got) == len(want) and all(
        g.shape == w.shape and np.allclose(g, w, rtol=TOLERANCE, atol=TOLERANCE) for g, w in zip(got, want)
    )


def run_cli(exe: str, model: Path, feeds: dict[str, np.ndarray], names: list[str], tmp: Path) -> list[np.ndarray]:
    args = [exe, "run", str(model), "--output-dir", str(tmp / "out")]
    for name, value in feeds.items():
        path = tmp / f"{name}.npy"
        np.save(path, value)
        args += ["--input", f"{name}={path}"]
    r = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"kiln run exited {r.returncode}: {r.stderr.strip()}")
    return [np.load(tmp / "out" / f"{name}.npy") for name in names]


def shapes(arrays) -> str:
    return " ".join("x".join(map(str, a.shape)) for a in arrays)


def main() -> int:
    exe = kiln_cli()
    models = sorted(MODELS.glob("*.onnx"))
    if not models:
        print(f"no models in {MODELS}", file=sys.stderr)
        return 1
    print(f"kiln {kiln.__version__}; batch {BATCH}; max |kiln - onnxruntime| per path\n")
    header = (f"{'model':<10} {'inputs':<14} {'outputs':<9} {'python':>10} {'cli':>10} {'plan':>10} "
              f"{'kiln ms':>9} {'ort ms':>8}")
    print(header)
    print("-" * len(header))
    failed = False
    plan_dir = Path(tempfile.mkdtemp(prefix="kiln_plans_"))
    summaries = {}
    for i, model in enumerate(models):
        name = model.stem
        try:
            sess = kiln.InferenceSession(str(model))
            feeds = seeded_inputs(sess, seed=i)
            out_names = [o.name for o in sess.get_outputs()]
            sess.run(None, feeds)  # warm up
            start = time.perf_counter()
            got = sess.run(None, feeds)
            kiln_ms = (time.perf_counter() - start) * 1000
            want, ort_ms, py_diff, cli_diff = None, float("nan"), "-", "-"
            if ort is not None:
                ref = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
                ref.run(None, feeds)
                start = time.perf_counter()
                want = ref.run(None, feeds)
                ort_ms = (time.perf_counter() - start) * 1000
                py_diff = f"{max_diff(got, want):.2e}"
                failed |= not within(got, want)
            if exe is not None:
                with tempfile.TemporaryDirectory() as tmp:
                    from_cli = run_cli(exe, model, feeds, out_names, Path(tmp))
                reference = want if want is not None else got
                cli_diff = f"{max_diff(from_cli, reference):.2e}"
                failed |= not within(from_cli, reference)
            # The plan: built for these input shapes, saved, loaded and run.
            plan = plan_dir / f"{name}.plan"
            summaries[name] = kiln.build(model, plan, shapes={k: v.shape for k, v in feeds.items()})
            from_plan = kiln.InferenceSession(str(plan)).run(None, feeds)
            reference = want if want is not None else got
            plan_diff = f"{max_diff(from_plan, reference):.2e}"
            failed |= not within(from_plan, reference)
            print(f"{name:<10} {shapes(feeds.values()):<14} {shapes(got):<9} {py_diff:>10} {cli_diff:>10} "
                  f"{plan_diff:>10} {kiln_ms:>9.2f} {ort_ms:>8.2f}")
        except Exception as e:  # noqa: BLE001 - one row per model, whatever went wrong
            failed = True
            print(f"{name:<10} error: {e}")
    if summaries:
        print(f"\nplans (in {plan_dir}):")
        for name, s in summaries.items():
            ratio = 100.0 * s["peak_activation_bytes"] / max(1, s["naive_activation_bytes"])
            print(f"  {name:<10} {s['onnx_nodes']} ONNX nodes -> {s['layers']} layers; activation memory "
                  f"{s['peak_activation_bytes']} B peak vs {s['naive_activation_bytes']} B naive ({ratio:.0f}%)")
    shutil.rmtree(plan_dir, ignore_errors=True)
    if exe is None:
        print("\n(the kiln command was not found; build it with `make build`)")
    print("\nFAILED: see the rows above" if failed else f"\nall outputs within {TOLERANCE} of onnxruntime")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
