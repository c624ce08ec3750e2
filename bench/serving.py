"""Serving benchmarks of `kiln serve` (issue 8's acceptance), each printing a
Markdown table for bench/RESULTS.md:

  batching  dynamic batching on vs off under 64 concurrent requests (kiln perf,
            gRPC) on bert_tiny (seq 128) and resnet18 from the shared zoo, with
            the batch sizes the scheduler formed (its histogram metric);
  overhead  p50 latency of one request at a time over HTTP (binary tensors) and
            gRPC on a tiny FP32[1,16] model, minus the engine's own time for that
            model in-process (`kiln bench`, same threads);
  triton    requests/s and p50 of wrk posting the same v2 JSON body over 16
            connections to Triton (python backend add_one, from the nvidia-pytriton
            wheel that scripts/setup.sh puts in .triton/), to Kiln serving the same
            model as ONNX, and to Kiln's Python backend running the same model.py,
            in the same run.

    python bench/serving.py batching [--repeat 2] [--interval-ms 5000]
    python bench/serving.py overhead [--repeat 3]
    python bench/serving.py triton [--repeat 3] [--seconds 10]

Client and server share the machine's cores; run on a quiet machine.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "python"))
from server_util import KilnServer, kiln_exe  # noqa: E402

from models import model_path  # noqa: E402  (bench/models.py)

# name -> (inputs: (name, TYPE_*, dims without batch), outputs likewise)
ZOO_SIGNATURES = {
    "bert_tiny": ([("input_ids", "TYPE_INT64", [128]), ("attention_mask", "TYPE_INT64", [128])],
                  [("last_hidden_state", "TYPE_FP32", [128, 128]), ("pooler_output", "TYPE_FP32", [128])]),
    "resnet18": ([("input", "TYPE_FP32", [3, 224, 224])], [("logits", "TYPE_FP32", [1000])]),
}


def zoo_model(name: str) -> Path:
    return Path(model_path(name))  # bench/models.py writes it with the shared make_models.py


def tensors(items) -> str:
    return ", ".join(f'{{ name: "{n}" data_type: {t} dims: [ {", ".join(map(str, d))} ] }}' for n, t, d in items)


def write_repo(repo: Path, name: str, onnx_path: Path, config: str):
    (repo / name / "1").mkdir(parents=True, exist_ok=True)
    os.symlink(onnx_path.resolve(), repo / name / "1" / "model.onnx")
    (repo / name / "config.pbtxt").write_text(config)


def perf(model: str, protocol: str, url: str, concurrency: int, interval_ms: int, *extra: str) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".csv") as f:
        subprocess.run([kiln_exe(), "perf", "-m", model, "-i", protocol, "-u", url,
                        "--concurrency-range", str(concurrency), "-p", str(interval_ms), "-f", f.name, *extra],
                       check=True, stdout=subprocess.DEVNULL)
        rows = list(csv.DictReader(open(f.name)))
    row = rows[-1]
    return {k: float(v) for k, v in row.items()}


def exec_and_inference_counts(server: KilnServer, model: str) -> tuple[float, float]:
    """(executions, inferences) from Triton's counters."""
    return (server.metric("nv_inference_exec_count", model=model), server.metric("nv_inference_count", model=model))


def cmd_batching(args):
    rows = []
    for name in args.models.split(","):
        ins, outs = ZOO_SIGNATURES[name]
        onnx_path = zoo_model(name)
        for trial in range(args.repeat):
            for mode in ("off", "on"):
                with tempfile.TemporaryDirectory() as tmp:
                    repo = Path(tmp) / "repo"
                    db = f"dynamic_batching {{ max_queue_delay_microseconds: {args.delay_us} }}" if mode == "on" else ""
                    write_repo(repo, name, onnx_path,
                               f'name: "{name}"\nplatform: "onnxruntime_onnx"\nmax_batch_size: {args.max_batch}\n'
                               f"input [ {tensors(ins)} ]\noutput [ {tensors(outs)} ]\n"
                               f"instance_group [ {{ count: 1 kind: KIND_CPU }} ]\n{db}\n")
                    # As written: without the flag, auto-complete gives a batchable model
                    # dynamic_batching (as Triton's does), and "off" would batch too.
                    srv = KilnServer(repo, "--model-control-mode", "explicit", "--load-model", name,
                                     "--disable-auto-complete-config")
                    try:
                        # Untimed: the first requests page in the plan and warm the caches.
                        perf(name, "grpc", srv.grpc_url, args.concurrency, 1000, "--input-data", "zero", "-r", "1")
                        e0, i0 = exec_and_inference_counts(srv, name)
                        r = perf(name, "grpc", srv.grpc_url, args.concurrency, args.interval_ms,
                                 "--input-data", "zero")
                        e1, i1 = exec_and_inference_counts(srv, name)
                    finally:
                        srv.stop()
                rows.append((name, trial, mode, r["Inferences/Second"], r["p50 latency"] / 1000,
                             (i1 - i0) / max(e1 - e0, 1)))
                print(f"{name} trial {trial} batching {mode}: {r['Inferences/Second']:.1f} infer/s, "
                      f"p50 {r['p50 latency'] / 1000:.1f} ms, {(i1 - i0) / max(e1 - e0, 1):.2f} inferences/execution",
                      file=sys.stderr)
    print(f"\n| model | trial | dynamic batching | infer/s | p50 ms | inferences per execution | on/off |")
    print("|---|---|---|---|---|---|---|")
    for name, trial, mode, ips, p50, per in rows:
        ratio = ""
        if mode == "on":
            off = next(r for r in rows if r[0] == name and r[1] == trial and r[2] == "off")
            ratio = f"{ips / off[3]:.2f}"
        print(f"| {name} | {trial + 1} | {mode} | {ips:.1f} | {p50:.1f} | {per:.2f} | {ratio} |")


def add_one_onnx() -> onnx.ModelProto:
    """FP32[1,16] -> +1: the model BASELINE.md measured Triton's python backend on."""
    one = numpy_helper.from_array(np.ones((1, 16), np.float32), "one")
    graph = helper.make_graph([helper.make_node("Add", ["INPUT0", "one"], ["OUTPUT0"])], "add_one",
                              [helper.make_tensor_value_info("INPUT0", TensorProto.FLOAT, [1, 16])],
                              [helper.make_tensor_value_info("OUTPUT0", TensorProto.FLOAT, [1, 16])], [one])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


ADD_ONE_CONFIG = ('name: "add_one"\n%smax_batch_size: 0\n'
                  'input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 1, 16 ] } ]\n'
                  'output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 1, 16 ] } ]\n'
                  'instance_group [ { count: 1 kind: KIND_CPU } ]\n')


def kiln_add_one_repo(root: Path) -> Path:
    repo = root / "kiln_repo"
    (repo / "add_one" / "1").mkdir(parents=True)
    onnx.save(add_one_onnx(), str(repo / "add_one" / "1" / "model.onnx"))
    (repo / "add_one" / "config.pbtxt").write_text(ADD_ONE_CONFIG % 'platform: "onnxruntime_onnx"\n')
    return repo


def engine_p50_us(model: Path, threads: int) -> float:
    out = subprocess.run([kiln_exe(), "bench", str(model), "--threads", str(threads), "--duration", "3"],
                         check=True, capture_output=True, text=True).stdout
    m = re.search(r"median = ([0-9.]+) ms", out)
    if not m:
        raise RuntimeError(f"no median in kiln bench output:\n{out}")
    return float(m.group(1)) * 1000


def cmd_overhead(args):
    with tempfile.TemporaryDirectory() as tmp:
        repo = kiln_add_one_repo(Path(tmp))
        rows = []
        for trial in range(args.repeat):
            engine = engine_p50_us(repo / "add_one" / "1" / "model.onnx", args.threads)
            srv = KilnServer(repo, "--model-control-mode", "explicit", "--load-model", "add_one")
            try:
                for protocol, url in (("http", srv.http_url), ("grpc", srv.grpc_url)):
                    perf("add_one", protocol, url, 1, 1000, "-r", "1")  # warm-up
                    r = perf("add_one", protocol, url, 1, args.interval_ms)
                    p50 = r["p50 latency"]
                    rows.append((trial, protocol, p50, engine, r["Server Compute Infer"]))
                    print(f"trial {trial} {protocol}: p50 {p50:.0f} us, engine {engine:.1f} us", file=sys.stderr)
            finally:
                srv.stop()
    print("\n| trial | protocol | p50 us (kiln perf, 1 outstanding) | engine p50 us (kiln bench) | "
          "server compute infer us | overhead us (p50 - engine) |")
    print("|---|---|---|---|---|---|")
    for trial, protocol, p50, engine, infer in rows:
        print(f"| {trial + 1} | {protocol} | {p50:.0f} | {engine:.1f} | {infer:.0f} | {p50 - engine:.0f} |")


WRK_SCRIPT = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '%s'
"""


def wrk(url: str, body: str, connections: int, seconds: int) -> tuple[float, float, int]:
    """(requests/s, p50 ms, non-2xx responses + socket errors) of wrk posting `body` to `url`."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_SCRIPT % body)
        script.flush()
        out = subprocess.run(["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--latency",
                              "-s", script.name, url], check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s*([0-9.]+)", out).group(1))
    m = re.search(r"50%\s+([0-9.]+)(us|ms|s)\b", out)
    p50 = float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
    bad = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    failures = (int(bad.group(1)) if bad else 0) + (sum(map(int, errors.groups())) if errors else 0)
    return rps, p50, failures


TRITON_ADD_ONE = """import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", x + np.float32(1))]))
        return responses
"""


def cmd_triton(args):
    from triton_oracle import TritonServer, skip_reason  # tests/python/triton_oracle.py

    if skip_reason():
        sys.exit(f"serving.py triton: {skip_reason()}")
    if shutil.which("wrk") is None:
        sys.exit("serving.py triton: wrk is not installed (scripts/setup.sh installs it)")
    body = json.dumps({"inputs": [{"name": "INPUT0", "shape": [1, 16], "datatype": "FP32",
                                   "data": [float(i) for i in range(16)]}]}, separators=(",", ":"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        kiln_repo = kiln_add_one_repo(Path(tmp))
        triton_repo = Path(tmp) / "triton_repo"
        (triton_repo / "add_one" / "1").mkdir(parents=True)
        (triton_repo / "add_one" / "1" / "model.py").write_text(TRITON_ADD_ONE)
        (triton_repo / "add_one" / "config.pbtxt").write_text(ADD_ONE_CONFIG % 'backend: "python"\n')
        for trial in range(args.repeat):
            for server in args.servers.split(","):
                if server == "triton":
                    srv = TritonServer(triton_repo)
                else:  # kiln: the ONNX model; kiln-python: Triton's own model.py on Kiln's Python backend
                    srv = KilnServer(kiln_repo if server == "kiln" else triton_repo,
                                     "--model-control-mode", "explicit", "--load-model", "add_one")
                try:
                    url = f"http://{srv.http_url}/v2/models/add_one/infer"
                    wrk(url, body, args.connections, 2)  # warm-up
                    rps, p50, failures = wrk(url, body, args.connections, args.seconds)
                finally:
                    srv.stop()
                rows.append((trial, server, rps, p50, failures))
                print(f"trial {trial} {server}: {rps:.0f} req/s, p50 {p50:.2f} ms, {failures} failures", file=sys.stderr)
    print(f"\n| trial | server | requests/s | p50 ms | failed | /triton req/s |")
    print("|---|---|---|---|---|---|")
    for trial, server, rps, p50, failures in rows:
        triton = next((r for r in rows if r[0] == trial and r[1] == "triton"), None)
        ratio = f"{rps / triton[2]:.2f}" if server != "triton" and triton else ""
        print(f"| {trial + 1} | {server} | {rps:.0f} | {p50:.2f} | {failures} | {ratio} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("batching")
    b.add_argument("--models", default="bert_tiny,resnet18")
    b.add_argument("--repeat", type=int, default=2)
    b.add_argument("--concurrency", type=int, default=64)
    b.add_argument("--max-batch", type=int, default=16)
    b.add_argument("--delay-us", type=int, default=2000)
    b.add_argument("--interval-ms", type=int, default=5000)
    o = sub.add_parser("overhead")
    o.add_argument("--repeat", type=int, default=3)
    o.add_argument("--threads", type=int, default=2)
    o.add_argument("--interval-ms", type=int, default=3000)
    t = sub.add_parser("triton")
    t.add_argument("--repeat", type=int, default=3)
    t.add_argument("--connections", type=int, default=16)
    t.add_argument("--seconds", type=int, default=10)
    t.add_argument("--servers", default="triton,kiln,kiln-python",
                   help="triton; kiln (the model as ONNX); kiln-python (the same model.py on Kiln's Python backend)")
    args = ap.parse_args()
    if kiln_exe() is None:
        sys.exit("serving.py: kiln is not built (make build)")
    {"batching": cmd_batching, "overhead": cmd_overhead, "triton": cmd_triton}[args.cmd](args)


if __name__ == "__main__":
    main()
