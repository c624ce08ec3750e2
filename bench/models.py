#!/usr/bin/env python3
"""Kiln vs onnxruntime vs OpenVINO on the same models and inputs, in one run.

Every engine runs on the same threads (default 2), one engine after the
other on each repetition so that machine noise hits all alike. Batch 1
reports latency (median ms), batch N throughput (items/s from the median).
Ratios are peer_ms / kiln_ms: above 1 means Kiln is faster.

    python bench/models.py                         # resnet50, mobilenetv2, bert_base, resnet18 at batch 1 and 16
    python bench/models.py --models resnet18 --batches 1 --repeat 5

onnxruntime: CPUExecutionProvider, all graph optimizations, intra-op threads.
OpenVINO: CPU plugin, static shapes (reshaped to the batch), f32 inference
precision, INFERENCE_NUM_THREADS, one stream, synchronous requests
(--ov-hint THROUGHPUT lets it pick streams for batch N, as BASELINE.md's
throughput figures did). Models come from ../shared/models/make_models.py,
cached under build/.cache/zoo_models (or $KILN_ZOO_CACHE).

Engines take turns on each repetition; each one runs --settle untimed times
before its timed run, so that the spinning idle threads of the engine before
it (onnxruntime's and OpenVINO's pools spin after a run) do not count
against it. One such run was too few for a short model: mobilenetv2 at
batch 1 measured 13.6 ms for Kiln and 21.0 ms for OpenVINO with --settle 1,
12.0 and 11.5 ms with 3 (onnxruntime 10.9 and 10.8), so 3 is the default.
Runs are not enough after onnxruntime, whose workers kept spinning through
them: mobilenetv2 at batch 1 timed right after it ran 8.4 ms in Kiln (4.1
alone) and 7.3 ms in OpenVINO (4.1 after Kiln), 4.2 and 4.6 ms with a 50 ms
pause first (2026-11-27). So each engine's turn starts with --pause-ms idle
(the spinning threads give up and sleep), then its settle runs.

Only record results when the machine is quiet: the script prints the load
average before and after.
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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("KILN_ZOO_CACHE", os.path.join(ROOT, "build", ".cache", "zoo_models"))
MAKE_MODELS = os.environ.get("KILN_MAKE_MODELS", os.path.join(ROOT, "..", "shared", "models", "make_models.py"))
DEFAULT_MODELS = "resnet50,mobilenetv2,bert_base,resnet18"


def model_path(name: str) -> str:
    path = os.path.join(CACHE, f"{name}.onnx")
    if not os.path.exists(path):
        os.makedirs(CACHE, exist_ok=True)
        subprocess.run([sys.executable, MAKE_MODELS, "--out", CACHE, "--only", name], check=True,
                       stdout=subprocess.DEVNULL)
    return path


def make_feeds(model_file: str, batch: int, seq: int, rng) -> dict:
    """Random inputs for every graph input; symbolic dims: batch first, then seq."""
    import onnx

    model = onnx.load(model_file, load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    feeds = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        shape = []
        for k, d in enumerate(tt.shape.dim):
            shape.append(d.dim_value if d.HasField("dim_value") else (batch if k == 0 else seq))
        if tt.elem_type == onnx.TensorProto.INT64:
            if "ids" in vi.name and "type" not in vi.name:
                feeds[vi.name] = rng.integers(0, 100, size=shape).astype(np.int64)
            elif "type" in vi.name:
                feeds[vi.name] = np.zeros(shape, dtype=np.int64)
            else:
                feeds[vi.name] = np.ones(shape, dtype=np.int64)
        else:
            feeds[vi.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


class Kiln:
    name = "kiln"

    def __init__(self, path, feeds, threads, hint):
        import kiln

        self.sess = kiln.InferenceSession(path, threads=threads)

    def run(self, feeds):
        return [np.asarray(o) for o in self.sess.run(None, feeds)]


class OnnxRuntime:
    name = "onnxruntime"

    def __init__(self, path, feeds, threads, hint):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])

    def run(self, feeds):
        return self.sess.run(None, feeds)


class OpenVino:
    name = "openvino"

    def __init__(self, path, feeds, threads, hint):
        import openvino as ov

        core = ov.Core()
        model = core.read_model(path)
        model.reshape({name: ov.PartialShape(list(value.shape)) for name, value in feeds.items()})
        config = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": hint}
        if hint == "LATENCY":
            config["NUM_STREAMS"] = 1
        self.compiled = core.compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.outputs = list(self.compiled.outputs)

    def run(self, feeds):
        result = self.request.infer(feeds)
        return [np.asarray(result[o]) for o in self.outputs]


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def bench_one(name, batch, args, rng):
    path = model_path(name)
    feeds = make_feeds(path, batch, args.seq, rng)
    hint = "LATENCY" if batch == 1 else args.ov_hint
    engines = []
    for cls in (Kiln, OnnxRuntime, OpenVino):
        if cls.name in args.skip:
            continue
        try:
            engines.append(cls(path, feeds, args.threads, hint))
        except Exception as e:  # a peer that cannot load the model is reported, not fatal
            print(f"# {name} b{batch}: {cls.name} failed to load: {e}", file=sys.stderr)
    outputs = {}
    for e in engines:
        for _ in range(args.warmup):
            outputs[e.name] = e.run(feeds)
    times = {e.name: [] for e in engines}
    for _ in range(args.repeat):
        for e in engines:
            # Untimed first: the previous engine's idle workers (onnxruntime's
            # and OpenVINO's spin after a run) must not eat into this one's time.
            time.sleep(args.pause_ms / 1e3)
            for _ in range(args.settle):
                e.run(feeds)
            t = time.perf_counter()
            e.run(feeds)
            times[e.name].append((time.perf_counter() - t) * 1e3)
    med = {k: statistics.median(v) for k, v in times.items() if v}
    ref = outputs.get("onnxruntime")
    diffs = {}
    for k, outs in outputs.items():
        if ref is not None and k != "onnxruntime":
            diffs[k] = max(float(np.max(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32))))
                           for a, b in zip(outs, ref))
    return med, times, diffs


def fmt_cell(ms, batch):
    if ms is None:
        return "-"
    return f"{ms:.1f} ms" if batch == 1 else f"{batch * 1e3 / ms:.1f}/s ({ms:.0f} ms)"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=DEFAULT_MODELS)
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--seq", type=int, default=128, help="sequence length of transformer inputs")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--settle", type=int, default=3,
                    help="untimed runs of an engine right before each timed one (absorbs the previous engine's "
                         "spinning threads)")
    ap.add_argument("--pause-ms", type=float, default=50.0,
                    help="idle time before each engine's turn (the previous engine's spinning threads go to sleep)")
    ap.add_argument("--ov-hint", default="LATENCY", choices=["LATENCY", "THROUGHPUT"],
                    help="OpenVINO performance hint for batch > 1")
    ap.add_argument("--skip", default="", help="comma-separated engines to leave out (kiln,onnxruntime,openvino)")
    args = ap.parse_args(argv)
    args.skip = set(s for s in args.skip.split(",") if s)

    rng = np.random.default_rng(0)
    print(f"# {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
          f"{os.cpu_count()} cpus, threads={args.threads}, repeat={args.repeat}, load average {load_average()}")
    print(f"# command: python bench/models.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    print("| model | batch | kiln | onnxruntime | openvino | ort/kiln | ov/kiln | max abs diff vs ort (kiln, ov) |")
    print("|---|---|---|---|---|---|---|---|")
    for name in [m for m in args.models.split(",") if m]:
        for batch in [int(b) for b in args.batches.split(",") if b]:
            med, _, diffs = bench_one(name, batch, args, rng)
            k, o, v = med.get("kiln"), med.get("onnxruntime"), med.get("openvino")
            r_o = f"{o / k:.2f}" if k and o else "-"
            r_v = f"{v / k:.2f}" if k and v else "-"
            d = ", ".join(f"{diffs[e]:.1e}" if e in diffs else "-" for e in ("kiln", "openvino"))
            print(f"| {name} | {batch} | {fmt_cell(k, batch)} | {fmt_cell(o, batch)} | {fmt_cell(v, batch)} "
                  f"| {r_o} | {r_v} | {d} |", flush=True)
    print(f"# load average after: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
