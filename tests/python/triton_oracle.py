"""The real Triton server as a test oracle: the `tritonserver` binary and Python backend of
PyPI's nvidia-pytriton wheel, installed into .triton/ by scripts/setup.sh. TritonServer starts
it on free ports against a model repository, like server_util.KilnServer starts `kiln serve`;
Differences and the decoders below compare the two servers' answers."""
from __future__ import annotations

import http.client
import json
import os
import signal
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from server_util import REPO_ROOT, ServerPorts, wait_http_ok

TRITON_DIR = Path(os.environ.get("KILN_TRITON_DIR", REPO_ROOT / ".triton"))


def oracle() -> dict | None:
    """The paths setup.sh wrote (tritonserver, backends, path, ld_library_path), or None."""
    f = TRITON_DIR / "oracle.json"
    if not f.is_file():
        return None
    paths = json.loads(f.read_text())
    return paths if Path(paths["tritonserver"]).is_file() else None


def skip_reason() -> str | None:
    """Why the oracle cannot run here (for pytest.skip), or None when it can."""
    if oracle() is not None:
        return None
    why = TRITON_DIR / "SKIP"
    if why.is_file():
        return f"no Triton oracle: {why.read_text().strip()}"
    return f"no Triton oracle in {TRITON_DIR} (run scripts/setup.sh)"


class TritonServer(ServerPorts):
    """A `tritonserver` child process serving `repo` on free ports; stop() sends SIGTERM and
    returns the exit code. It logs CUDA/NVML/DCGM errors on machines without a GPU; they are
    harmless."""

    def __init__(self, repo: Path, *args: str, timeout: float = 60.0):
        paths = oracle()
        if paths is None:
            raise RuntimeError(skip_reason())
        super().__init__()
        self.cmd = [paths["tritonserver"], "--model-repository", str(repo), "--backend-directory",
                    paths["backends"], "--http-port", str(self.http_port), "--grpc-port", str(self.grpc_port),
                    "--metrics-port", str(self.metrics_port), *args]
        env = dict(os.environ)
        # The Python backend's stub embeds the base interpreter (its libpython in
        # ld_library_path) and imports numpy < 2 from the python first on PATH.
        env["PATH"] = paths["path"] + os.pathsep + env.get("PATH", "")
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (paths["ld_library_path"], env.get("LD_LIBRARY_PATH")) if p)
        for var in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
            env.pop(var, None)
        self.log = open(repo.parent / f"triton_{self.http_port}.log", "w+")
        self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float):
        if wait_http_ok(f"http://{self.http_url}/v2/health/ready", self.proc, "tritonserver", self.output, timeout):
            return
        self.stop()
        raise RuntimeError(f"tritonserver did not become ready:\n{self.output()}")

    def output(self) -> str:
        if self.log.closed:
            return Path(self.log.name).read_text()
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM to its process group (the server and its Python backend stubs)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if not self.log.closed:
            self.log.close()
        return self.proc.returncode


# ----------------------------------------------------------------------------- comparing answers


@dataclass(frozen=True)
class Diff:
    """A listed difference: what Kiln answers, what Triton answers, and why."""
    kiln: object
    triton: object
    reason: str


class Differences:
    """Compares Kiln's answers with Triton's: equal, or exactly the difference listed under the
    request's (or field's) id. `ignored` fields are not compared (they differ with the model pair)."""

    def __init__(self, known: dict[str, Diff], ignored=()):
        self.known, self.ignored, self.seen = known, set(ignored), set()

    def expect(self, case: str, kiln, triton, text: str = ""):
        text = f"{case}: kiln {kiln!r} | triton {triton!r} {text}"
        known = self.known.get(case)
        if known is None:
            assert kiln == triton, "differs from Triton: " + text
        else:
            self.seen.add(case)
            assert (kiln, triton) == (known.kiln, known.triton), \
                f"listed as ({known.kiln!r}, {known.triton!r}): " + text

    def status(self, case: str, kiln: Reply, triton: Reply):
        """Equal HTTP status codes (or the listed difference); error bodies of both are {"error": "..."}."""
        self.expect(case, kiln.status, triton.status, f"\n  kiln:   {kiln.show()}\n  triton: {triton.show()}")
        for r in (kiln, triton):
            if r.status >= 400:
                error_message(r)

    def common_fields(self, case: str, kiln, triton, path: str = ""):
        """JSON values field by field; a field only one side has compares as 'present' / 'absent'.
        Named list elements (inputs, groups) share one id: `<case>.input[].dims`."""
        if isinstance(kiln, dict) and isinstance(triton, dict):
            for key in sorted(kiln.keys() | triton.keys()):
                if key in self.ignored:
                    continue
                if key in kiln and key in triton:
                    self.common_fields(case, kiln[key], triton[key], f"{path}.{key}")
                else:
                    self.expect(f"{case}{path}.{key}", "present" if key in kiln else "absent",
                                "present" if key in triton else "absent")
        elif isinstance(kiln, list) and isinstance(triton, list) and len(kiln) == len(triton):
            for i, (k, t) in enumerate(zip(kiln, triton)):
                named = isinstance(k, dict) and "name" in k
                self.common_fields(case, k, t, f"{path}[]" if named else f"{path}[{i}]")
        else:
            self.expect(f"{case}{path}", kiln, triton)

    def same_skeleton(self, case: str, kiln, triton):
        """The same keys and value types (values may differ: statistics)."""
        def walk(k, t, path):
            if isinstance(k, dict) and isinstance(t, dict):
                for key in sorted(k.keys() | t.keys()):
                    if key in k and key in t:
                        walk(k[key], t[key], f"{path}.{key}")
                    else:
                        self.expect(f"{case}{path}.{key}", "present" if key in k else "absent",
                                    "present" if key in t else "absent")
            elif isinstance(k, list) and isinstance(t, list):
                if k and t:  # an empty list fits any element shape
                    walk(k[0], t[0], path + "[]")
            else:
                self.expect(f"{case}{path}", k, t)

        walk(skeleton(kiln), skeleton(triton), "")

    def same_outputs(self, case: str, kiln: dict, triton: dict):
        """Equal infer responses without tensor data; the order of the outputs compares on its own."""
        self.expect(case + ":output_order", [o["name"] for o in kiln.get("outputs", [])],
                    [o["name"] for o in triton.get("outputs", [])])
        k, t = dict(kiln), dict(triton)
        for r in (k, t):
            r["outputs"] = sorted(r.get("outputs", []), key=lambda o: o["name"])
        self.expect(case + ":response", k, t)


def skeleton(x):
    """The shape of a JSON value: keys and value types, lists merged over their elements."""
    if isinstance(x, dict):
        return {k: skeleton(v) for k, v in x.items()}
    if isinstance(x, list):
        merged = {}
        for item in x:
            s = skeleton(item)
            merged = {**merged, **s} if isinstance(s, dict) else s
        return [merged] if x else []
    return type(x).__name__


@dataclass
class Reply:
    """An HTTP answer; header names lower-case."""
    status: int
    body: bytes
    headers: dict

    def json(self):
        return json.loads(self.body)

    def show(self):
        return f"{self.status} {self.body[:300]!r}"


def send(server, method, path, body=b"", headers=None) -> Reply:
    """One raw HTTP request to `server` (a TritonServer or KilnServer)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=60)
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return Reply(r.status, data, {k.lower(): v for k, v in r.getheaders()})


def error_message(r: Reply) -> str:
    """The message of a {"error": "..."} body; fails on any other body."""
    try:
        body = r.json()
    except ValueError:
        body = None
    assert isinstance(body, dict) and list(body) == ["error"] and isinstance(body["error"], str), \
        f"not an {{\"error\": ...}} body: {r.show()}"
    return body["error"]


NUMPY_TYPES = {"BOOL": np.bool_, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64}


def decode_tensor(datatype: str, shape, raw: bytes) -> np.ndarray:
    """A tensor in the wire layout (BYTES: 4-byte little-endian length prefixes)."""
    if datatype == "BYTES":
        items, pos = [], 0
        while pos < len(raw):
            (n,) = struct.unpack_from("<I", raw, pos)
            items.append(raw[pos + 4:pos + 4 + n])
            pos += 4 + n
        return np.array(items, dtype=object).reshape(shape)
    return np.frombuffer(raw, NUMPY_TYPES.get(datatype) or np.dtype(datatype.lower())).reshape(shape)


def decode_infer(r: Reply):
    """(the response JSON without tensor data, {output: ndarray}) of a 200 infer reply, JSON or binary."""
    header_len = int(r.headers.get("inference-header-content-length", len(r.body)))
    header = json.loads(r.body[:header_len])
    rest = r.body[header_len:]
    values = {}
    for out in header.get("outputs", []):
        if "data" in out:
            data = out.pop("data")
            if out["datatype"] == "BYTES":
                values[out["name"]] = np.array([d.encode() for d in data], dtype=object).reshape(out["shape"])
            else:
                values[out["name"]] = np.array(data).reshape(out["shape"])
        else:
            size = out["parameters"]["binary_data_size"]
            values[out["name"]] = decode_tensor(out["datatype"], out["shape"], rest[:size])
            rest = rest[size:]
    assert rest == b"", f"{len(rest)} bytes after the outputs"
    return header, values


def same_values(case: str, kiln: dict, triton: dict):
    """Equal output tensors: floats to 1e-6, everything else exactly."""
    assert sorted(kiln) == sorted(triton), f"{case}: outputs {sorted(kiln)} vs {sorted(triton)}"
    for name, k in kiln.items():
        t = triton[name]
        assert k.shape == t.shape, f"{case} {name}: shape {k.shape} vs {t.shape}"
        if k.dtype.kind == "f":
            np.testing.assert_allclose(k, t, rtol=1e-6, err_msg=f"{case} {name}")
        else:
            assert k.tolist() == t.tolist(), f"{case} {name}: {k.tolist()} vs {t.tolist()}"
