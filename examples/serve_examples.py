#!/usr/bin/env python3
"""Serves examples/model_repository with `kiln serve`, runs a tritonclient
request over HTTP and gRPC against each model, and prints curl commands to try.

    python examples/serve_examples.py                 # demo on free ports, then stop
    python examples/serve_examples.py --keep-serving  # stay up on 8000/8001/8002 until Ctrl-C
"""
from __future__ import annotations

import argparse
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPOSITORY = HERE / "model_repository"


def kiln_cli() -> str | None:
    exe = HERE.parent / "build" / "tools" / "kiln" / "kiln"
    return str(exe) if exe.is_file() else shutil.which("kiln")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port: int, proc: subprocess.Popen) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            sys.exit(f"kiln serve exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit("kiln serve did not become ready")


def demo(http_port: int, grpc_port: int) -> None:
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    http = httpclient.InferenceServerClient(f"127.0.0.1:{http_port}")
    grpc = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
    a = np.arange(16, dtype=np.float32).reshape(1, 16)
    b = np.ones((1, 16), np.float32)
    ins = [httpclient.InferInput("INPUT0", [1, 16], "FP32"), httpclient.InferInput("INPUT1", [1, 16], "FP32")]
    ins[0].set_data_from_numpy(a)
    ins[1].set_data_from_numpy(b)
    r = http.infer("simple", ins)
    print("simple (HTTP):   OUTPUT0 =", r.as_numpy("OUTPUT0")[0, :6], "...")
    gins = [grpcclient.InferInput("INPUT0", [1, 16], "FP32"), grpcclient.InferInput("INPUT1", [1, 16], "FP32")]
    gins[0].set_data_from_numpy(a)
    gins[1].set_data_from_numpy(b)
    print("simple (gRPC):   OUTPUT1 =", grpc.infer("simple", gins).as_numpy("OUTPUT1")[0, :6], "...")
    x = np.random.default_rng(0).standard_normal((2, 64)).astype(np.float32)
    i = httpclient.InferInput("input", [2, 64], "FP32")
    i.set_data_from_numpy(x)
    logits = http.infer("tiny_mlp", [i]).as_numpy("logits")
    print("tiny_mlp (HTTP): argmax =", logits.argmax(axis=1), "(config auto-completed:",
          f"max_batch_size {http.get_model_config('tiny_mlp')['max_batch_size']})")
    s = grpcclient.InferInput("INPUT", [1, 2], "BYTES")
    s.set_data_from_numpy(np.array([[b"hello", b"kiln"]], dtype=object))
    print("strings (gRPC):  OUTPUT =", grpc.infer("strings", [s]).as_numpy("OUTPUT").tolist())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep-serving", action="store_true")
    args = ap.parse_args()
    exe = kiln_cli()
    if exe is None:
        sys.exit("the kiln tool is not built (make build)")
    ports = (8000, 8001, 8002) if args.keep_serving else (free_port(), free_port(), free_port())
    cmd = [exe, "serve", "--model-repository", str(REPOSITORY), "--http-port", str(ports[0]),
           "--grpc-port", str(ports[1]), "--metrics-port", str(ports[2])]
    print("$", " ".join(cmd))
    proc = subprocess.Popen(cmd)
    try:
        wait_ready(ports[0], proc)
        demo(ports[0], ports[1])
        print("\nTry it with curl:")
        print(f"  curl localhost:{ports[0]}/v2/models/simple")
        print(f"  curl -X POST localhost:{ports[0]}/v2/models/simple/infer -d "
              "'{\"inputs\":[{\"name\":\"INPUT0\",\"shape\":[1,16],\"datatype\":\"FP32\",\"data\":[" +
              ",".join(["1"] * 16) + "]},{\"name\":\"INPUT1\",\"shape\":[1,16],\"datatype\":\"FP32\",\"data\":[" +
              ",".join(["2"] * 16) + "]}]}'")
        print(f"  curl localhost:{ports[2]}/metrics | grep nv_inference_count")
        if args.keep_serving:
            print("\nServing until Ctrl-C.")
            proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
