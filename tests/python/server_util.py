"""Helpers of the server tests: tiny ONNX models made with onnx.helper, a
temporary model repository, and a `kiln serve` process on free ports."""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPO_ROOT = Path(__file__).resolve().parents[2]

# Protocol datatype -> (ONNX element type, numpy dtype or None for BYTES/BF16 handled by callers)
DATATYPES = {
    "BOOL": TensorProto.BOOL,
    "UINT8": TensorProto.UINT8,
    "UINT16": TensorProto.UINT16,
    "UINT32": TensorProto.UINT32,
    "UINT64": TensorProto.UINT64,
    "INT8": TensorProto.INT8,
    "INT16": TensorProto.INT16,
    "INT32": TensorProto.INT32,
    "INT64": TensorProto.INT64,
    "FP16": TensorProto.FLOAT16,
    "FP32": TensorProto.FLOAT,
    "FP64": TensorProto.DOUBLE,
    "BYTES": TensorProto.STRING,
    "BF16": TensorProto.BFLOAT16,
}


def kiln_exe() -> str | None:
    """The kiln binary: $KILN_EXE, else tools/kiln/kiln of this checkout's build/, else of the
    build folder of the imported kiln package, else PATH."""
    env = os.environ.get("KILN_EXE")
    if env:
        return env
    builds = [REPO_ROOT / "build"]
    try:
        import kiln

        builds.append(Path(kiln.__file__).resolve().parents[2])
    except ImportError:
        pass
    for build in builds:
        exe = build / "tools" / "kiln" / "kiln"
        if exe.is_file():
            return str(exe)
    return shutil.which("kiln")


def _model(nodes, inputs, outputs, inits=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def add_sub_model(batch: bool = True) -> onnx.ModelProto:
    """OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1 on FP32 [batch, 16] (Triton's `simple`)."""
    dims = ["batch", 16] if batch else [16]
    vi = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, dims)  # noqa: E731
    return _model(
        [helper.make_node("Add", ["INPUT0", "INPUT1"], ["OUTPUT0"]), helper.make_node("Sub", ["INPUT0", "INPUT1"], ["OUTPUT1"])],
        [vi("INPUT0"), vi("INPUT1")],
        [vi("OUTPUT0"), vi("OUTPUT1")],
    )


def identity_model(datatypes) -> onnx.ModelProto:
    """IN_<T> -> OUT_<T> (Identity) for every datatype T, shape [batch, n]."""
    nodes, ins, outs = [], [], []
    for dt in datatypes:
        t = DATATYPES[dt]
        nodes.append(helper.make_node("Identity", [f"IN_{dt}"], [f"OUT_{dt}"]))
        ins.append(helper.make_tensor_value_info(f"IN_{dt}", t, ["batch", "n"]))
        outs.append(helper.make_tensor_value_info(f"OUT_{dt}", t, ["batch", "n"]))
    return _model(nodes, ins, outs)


def slow_model(n: int) -> onnx.ModelProto:
    """y = x on FP32 [batch, 1], after an n x n x n MatMul whose result is multiplied by 0."""
    shape = numpy_helper.from_array(np.array([n, n], np.int64), "shape")
    axes = numpy_helper.from_array(np.array([0, 1], np.int64), "axes")
    zero = numpy_helper.from_array(np.array(0.0, np.float32), "zero")
    nodes = [
        helper.make_node("ReduceSum", ["x", "axes"], ["s"], keepdims=0),
        helper.make_node("Expand", ["s", "shape"], ["e"]),
        helper.make_node("MatMul", ["e", "e"], ["m"]),
        helper.make_node("ReduceSum", ["m", "axes"], ["r"], keepdims=0),
        helper.make_node("Mul", ["r", "zero"], ["z"]),
        helper.make_node("Add", ["x", "z"], ["y"]),
    ]
    vi = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", 1])  # noqa: E731
    return _model(nodes, [vi("x")], [vi("y")], [shape, axes, zero])


def write_model(repo: Path, name: str, model: onnx.ModelProto, config: str | None = None, versions=(1,)) -> Path:
    d = repo / name
    for v in versions:
        (d / str(v)).mkdir(parents=True, exist_ok=True)
        onnx.save(model, str(d / str(v) / "model.onnx"))
    if config is not None:
        (d / "config.pbtxt").write_text(config)
    return d


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http_ok(url: str, proc: subprocess.Popen, what: str, output, timeout: float) -> bool:
    """Polls `url` until it answers 200 (True) or `timeout` seconds pass (False); raises
    RuntimeError with `output()` if the server process `proc` exits first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{output()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return True
        except Exception:
            pass
        time.sleep(0.1)
    return False


class ServerPorts:
    """Free HTTP, gRPC and metrics ports on 127.0.0.1, and the URLs clients use."""

    def __init__(self):
        self.http_port, self.grpc_port, self.metrics_port = free_port(), free_port(), free_port()

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"


class KilnServer(ServerPorts):
    """A `kiln serve` child process on free ports; stop() sends SIGTERM and returns the exit code.
    `env`: the child's whole environment (default: this process's)."""

    def __init__(self, repo: Path, *args: str, exe: str | None = None, wait_ready: bool = True,
                 env: dict[str, str] | None = None):
        super().__init__()
        exe = exe or kiln_exe()
        self.cmd = [exe, "serve", "--model-repository", str(repo), "--http-address", "127.0.0.1",
                    "--http-port", str(self.http_port), "--grpc-port", str(self.grpc_port),
                    "--metrics-port", str(self.metrics_port), *args]
        self.log = open(repo.parent / f"server_{self.http_port}.log", "w+")
        self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self._wait_live(ready=wait_ready)

    def _wait_live(self, ready: bool, timeout: float = 60.0):
        path = "/v2/health/ready" if ready else "/v2/health/live"
        if not wait_http_ok(f"http://{self.http_url}{path}", self.proc, "kiln serve", self.output, timeout):
            raise RuntimeError(f"kiln serve did not become {'ready' if ready else 'live'}:\n{self.output()}")

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as r:
            return r.read().decode()

    def metric(self, name: str, **labels) -> float:
        """The value of one sample, e.g. metric("nv_inference_count", model="m", version="1")."""
        want = ",".join(f'{k}="{v}"' for k, v in labels.items())
        for line in self.metrics().splitlines():
            if line.startswith(name + "{") and want in line or line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
        raise KeyError(f"{name}{{{want}}} not in metrics")

    def rss_bytes(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def stop(self, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        out = self.output()
        self.log.close()
        # A sanitizer build (make test-tsan) reports and carries on; a report fails the test here.
        report = re.search(r"(WARNING|ERROR): (Thread|Address)Sanitizer|\.(cc|h):\d+:\d+: runtime error:", out)
        if report:
            raise AssertionError("kiln serve printed a sanitizer report:\n"
                                 + out[max(0, report.start() - 200):report.start() + 6000])
        return self.proc.returncode
