"""The `kiln perf` concurrency sweep driven by the stock tritonclient instead:
N threads, each with its own tritonclient.http (or .grpc) client, keep N
requests outstanding; per level a warm-up window, then --windows measured
windows merged. Writes the same CSV columns as `kiln perf -f` (and
perf_analyzer): client latency percentiles, throughput, and the server's
queue/compute split from the statistics endpoint. Client Send / Client Recv
are not measured here (0).

    python bench/tritonclient_perf.py -m simple -u localhost:8000 --concurrency-range 1:8 -f tc.csv
"""
from __future__ import annotations

import argparse
import csv
import sys
import threading
import time

import numpy as np

COLUMNS = ["Concurrency", "Inferences/Second", "Client Send", "Network+Server Send/Recv", "Server Queue",
           "Server Compute Input", "Server Compute Infer", "Server Compute Output", "Client Recv",
           "p50 latency", "p90 latency", "p95 latency", "p99 latency"]

NP_TYPES = {"FP32": np.float32, "FP64": np.float64, "FP16": np.float16, "INT8": np.int8, "INT16": np.int16,
            "INT32": np.int32, "INT64": np.int64, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
            "UINT64": np.uint64, "BOOL": np.bool_}


def parse_range(text: str) -> list[int]:
    try:
        parts = [int(p) for p in text.split(":")]
    except ValueError:
        raise SystemExit(f"--concurrency-range {text}: expected integers start[:end[:step]]")
    start = parts[0]
    end = parts[1] if len(parts) > 1 else start
    step = parts[2] if len(parts) > 2 else 1
    if start < 1 or end < start or step < 1:
        raise SystemExit(f"--concurrency-range {text}: expected start[:end[:step]] with 1 <= start <= end")
    return list(range(start, end + 1, step))


def client_module(protocol: str):
    if protocol == "grpc":
        import tritonclient.grpc as mod
    else:
        import tritonclient.http as mod
    return mod


def make_inputs(mod, metadata, config, batch: int):
    """Random inputs for every model input (dims without the batch dim from the metadata)."""
    grpc = not isinstance(metadata, dict)
    inputs = metadata.inputs if grpc else metadata["inputs"]
    max_batch = config.config.max_batch_size if grpc else config.get("max_batch_size", 0)
    rng = np.random.default_rng(0)
    out = []
    for t in inputs:
        name, dtype = (t.name, t.datatype) if grpc else (t["name"], t["datatype"])
        shape = list(t.shape if grpc else t["shape"])
        if max_batch > 0:
            shape = [batch] + shape[1:]
        if any(d < 0 for d in shape):
            raise SystemExit(f"input {name} has a variable dim {shape}; this driver needs fixed dims")
        if dtype not in NP_TYPES:
            raise SystemExit(f"input {name}: datatype {dtype} is not supported by this driver")
        data = rng.random(shape).astype(NP_TYPES[dtype]) if dtype.startswith("FP") else \
            rng.integers(0, 100, shape).astype(NP_TYPES[dtype])
        i = mod.InferInput(name, shape, dtype)
        i.set_data_from_numpy(data)
        out.append(i)
    return out


def server_totals(client, model: str, grpc: bool) -> dict:
    stats = client.get_inference_statistics(model_name=model, as_json=True) if grpc else \
        client.get_inference_statistics(model_name=model)
    total = {k: [0, 0] for k in ("success", "queue", "compute_input", "compute_infer", "compute_output")}
    for s in stats.get("model_stats", []):
        for k in total:
            d = s.get("inference_stats", {}).get(k, {})
            total[k][0] += int(d.get("count", 0))
            total[k][1] += int(d.get("ns", 0))
    return total


def run_level(args, mod, concurrency: int, inputs) -> dict:
    stop = threading.Event()
    lock = threading.Lock()
    latencies: list[int] = []
    errors: list[str] = []

    def worker():
        client = mod.InferenceServerClient(args.url)
        while not stop.is_set():
            t0 = time.perf_counter_ns()
            try:
                client.infer(args.model, inputs, model_version=args.model_version)
            except Exception as e:  # noqa: BLE001 - reported below
                with lock:
                    errors.append(str(e))
                return
            with lock:
                latencies.append(time.perf_counter_ns() - t0)

    stats_client = mod.InferenceServerClient(args.url)
    grpc = args.protocol == "grpc"
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    time.sleep(args.measurement_interval / 1000)  # warm-up window
    with lock:
        latencies.clear()
    begin = server_totals(stats_client, args.model, grpc)
    t_begin = time.perf_counter()
    time.sleep(args.windows * args.measurement_interval / 1000)
    with lock:
        window = sorted(latencies)
    seconds = time.perf_counter() - t_begin
    end = server_totals(stats_client, args.model, grpc)
    stop.set()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"request failed: {errors[0]}")
    if not window:
        raise SystemExit(f"no request completed at concurrency {concurrency}")

    def pct(p):
        return window[min(len(window), max(1, int(np.ceil(p / 100 * len(window))))) - 1] / 1000

    def server_us(k):
        n = end[k][0] - begin[k][0]
        return (end[k][1] - begin[k][1]) / n / 1000 if n else 0.0

    avg_us = sum(window) / len(window) / 1000
    server = sum(server_us(k) for k in ("queue", "compute_input", "compute_infer", "compute_output"))
    return {"Concurrency": concurrency, "Inferences/Second": f"{len(window) * args.batch_size / seconds:.2f}",
            "Client Send": 0, "Network+Server Send/Recv": round(max(0.0, avg_us - server)),
            "Server Queue": round(server_us("queue")), "Server Compute Input": round(server_us("compute_input")),
            "Server Compute Infer": round(server_us("compute_infer")),
            "Server Compute Output": round(server_us("compute_output")), "Client Recv": 0,
            "p50 latency": round(pct(50)), "p90 latency": round(pct(90)), "p95 latency": round(pct(95)),
            "p99 latency": round(pct(99))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("-x", "--model-version", default="")
    ap.add_argument("-u", "--url", default="localhost:8000")
    ap.add_argument("-i", "--protocol", choices=["http", "grpc"], default="http")
    ap.add_argument("-b", "--batch-size", type=int, default=1)
    ap.add_argument("--concurrency-range", default="1")
    ap.add_argument("-p", "--measurement-interval", type=int, default=2000, help="window in ms")
    ap.add_argument("--windows", type=int, default=3, help="measured windows per level (after one warm-up)")
    ap.add_argument("-f", "--csv", required=True)
    args = ap.parse_args()
    mod = client_module(args.protocol)
    client = mod.InferenceServerClient(args.url)
    metadata = client.get_model_metadata(args.model, args.model_version)
    config = client.get_model_config(args.model, args.model_version)
    inputs = make_inputs(mod, metadata, config, args.batch_size)
    rows = []
    for c in parse_range(args.concurrency_range):
        row = run_level(args, mod, c, inputs)
        print(f"Concurrency: {c}, throughput: {row['Inferences/Second']} infer/sec, "
              f"p50 {row['p50 latency']} usec, p99 {row['p99 latency']} usec", flush=True)
        rows.append(row)
    with open(args.csv, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
