"""Model warm-up, the response cache and the rate limiter of kiln serve,
with the stock tritonclient."""
from __future__ import annotations

import textwrap
import threading
import time

import numpy as np
import pytest

from server_util import KilnServer, add_sub_model, kiln_exe, write_model

httpclient = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402

pytestmark = pytest.mark.skipif(kiln_exe() is None, reason="kiln is not built")

COUNTER = '''
import os
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.log = os.path.join(args["model_repository"], "calls.txt")

    def execute(self, requests):
        out = []
        for r in requests:
            x = pb_utils.get_input_tensor_by_name(r, "X").as_numpy()
            with open(self.log, "a") as f:
                f.write(f"{x.shape} {x.dtype} {float(x.sum())}\\n")
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("Y", x)]))
        return out
'''

SLEEPER = '''
import time
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            t0 = time.time()
            time.sleep(0.25)
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("T", np.array([t0, time.time()], np.float64))]))
        return out
'''


def python_model(repo, name, source, config):
    d = repo / name / "1"
    d.mkdir(parents=True)
    (d / "model.py").write_text(textwrap.dedent(source))
    (repo / name / "config.pbtxt").write_text(f'backend: "python"\n{config}')


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("feat") / "repo"
    python_model(repo, "counted", COUNTER, '''
max_batch_size: 4
input [ { name: "X" data_type: TYPE_FP32 dims: [ 3 ] } ]
output [ { name: "Y" data_type: TYPE_FP32 dims: [ 3 ] } ]
model_warmup [
  { name: "zeros" batch_size: 2 count: 2 inputs { key: "X" value: { data_type: TYPE_FP32 dims: [ 3 ] zero_data: true } } },
  { name: "file" inputs { key: "X" value: { data_type: TYPE_FP32 dims: [ 3 ] input_data_file: "x.bin" } } }
]
''')
    (repo / "counted" / "warmup").mkdir()
    (repo / "counted" / "warmup" / "x.bin").write_bytes(np.array([1, 2, 3], np.float32).tobytes())
    write_model(repo, "warm_onnx", add_sub_model(), '''
max_batch_size: 8
model_warmup [ { name: "random" batch_size: 4 count: 3
  inputs { key: "INPUT0" value: { data_type: TYPE_FP32 dims: [ 16 ] random_data: true } }
  inputs { key: "INPUT1" value: { data_type: TYPE_FP32 dims: [ 16 ] random_data: true } } } ]
''')
    write_model(repo, "bad_warmup", add_sub_model(), '''
max_batch_size: 8
model_warmup [ { name: "wrong" inputs { key: "INPUT0" value: { data_type: TYPE_FP32 dims: [ 5 ] zero_data: true } }
  inputs { key: "INPUT1" value: { data_type: TYPE_FP32 dims: [ 5 ] zero_data: true } } } ]
''')
    write_model(repo, "cached", add_sub_model(), "max_batch_size: 8\nresponse_cache { enable: true }\n")
    write_model(repo, "uncached", add_sub_model(), "max_batch_size: 8\n")
    srv = KilnServer(repo, "--cache-config", "local,size=1048576", wait_ready=False)
    yield srv, repo
    assert srv.stop() == 0


def test_warmup_runs_before_ready(server):
    srv, repo = server
    client = httpclient.InferenceServerClient(srv.http_url)
    assert client.is_model_ready("counted")
    calls = (repo / "counted" / "calls.txt").read_text().splitlines()
    assert calls == ["(2, 3) float32 0.0", "(2, 3) float32 0.0", "(1, 3) float32 6.0"]
    stats = client.get_inference_statistics("warm_onnx")["model_stats"][0]
    assert stats["inference_stats"]["success"]["count"] == 3 and stats["inference_count"] == 12
    index = {m["name"]: m for m in client.get_model_repository_index()}
    assert index["bad_warmup"]["state"] == "UNAVAILABLE"
    assert "warmup 'wrong'" in index["bad_warmup"]["reason"] and "shape" in index["bad_warmup"]["reason"]


def add_sub_inputs(value):
    ins = [httpclient.InferInput("INPUT0", [1, 16], "FP32"), httpclient.InferInput("INPUT1", [1, 16], "FP32")]
    ins[0].set_data_from_numpy(np.full((1, 16), value, np.float32))
    ins[1].set_data_from_numpy(np.ones((1, 16), np.float32))
    return ins


def test_response_cache(server):
    srv, _ = server
    client = httpclient.InferenceServerClient(srv.http_url)
    for _ in range(3):
        r = client.infer("cached", add_sub_inputs(2.0))
        np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), np.full((1, 16), 3.0, np.float32))
    r = client.infer("cached", add_sub_inputs(5.0))
    np.testing.assert_array_equal(r.as_numpy("OUTPUT1"), np.full((1, 16), 4.0, np.float32))
    # Asking for one output only is another cache entry.
    r = client.infer("cached", add_sub_inputs(2.0), outputs=[httpclient.InferRequestedOutput("OUTPUT1")])
    np.testing.assert_array_equal(r.as_numpy("OUTPUT1"), np.full((1, 16), 1.0, np.float32))
    assert r.as_numpy("OUTPUT0") is None
    stats = client.get_inference_statistics("cached")["model_stats"][0]
    assert stats["inference_stats"]["cache_hit"]["count"] == 2
    assert stats["inference_stats"]["cache_miss"]["count"] == 3
    assert stats["execution_count"] == 3 and stats["inference_stats"]["success"]["count"] == 5
    client.infer("uncached", add_sub_inputs(2.0))
    client.infer("uncached", add_sub_inputs(2.0))
    stats = client.get_inference_statistics("uncached")["model_stats"][0]
    assert stats["execution_count"] == 2 and stats["inference_stats"]["cache_hit"]["count"] == 0


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    repo = tmp_path_factory.mktemp("rl") / "repo"
    for name, prio in [("sleep_a", 1), ("sleep_b", 2), ("sleep_c", 1)]:
        python_model(repo, name, SLEEPER, f'''
input [ {{ name: "X" data_type: TYPE_FP32 dims: [ 1 ] }} ]
output [ {{ name: "T" data_type: TYPE_FP64 dims: [ 2 ] }} ]
instance_group [ {{ count: 1 kind: KIND_CPU rate_limiter {{ resources [ {{ name: "R" count: 1 }} ] priority: {prio} }} }} ]
''')
    srv = KilnServer(repo, "--rate-limit", "execution_count")
    yield srv
    assert srv.stop() == 0


def timed(url, model, results, key):
    client = httpclient.InferenceServerClient(url)
    x = httpclient.InferInput("X", [1], "FP32")
    x.set_data_from_numpy(np.zeros(1, np.float32))
    results[key] = client.infer(model, [x]).as_numpy("T")


def test_rate_limiter_serializes_instances_sharing_a_resource(limited):
    results = {}
    threads = [threading.Thread(target=timed, args=(limited.http_url, m, results, f"{m}{i}"))
               for i in range(2) for m in ("sleep_a", "sleep_b", "sleep_c")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spans = sorted(tuple(v) for v in results.values())
    assert len(spans) == 6
    for (s0, e0), (s1, e1) in zip(spans, spans[1:]):
        assert s1 >= e0 - 1e-3, f"two instances held resource R at once: {spans}"


def test_rate_limiter_priority(limited):
    results = {}
    first = threading.Thread(target=timed, args=(limited.http_url, "sleep_a", results, "a"))
    first.start()
    time.sleep(0.08)
    low = threading.Thread(target=timed, args=(limited.http_url, "sleep_b", results, "b"))  # priority 2
    low.start()
    time.sleep(0.08)
    high = threading.Thread(target=timed, args=(limited.http_url, "sleep_c", results, "c"))  # priority 1
    high.start()
    for t in (first, low, high):
        t.join()
    assert results["c"][0] < results["b"][0], f"priority 1 ran after priority 2: {results}"


def test_bad_flags_are_refused(tmp_path):
    import subprocess
    for args, msg in [(["--cache-config", "redis,size=5"], "local,size"), (["--rate-limit", "fast"], "execution_count"),
                      (["--rate-limit-resource", "R"], "<name>:<count>")]:
        p = subprocess.run([kiln_exe(), "serve", "--model-repository", str(tmp_path), *args], capture_output=True,
                           text=True, timeout=30)
        assert p.returncode != 0 and msg in p.stderr


def test_models_are_served_from_plans(tmp_path):
    """An ONNX model is built into a plan at load: with no config its batch
    dim gets the auto-completed max_batch_size as the profile and the kernels
    are timed; a Kiln plan file built ahead with `kiln build` serves as is.
    Both answer every batch size like the ONNX model does."""
    from conftest import EXAMPLE_MODELS
    import onnx
    import onnxruntime as ort
    import subprocess

    repo = tmp_path / "repo"
    cnn = onnx.load(str(EXAMPLE_MODELS / "tiny_cnn.onnx"))
    write_model(repo, "cnn", cnn)
    plan_dir = repo / "cnn_plan" / "1"
    plan_dir.mkdir(parents=True)
    subprocess.run([kiln_exe(), "build", str(EXAMPLE_MODELS / "tiny_cnn.onnx"), "-o", str(plan_dir / "model.plan"),
                    "--min-shapes", "input:1x3x32x32", "--opt-shapes", "input:4x3x32x32",
                    "--max-shapes", "input:8x3x32x32", "--quiet"], check=True)
    (repo / "cnn_plan" / "config.pbtxt").write_text(
        'default_model_filename: "model.plan"\nmax_batch_size: 8\ndynamic_batching {}\n')
    ref = ort.InferenceSession(str(EXAMPLE_MODELS / "tiny_cnn.onnx"), providers=["CPUExecutionProvider"])
    srv = KilnServer(repo, "--log-verbose", "1")
    try:
        import re

        assert re.search(r"cnn/1/model.onnx: built a plan of \d+ layers \([1-9]\d* timed in", srv.output()), srv.output()
        client = httpclient.InferenceServerClient(srv.http_url)
        assert client.get_model_config("cnn")["max_batch_size"] == 4
        rng = np.random.default_rng(3)
        for model, batches in (("cnn", (1, 3, 4)), ("cnn_plan", (1, 5, 8))):
            meta = client.get_model_metadata(model)
            assert meta["inputs"][0]["shape"] == [-1, 3, 32, 32], meta
            for batch in batches:
                x = rng.standard_normal((batch, 3, 32, 32), dtype=np.float32)
                inp = httpclient.InferInput("input", list(x.shape), "FP32")
                inp.set_data_from_numpy(x)
                got = client.infer(model, [inp]).as_numpy("logits")
                want = ref.run(None, {"input": x})[0]
                np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=f"{model} batch {batch}")
    finally:
        srv.stop()
