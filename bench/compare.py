#!/usr/bin/env python3
"""Side-by-side latency of Kiln and onnxruntime on the same models and inputs.

Both engines run in this process on 2 threads, alternating run by run so that
machine noise hits both alike; the report gives each one's median and spread
and the ratio onnxruntime_ms / kiln_ms (above 1 means Kiln is faster).

    python bench/compare.py --models resnet50,mobilenetv2 --batch 1 --repeat 10
Models come from ../shared/models/make_models.py (cached under build/.cache/zoo_models).
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np
import onnxruntime as ort

import kiln

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.path.join(ROOT, "build", ".cache", "zoo_models")
MAKE_MODELS = os.environ.get("KILN_MAKE_MODELS", os.path.join(ROOT, "..", "shared", "models", "make_models.py"))


def model_path(name: str) -> str:
    path = os.path.join(CACHE, f"{name}.onnx")
    if not os.path.exists(path):
        os.makedirs(CACHE, exist_ok=True)
        subprocess.run([sys.executable, MAKE_MODELS, "--out", CACHE, "--only", name], check=True,
                       stdout=subprocess.DEVNULL)
    return path


def feeds_for(sess: ort.InferenceSession, batch: int, seq: int, rng) -> dict:
    feeds = {}
    for i in sess.get_inputs():
        shape = [batch if k == 0 else (d if isinstance(d, int) else seq) for k, d in enumerate(i.shape)]
        if i.type == "tensor(int64)":
            feeds[i.name] = (rng.integers(0, 100, size=shape) if "ids" in i.name else np.ones(shape)).astype(np.int64)
        else:
            feeds[i.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="resnet50,mobilenetv2,resnet18,bert_tiny")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=10)
    args = ap.parse_args(argv)

    rng = np.random.default_rng(0)
    print(f"# {datetime.date.today()} {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"threads={args.threads}, batch={args.batch}, repeat={args.repeat}")
    print(f"# command: python bench/compare.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    print("| model | kiln ms (median, min-max) | onnxruntime ms (median, min-max) | ort/kiln | max abs diff |")
    print("|---|---|---|---|---|")
    for name in [m for m in args.models.split(",") if m]:
        path = model_path(name)
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        o = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        k = kiln.InferenceSession(path, threads=args.threads)
        feeds = feeds_for(o, args.batch, args.seq, rng)
        ref = o.run(None, feeds)
        got = k.run(None, feeds)
        diff = max(float(np.max(np.abs(a - b))) for a, b in zip(ref, got))
        tk, to = [], []
        for _ in range(args.repeat):
            t = time.perf_counter()
            k.run(None, feeds)
            tk.append((time.perf_counter() - t) * 1e3)
            t = time.perf_counter()
            o.run(None, feeds)
            to.append((time.perf_counter() - t) * 1e3)
        mk, mo = statistics.median(tk), statistics.median(to)
        print(f"| {name} | {mk:.1f} ({min(tk):.1f}-{max(tk):.1f}) | {mo:.1f} ({min(to):.1f}-{max(to):.1f}) "
              f"| {mo / mk:.2f} | {diff:.2e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
