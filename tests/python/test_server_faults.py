"""Fault and load tests of kiln serve: models load, reload and unload (and
a broken one fails to load) while other models serve under load, with no
failed request to those; SIGTERM under load of ONNX, sequence and Python
models drains every request already sent and leaves no Python process
behind."""
from __future__ import annotations

import os
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from server_util import KilnServer, add_sub_model, kiln_exe, slow_model, write_model

httpclient = pytest.importorskip("tritonclient.http")
grpcclient = pytest.importorskip("tritonclient.grpc")
from tritonclient.utils import InferenceServerException  # noqa: E402

pytestmark = pytest.mark.skipif(kiln_exe() is None, reason="kiln is not built")

ECHO = '''
import time
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        time.sleep(0.05)
        return [pb_utils.InferenceResponse([pb_utils.Tensor("Y", pb_utils.get_input_tensor_by_name(r, "X").as_numpy())])
                for r in requests]
'''


def add_sub_inputs(module, value):
    ins = [module.InferInput("INPUT0", [1, 16], "FP32"), module.InferInput("INPUT1", [1, 16], "FP32")]
    ins[0].set_data_from_numpy(np.full((1, 16), value, np.float32))
    ins[1].set_data_from_numpy(np.ones((1, 16), np.float32))
    return ins


class Load:
    """Threads sending requests to `model` until stopped, counting successes and failures."""

    def __init__(self, server, model, threads=4):
        self.stop_flag = threading.Event()
        self.ok, self.errors = 0, []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(server, model, i)) for i in range(threads)]
        for t in self.threads:
            t.start()

    def run(self, server, model, i):
        grpc = i % 2 == 1
        module = grpcclient if grpc else httpclient
        client = module.InferenceServerClient(server.grpc_url if grpc else server.http_url)
        n = 0
        while not self.stop_flag.is_set():
            n += 1
            try:
                r = client.infer(model, add_sub_inputs(module, float(n)))
                good = np.array_equal(r.as_numpy("OUTPUT0"), np.full((1, 16), n + 1.0, np.float32))
                with self.lock:
                    if good:
                        self.ok += 1
                    else:
                        self.errors.append("wrong answer")
            except Exception as e:  # noqa: BLE001 - every failure is recorded
                with self.lock:
                    self.errors.append(repr(e))

    def finish(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(60)
        return self.ok, self.errors


def test_load_unload_while_others_serve(tmp_path):
    repo = tmp_path / "repo"
    write_model(repo, "steady", add_sub_model(), "max_batch_size: 8\ndynamic_batching { }\n")
    write_model(repo, "churn", slow_model(128), "max_batch_size: 4\n")
    write_model(repo, "broken", add_sub_model(), "max_batch_size: 8\ninput [ { name: \"NOPE\" data_type: TYPE_FP32 dims: [ 16 ] } ]\n")
    d = repo / "pyecho" / "1"
    d.mkdir(parents=True)
    (d / "model.py").write_text(textwrap.dedent(ECHO))
    (repo / "pyecho" / "config.pbtxt").write_text('backend: "python"\ninput [ { name: "X" data_type: TYPE_FP32 '
                                                  'dims: [ 1 ] } ]\noutput [ { name: "Y" data_type: TYPE_FP32 '
                                                  'dims: [ 1 ] } ]\n')
    srv = KilnServer(repo, "--model-control-mode", "explicit", "--load-model", "steady")
    try:
        load = Load(srv, "steady")
        client = httpclient.InferenceServerClient(srv.http_url)
        x = httpclient.InferInput("x", [1, 1], "FP32")
        x.set_data_from_numpy(np.array([[2.0]], np.float32))
        for i in range(3):
            client.load_model("churn")
            assert client.infer("churn", [x]).as_numpy("y")[0, 0] == 2.0
            client.load_model("pyecho")
            client.load_model("churn")  # reload while loaded
            with pytest.raises(InferenceServerException, match="NOPE"):
                client.load_model("broken")
            client.unload_model("churn")
            client.unload_model("pyecho")
        time.sleep(0.2)
        ok, errors = load.finish()
        assert errors == [], errors[:5]
        assert ok > 10, f"only {ok} requests completed under churn"
        assert client.is_model_ready("steady") and not client.is_model_ready("churn")
        index = {m["name"]: m for m in client.get_model_repository_index()}
        assert index["broken"]["state"] == "UNAVAILABLE" and "NOPE" in index["broken"]["reason"]
    finally:
        srv.stop()


def child_pids(pid):
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def test_sigterm_under_load_drains(tmp_path):
    repo = tmp_path / "repo"
    write_model(repo, "steady", add_sub_model(), "max_batch_size: 8\ndynamic_batching { max_queue_delay_microseconds: 2000 }\n")
    d = repo / "pyecho" / "1"
    d.mkdir(parents=True)
    (d / "model.py").write_text(textwrap.dedent(ECHO))
    (repo / "pyecho" / "config.pbtxt").write_text('backend: "python"\ninput [ { name: "X" data_type: TYPE_FP32 '
                                                  'dims: [ 1 ] } ]\noutput [ { name: "Y" data_type: TYPE_FP32 '
                                                  'dims: [ 1 ] } ]\ninstance_group [ { count: 2 } ]\n')
    srv = KilnServer(repo, "--shutdown-grace-secs", "1", "--exit-timeout-secs", "30")
    children = child_pids(srv.proc.pid)
    assert len(children) == 2, children  # one Python process per instance
    results, lock = [], threading.Lock()

    def send(i):
        try:
            if i % 2:
                c = httpclient.InferenceServerClient(srv.http_url)
                x = httpclient.InferInput("X", [1], "FP32")
                x.set_data_from_numpy(np.array([float(i)], np.float32))
                got = c.infer("pyecho", [x]).as_numpy("Y")[0] == float(i)
            else:
                c = grpcclient.InferenceServerClient(srv.grpc_url)
                got = np.array_equal(c.infer("steady", add_sub_inputs(grpcclient, float(i))).as_numpy("OUTPUT0"),
                                     np.full((1, 16), i + 1.0, np.float32))
            with lock:
                results.append(bool(got))
        except Exception as e:  # noqa: BLE001
            with lock:
                results.append(repr(e))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    time.sleep(0.1)
    srv.proc.send_signal(15)
    for t in threads:
        t.join(60)
    assert srv.proc.wait(60) == 0
    srv.log.close()
    assert results == [True] * 24, results
    time.sleep(0.2)
    for pid in children:
        assert not os.path.exists(f"/proc/{pid}") or "zombie" in Path(f"/proc/{pid}/status").read_text().lower(), \
            f"Python process {pid} outlived the server"
