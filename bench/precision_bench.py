#!/usr/bin/env python3
"""Throughput of Kiln's precisions against Kiln fp32 and onnxruntime, in one run.

For each model: onnxruntime's quantize_static writes a Q/DQ model (per-channel
int8 weights, uint8 activations; calibrated on random inputs, which is fine for
speed), then these run alternately, run by run, so machine noise hits all alike:

  kiln fp32        the fp32 model built into a plan
  kiln bf16/fp16   (with --half) the bf16/fp16 builds
  kiln int8 (qdq)  the Q/DQ model built into a plan (lowered to kiln.QConv/QGemm)
  ort fp32 / ort int8 (qdq)   onnxruntime on the same two models

and the report gives each median in ms, samples/s and the ratios the issue asks
for (int8 vs Kiln fp32, Kiln int8 vs onnxruntime int8).

    python bench/precision_bench.py --models resnet50 --batch 16 --repeat 10 --threads 2
Figures count only from a quiet machine (nothing else building).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort

import kiln

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import feeds_for, model_path  # noqa: E402


def qdq_model(path: str, feeds: dict, out: str) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter([feeds])

        def get_next(self):
            return next(self.it, None)

    quantize_static(path, out, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="resnet50")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--half", action="store_true", help="also time the bf16 and fp16 builds")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    for name in args.models.split(","):
        path = model_path(name)
        ref = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        feeds = feeds_for(ref, args.batch, args.seq, rng)
        shapes = {k: v.shape for k, v in feeds.items()}
        with tempfile.TemporaryDirectory() as d:
            qdq = os.path.join(d, "model.qdq.onnx")
            qdq_model(path, feeds, qdq)
            runners = {}
            for label, src, precision in [("kiln fp32", path, "fp32"), ("kiln int8 (qdq)", qdq, "fp32")] + (
                    [("kiln bf16", path, "bf16"), ("kiln fp16", path, "fp16")] if args.half else []):
                plan = os.path.join(d, label.replace(" ", "_").replace("(", "").replace(")", "") + ".plan")
                kiln.build(src, plan, precision=precision, shapes=shapes, threads=args.threads)
                sess = kiln.InferenceSession(plan, threads=args.threads)
                runners[label] = lambda s=sess: s.run(None, feeds)
            for label, src in [("ort fp32", path), ("ort int8 (qdq)", qdq)]:
                s = ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
                runners[label] = lambda s=s: s.run(None, feeds)
            for run in runners.values():
                run()  # warm-up
            times = {k: [] for k in runners}
            for _ in range(args.repeat):
                for label, run in runners.items():
                    t0 = time.perf_counter()
                    run()
                    times[label].append((time.perf_counter() - t0) * 1e3)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"{name} batch {args.batch}, {args.threads} threads, {args.repeat} runs each")
        for label, ms in med.items():
            print(f"  {label:18s} {ms:9.2f} ms  {args.batch * 1e3 / ms:9.1f} samples/s")
        print(f"  int8 vs kiln fp32:            {med['kiln fp32'] / med['kiln int8 (qdq)']:.2f}x")
        print(f"  kiln int8 vs ort int8 (qdq):  {med['ort int8 (qdq)'] / med['kiln int8 (qdq)']:.2f}x")
        if args.half:
            print(f"  bf16 vs kiln fp32:            {med['kiln fp32'] / med['kiln bf16']:.2f}x")


if __name__ == "__main__":
    main()
