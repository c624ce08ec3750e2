"""GPU instances (instance_group KIND_GPU) through a real `kiln serve`.

Without a GPU (CI, this machine) a KIND_GPU model fails to load with an error
naming the model, the group and why, the repository index shows it
UNAVAILABLE with that reason, and the other models keep serving. With a GPU
the same repository serves the KIND_GPU model, with the same answers as its
CPU copy, and /metrics carries the nv_gpu_* families."""
from __future__ import annotations

import json
import textwrap
import urllib.request

import numpy as np
import pytest

from server_util import KilnServer, add_sub_model, kiln_exe, write_model

pytestmark = pytest.mark.skipif(kiln_exe() is None, reason="kiln binary not built")

ARGS_WRITER = '''
import json
import os
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        keep = {k: args[k] for k in ("model_instance_kind", "model_instance_device_id", "model_instance_name")}
        path = os.path.join(args["model_repository"], "args_" + args["model_instance_name"] + ".json")
        with open(path, "w") as f:
            json.dump(keep, f)

    def execute(self, requests):
        return [pb_utils.InferenceResponse([pb_utils.Tensor("Y", pb_utils.get_input_tensor_by_name(r, "X").as_numpy())])
                for r in requests]
'''

PY_IO = '''
input [ { name: "X" data_type: TYPE_FP32 dims: [ 1 ] } ]
output [ { name: "Y" data_type: TYPE_FP32 dims: [ 1 ] } ]
'''


def python_model(repo, name, config):
    d = repo / name / "1"
    d.mkdir(parents=True)
    (d / "model.py").write_text(textwrap.dedent(ARGS_WRITER))
    (repo / name / "config.pbtxt").write_text(f'backend: "python"\n{PY_IO}{config}')


def http(srv, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://{srv.http_url}{path}", data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def infer_add_sub(srv, model, a, b):
    body = {"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": list(a.shape), "data": a.ravel().tolist()},
                       {"name": "INPUT1", "datatype": "FP32", "shape": list(b.shape), "data": b.ravel().tolist()}]}
    status, resp = http(srv, "POST", f"/v2/models/{model}/infer", body)
    assert status == 200, resp
    return {o["name"]: np.array(o["data"], np.float32).reshape(o["shape"]) for o in resp["outputs"]}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    repo = tmp_path_factory.mktemp("gpu") / "repo"
    write_model(repo, "cpu_add", add_sub_model(), "max_batch_size: 8\ninstance_group [ { kind: KIND_CPU } ]\n")
    write_model(repo, "gpu_add", add_sub_model(), '''max_batch_size: 8
instance_group [ { name: "fast" kind: KIND_GPU count: 2 } ]
parameters { key: "precision" value { string_value: "fp32" } }
''')
    write_model(repo, "gpu_missing", add_sub_model(), 'instance_group [ { name: "far" kind: KIND_GPU gpus: [ 99 ] } ]\n')
    write_model(repo, "auto_add", add_sub_model())
    python_model(repo, "py_gpu", 'instance_group [ { name: "pg" kind: KIND_GPU gpus: [ 0 ] } ]\n')
    python_model(repo, "py_cpu", 'instance_group [ { name: "pc" kind: KIND_CPU } ]\n')
    python_model(repo, "py_default", "")
    python_model(repo, "py_unnamed", "instance_group [ { count: 2 kind: KIND_CPU }, { kind: KIND_CPU } ]\n")
    torch_dir = repo / "torch_gpu" / "1"
    torch_dir.mkdir(parents=True)
    (torch_dir / "model.pt").write_bytes(b"not loaded: the config is refused first")
    (repo / "torch_gpu" / "config.pbtxt").write_text('platform: "pytorch_libtorch"\ninstance_group [ { kind: KIND_GPU } ]\n')
    srv = KilnServer(repo, wait_ready=False)
    status, index = http(srv, "POST", "/v2/repository/index", {})
    assert status == 200
    yield srv, repo, {m["name"]: m for m in index}
    assert srv.stop() == 0


def has_gpu(index) -> bool:
    return index["gpu_add"]["state"] == "READY"


def test_other_models_keep_serving(served):
    srv, _, index = served
    for name in ("cpu_add", "auto_add", "py_cpu"):
        assert index[name]["state"] == "READY", index[name]
    a = np.arange(32, dtype=np.float32).reshape(2, 16)
    out = infer_add_sub(srv, "cpu_add", a, np.ones_like(a))
    np.testing.assert_array_equal(out["OUTPUT0"], a + 1)


def test_kind_gpu_load_error_without_a_gpu(served):
    srv, _, index = served
    if has_gpu(index):
        pytest.skip("a GPU is present: the KIND_GPU model loaded")
    reason = index["gpu_add"]["reason"]
    assert index["gpu_add"]["state"] == "UNAVAILABLE"
    assert "model 'gpu_add': instance_group 'fast' is KIND_GPU but " in reason, reason
    assert "no GPU" in reason or "no CUDA backend" in reason, reason
    assert index["gpu_missing"]["state"] == "UNAVAILABLE"
    assert "model 'gpu_missing': instance_group 'far' is KIND_GPU but " in index["gpu_missing"]["reason"]
    assert index["py_gpu"]["state"] == "UNAVAILABLE"
    assert "model 'py_gpu': instance_group 'pg' is KIND_GPU but " in index["py_gpu"]["reason"]
    status, resp = http(srv, "POST", "/v2/models/gpu_add/infer", {"inputs": []})
    assert status != 200 and "gpu_add" in resp["error"]
    # No GPU: instance groups left to the server stay on the CPU.
    status, config = http(srv, "GET", "/v2/models/auto_add/config")
    assert status == 200 and config["instance_group"][0]["kind"] == "KIND_CPU"
    assert "nv_gpu_utilization" not in srv.metrics()


def test_pytorch_kind_gpu_is_refused(served):
    _, _, index = served
    assert index["torch_gpu"]["state"] == "UNAVAILABLE"
    assert "KIND_GPU is not supported by the PyTorch backend in this build" in index["torch_gpu"]["reason"]


def test_python_instances_get_their_kind_and_device(served):
    _, repo, index = served
    cpu = json.loads((repo / "py_cpu" / "args_pc_0.json").read_text())
    assert cpu == {"model_instance_kind": "CPU", "model_instance_device_id": "0", "model_instance_name": "pc_0"}
    if not has_gpu(index):
        return
    gpu = json.loads((repo / "py_gpu" / "args_pg_0.json").read_text())
    assert gpu == {"model_instance_kind": "GPU", "model_instance_device_id": "0", "model_instance_name": "pg_0"}


def test_python_instance_names_follow_triton(served):
    # Triton 2.51 (tests/python/triton_oracle.py, checked by hand): "<group>_<index>", the group
    # it adds to a config without one named after the model, unnamed groups "<model>_<i>".
    _, repo, index = served
    if has_gpu(index):
        pytest.skip("a GPU is present: py_default's instance is on the GPU")
    names = lambda m: sorted(p.name for p in (repo / m).glob("args_*.json"))
    assert names("py_default") == ["args_py_default_0.json"]
    assert names("py_unnamed") == ["args_py_unnamed_0_0.json", "args_py_unnamed_0_1.json",
                                   "args_py_unnamed_1_0.json"]


def test_kind_gpu_serves_like_the_cpu_copy(served):
    srv, _, index = served
    if not has_gpu(index):
        pytest.skip("no GPU: " + index["gpu_add"]["reason"])
    assert "does not exist" in index["gpu_missing"]["reason"], index["gpu_missing"]
    rng = np.random.default_rng(0)
    for rows in (1, 3, 8):
        a = rng.standard_normal((rows, 16)).astype(np.float32)
        b = rng.standard_normal((rows, 16)).astype(np.float32)
        gpu, cpu = infer_add_sub(srv, "gpu_add", a, b), infer_add_sub(srv, "cpu_add", a, b)
        for name in ("OUTPUT0", "OUTPUT1"):
            np.testing.assert_allclose(gpu[name], cpu[name], rtol=1e-6, atol=1e-6)
    status, config = http(srv, "GET", "/v2/models/gpu_add/config")
    assert config["instance_group"][0]["kind"] == "KIND_GPU" and config["instance_group"][0]["gpus"][0] == 0
    status, config = http(srv, "GET", "/v2/models/auto_add/config")
    assert config["instance_group"][0]["kind"] == "KIND_GPU"
    text = srv.metrics()
    assert 'nv_gpu_utilization{gpu_uuid="GPU-' in text
    if len(config["instance_group"][0]["gpus"]) == 1:  # every instance on one GPU: its series carry the GPU
        assert 'nv_inference_count{model="auto_add",version="1",gpu_uuid="GPU-' in text
