"""The PyTorch (TorchScript) backend of kiln serve with the stock tritonclient:
model repositories laid out as for Triton's PyTorch backend (platform
"pytorch_libtorch", <version>/model.pt, INPUT__0 / OUTPUT__0 or forward()
argument names, a Dict[str, Tensor] input, List[str] strings) serve over
HTTP and gRPC with dynamic batching and several instances; answers are
checked against numpy. Bad models (unservable forward(), wrong input count,
a file that is not TorchScript) and model errors come back clearly while the
rest keeps serving.

The models come from kiln_torch_test_models (tests/server/torch/), built
beside the plugin when Debian's libtorch-dev is installed."""
from __future__ import annotations

import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from server_util import KilnServer, kiln_exe

httpclient = pytest.importorskip("tritonclient.http")
grpcclient = pytest.importorskip("tritonclient.grpc")
from tritonclient.utils import InferenceServerException  # noqa: E402

W = np.array([[1.0, -1.0, 0.5], [0.5, 2.0, -1.0], [-1.0, 0.5, 1.5], [2.0, 0.0, -0.5]], np.float32)
B = np.array([0.1, -0.2, 0.3], np.float32)


def _plugin_dir() -> Path | None:
    exe = kiln_exe()
    if exe is None:
        return None
    return Path(exe).resolve().parents[2] / "src" / "server" / "torch_plugin"


def _skip_reason() -> str | None:
    """Why the backend cannot be tested here, or None. A build that should have the plugin (libtorch-dev
    installed, no sanitizer) but lacks it fails instead of skipping."""
    d = _plugin_dir()
    if d is None:
        return "kiln is not built"
    if (d / "libkiln_torch_backend.so").is_file() and (d / "kiln_torch_test_models").is_file():
        return None
    cache = d.parents[2] / "CMakeCache.txt"
    sanitized = cache.is_file() and re.search(r"^KILN_SANITIZE:\w+=\S", cache.read_text(), re.M)
    if sanitized:
        return "sanitizer build: the PyTorch plugin is not built (libtorch is not instrumented)"
    if not Path("/usr/lib/x86_64-linux-gnu/cmake/Torch/TorchConfig.cmake").is_file():
        return "Debian's libtorch-dev is not installed"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))


def torch_model(repo: Path, models: Path, name: str, source: str, config: str, platform=True):
    d = repo / name / "1"
    d.mkdir(parents=True)
    shutil.copy(models / f"{source}.pt", d / "model.pt")
    head = 'platform: "pytorch_libtorch"\n' if platform else 'backend: "pytorch"\n'
    (repo / name / "config.pbtxt").write_text(head + config)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("torch")
    models = root / "pt"
    tool = _plugin_dir() / "kiln_torch_test_models"
    assert tool.is_file(), f"{tool} is missing: the PyTorch backend was not built although libtorch-dev is installed"
    subprocess.run([str(tool), str(models)], check=True, timeout=120)
    repo = root / "repo"
    torch_model(repo, models, "add_sub", "add_sub",
                'max_batch_size: 8\n'
                'input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] },'
                ' { name: "INPUT1" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'
                'output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 4 ] },'
                ' { name: "OUTPUT__1" data_type: TYPE_FP32 dims: [ 4 ] } ]\n')
    # Inputs named by index in the reverse of their config order; outputs by config order.
    torch_model(repo, models, "add_sub_indexed", "add_sub",
                'max_batch_size: 8\n'
                'input [ { name: "B__1" data_type: TYPE_FP32 dims: [ 4 ] },'
                ' { name: "A__0" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'
                'output [ { name: "SUM" data_type: TYPE_FP32 dims: [ 4 ] },'
                ' { name: "DIFF" data_type: TYPE_FP32 dims: [ 4 ] } ]\n', platform=False)
    torch_model(repo, models, "linear", "linear",
                'max_batch_size: 16\n'
                'input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'
                'output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 3 ] } ]\n'
                'dynamic_batching { max_queue_delay_microseconds: 20000 }\n'
                'instance_group [ { count: 2 kind: KIND_CPU } ]\n'
                'parameters { key: "INTRA_OP_THREAD_COUNT" value { string_value: "1" } }\n')
    torch_model(repo, models, "dict_in", "dict_in",
                'max_batch_size: 0\n'
                'input [ { name: "a" data_type: TYPE_FP32 dims: [ 2, 3 ] },'
                ' { name: "b" data_type: TYPE_FP32 dims: [ 2, 3 ] }, { name: "c" data_type: TYPE_FP32 dims: [ 2, 3 ] } ]\n'
                'output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 2, 3 ] } ]\n')
    torch_model(repo, models, "strings", "strings",
                'max_batch_size: 0\n'
                'input [ { name: "words" data_type: TYPE_STRING dims: [ -1 ] } ]\n'
                'output [ { name: "UPPER__0" data_type: TYPE_STRING dims: [ -1 ] },'
                ' { name: "LENGTH__1" data_type: TYPE_INT64 dims: [ -1 ] } ]\n')
    torch_model(repo, models, "raises", "raises",
                'max_batch_size: 0\n'
                'input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 3 ] } ]\n'
                'output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 3 ] } ]\n')
    torch_model(repo, models, "types", "types",
                'max_batch_size: 4\n'
                'input [ { name: "INPUT__0" data_type: TYPE_INT32 dims: [ 3 ] } ]\n'
                'output [ { name: "OUTPUT__0" data_type: TYPE_INT64 dims: [ 3 ] },'
                ' { name: "OUTPUT__1" data_type: TYPE_BOOL dims: [ 3 ] } ]\n')
    torch_model(repo, models, "wrong_output_type", "types",
                'max_batch_size: 4\n'
                'input [ { name: "INPUT__0" data_type: TYPE_INT32 dims: [ 3 ] } ]\n'
                'output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 3 ] } ]\n')
    torch_model(repo, models, "missing_output", "raises",
                'max_batch_size: 0\n'
                'input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 3 ] } ]\n'
                'output [ { name: "OUTPUT__2" data_type: TYPE_FP32 dims: [ 3 ] } ]\n')
    torch_model(repo, models, "in_place", "in_place",
                'max_batch_size: 0\n'
                'input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 3 ] } ]\n'
                'output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 3 ] } ]\n')
    # Models that must not load, each with the reason in the index.
    torch_model(repo, models, "takes_int", "takes_int",
                'max_batch_size: 0\n'
                'input [ { name: "x" data_type: TYPE_FP32 dims: [ 3 ] }, { name: "n" data_type: TYPE_INT64 dims: [ 1 ] } ]\n'
                'output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 3 ] } ]\n')
    torch_model(repo, models, "too_few_inputs", "add_sub",
                'max_batch_size: 0\n'
                'input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'
                'output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 4 ] } ]\n')
    torch_model(repo, models, "no_config_io", "add_sub", 'max_batch_size: 0\n')
    garbage = repo / "not_torchscript" / "1"
    garbage.mkdir(parents=True)
    (garbage / "model.pt").write_bytes((models / "linear.pt").read_bytes()[:300])
    (repo / "not_torchscript" / "config.pbtxt").write_text(
        'platform: "pytorch_libtorch"\nmax_batch_size: 0\n'
        'input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'
        'output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 3 ] } ]\n')
    (repo / "no_file" / "1").mkdir(parents=True)
    (repo / "no_file" / "config.pbtxt").write_text((repo / "not_torchscript" / "config.pbtxt").read_text())
    # Damaged copies of a model (bytes flipped, cut short, garbage inserted): each loads or fails
    # with a reason; none may take the server down (libtorch parses them in the server's process).
    rng = np.random.default_rng(7)
    data = (models / "linear.pt").read_bytes()
    for i in range(12):
        b = bytearray(data)
        if i % 3 == 0:
            for pos in rng.integers(0, len(b), 16):
                b[pos] = int(rng.integers(0, 256))
        elif i % 3 == 1:
            b = b[: int(rng.integers(1, len(b)))]
        else:
            pos = int(rng.integers(0, len(b)))
            b[pos:pos] = rng.integers(0, 256, 40, dtype=np.uint8).tobytes()
        d = repo / f"damaged_{i}" / "1"
        d.mkdir(parents=True)
        (d / "model.pt").write_bytes(bytes(b))
        (repo / f"damaged_{i}" / "config.pbtxt").write_text((repo / "linear" / "config.pbtxt").read_text())
    srv = KilnServer(repo, wait_ready=False)
    yield srv
    assert srv.stop() == 0


def client_for(server, module):
    return module.InferenceServerClient(server.http_url if module is httpclient else server.grpc_url)


def infer_input(module, name, data, datatype):
    x = module.InferInput(name, list(data.shape), datatype)
    x.set_data_from_numpy(data)
    return x


@pytest.mark.parametrize("module", [httpclient, grpcclient], ids=["http", "grpc"])
def test_forward_argument_names_and_tuple_outputs(server, module):
    client = client_for(server, module)
    rng = np.random.default_rng(1)
    a = rng.standard_normal((3, 4)).astype(np.float32)
    b = rng.standard_normal((3, 4)).astype(np.float32)
    r = client.infer("add_sub", [infer_input(module, "INPUT0", a, "FP32"), infer_input(module, "INPUT1", b, "FP32")])
    np.testing.assert_allclose(r.as_numpy("OUTPUT__0"), a + b, rtol=1e-6)
    np.testing.assert_allclose(r.as_numpy("OUTPUT__1"), a - b, rtol=1e-6)
    meta = client.get_model_metadata("add_sub")
    meta = meta if isinstance(meta, dict) else {"platform": meta.platform}
    assert meta["platform"] == "pytorch_libtorch"


def test_named_index_inputs_and_config_order_outputs(server):
    client = httpclient.InferenceServerClient(server.http_url)
    a = np.arange(8, dtype=np.float32).reshape(2, 4)
    b = np.full((2, 4), 0.5, np.float32)
    r = client.infer("add_sub_indexed", [infer_input(httpclient, "A__0", a, "FP32"),
                                         infer_input(httpclient, "B__1", b, "FP32")])
    np.testing.assert_allclose(r.as_numpy("SUM"), a + b)
    np.testing.assert_allclose(r.as_numpy("DIFF"), a - b)  # A is argument 0 although listed second
    config = client.get_model_config("add_sub_indexed")
    assert config["platform"] == "pytorch_libtorch" and config["backend"] == "pytorch"


def test_dynamic_batching_over_two_instances(server):
    def call(i):
        client = httpclient.InferenceServerClient(server.http_url)
        rows = 1 + i % 4
        x = np.random.default_rng(i).standard_normal((rows, 4)).astype(np.float32)
        r = client.infer("linear", [infer_input(httpclient, "INPUT__0", x, "FP32")])
        return x, r.as_numpy("OUTPUT__0")

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, range(32)))
    for x, y in results:
        np.testing.assert_allclose(y, np.maximum(x @ W + B, 0), rtol=1e-5, atol=1e-6)
    stats = httpclient.InferenceServerClient(server.http_url).get_inference_statistics("linear")
    s = stats["model_stats"][0]
    assert int(s["inference_count"]) == sum(1 + i % 4 for i in range(32))
    assert int(s["execution_count"]) < 32, "no request was batched with another"


@pytest.mark.parametrize("module", [httpclient, grpcclient], ids=["http", "grpc"])
def test_dict_input(server, module):
    client = client_for(server, module)
    a, b, c = (np.random.default_rng(k).standard_normal((2, 3)).astype(np.float32) for k in range(3))
    r = client.infer("dict_in", [infer_input(module, "a", a, "FP32"), infer_input(module, "b", b, "FP32"),
                                 infer_input(module, "c", c, "FP32")])
    np.testing.assert_allclose(r.as_numpy("OUTPUT__0"), a * b + c, rtol=1e-6)


@pytest.mark.parametrize("module", [httpclient, grpcclient], ids=["http", "grpc"])
def test_string_list_in_and_out(server, module):
    client = client_for(server, module)
    words = np.array([b"kiln", b"", b"TorchScript"], dtype=np.object_)
    r = client.infer("strings", [infer_input(module, "words", words, "BYTES")])
    assert r.as_numpy("UPPER__0").tolist() == [b"KILN", b"", b"TORCHSCRIPT"]
    assert r.as_numpy("LENGTH__1").tolist() == [4, 0, 11]


def test_integer_and_bool_types(server):
    client = httpclient.InferenceServerClient(server.http_url)
    x = np.array([[-2, 0, 5], [7, -1, 1]], np.int32)
    r = client.infer("types", [infer_input(httpclient, "INPUT__0", x, "INT32")])
    assert r.as_numpy("OUTPUT__0").dtype == np.int64
    np.testing.assert_array_equal(r.as_numpy("OUTPUT__0"), x.astype(np.int64) * 3)
    np.testing.assert_array_equal(r.as_numpy("OUTPUT__1"), x > 0)


def test_model_errors_are_reported_and_the_model_keeps_serving(server):
    client = httpclient.InferenceServerClient(server.http_url)
    bad = np.array([-1.0, -2.0, 0.5], np.float32)
    with pytest.raises(InferenceServerException, match="negative input"):
        client.infer("raises", [infer_input(httpclient, "INPUT__0", bad, "FP32")])
    good = np.array([1.0, 2.0, 3.0], np.float32)
    np.testing.assert_allclose(client.infer("raises", [infer_input(httpclient, "INPUT__0", good, "FP32")])
                               .as_numpy("OUTPUT__0"), good * 2)
    x = np.zeros((1, 3), np.int32)
    with pytest.raises(InferenceServerException, match="as INT64 but its config says FP32"):
        client.infer("wrong_output_type", [infer_input(httpclient, "INPUT__0", x, "INT32")])
    with pytest.raises(InferenceServerException, match="element 2 of forward\\(\\)'s result, which has 1 element"):
        client.infer("missing_output", [infer_input(httpclient, "INPUT__0", good, "FP32")])


def test_in_place_model_does_not_change_the_request(server):
    client = httpclient.InferenceServerClient(server.http_url)
    x = np.array([1.0, 2.0, 3.0], np.float32)
    for _ in range(2):  # the same answer twice: nothing the model wrote stuck
        r = client.infer("in_place", [infer_input(httpclient, "INPUT__0", x, "FP32")])
        np.testing.assert_allclose(r.as_numpy("OUTPUT__0"), x * 10 + 1)


def test_bad_models_fail_to_load_with_reasons(server):
    client = httpclient.InferenceServerClient(server.http_url)
    index = {m["name"]: m for m in client.get_model_repository_index()}
    reasons = {
        "takes_int": r"forward\(\) argument 'n' is neither a Tensor nor a List",
        "too_few_inputs": r"the configuration expects 1 inputs, forward\(\) takes 2",
        "no_config_io": "must list its inputs and outputs",
        "not_torchscript": "loading the TorchScript model",
        "no_file": "PyTorch model file '.*model.pt' not found",
    }
    for name, reason in reasons.items():
        assert index[name]["state"] == "UNAVAILABLE", index[name]
        assert re.search(reason, index[name]["reason"]), (name, index[name]["reason"])
    for name in ("add_sub", "linear", "dict_in", "strings"):
        assert client.is_model_ready(name)
    assert client.is_server_live()


def test_damaged_model_files_never_take_the_server_down(server):
    client = httpclient.InferenceServerClient(server.http_url)
    index = {m["name"]: m for m in client.get_model_repository_index()}
    for i in range(12):
        entry = index[f"damaged_{i}"]
        assert entry["state"] in ("READY", "UNAVAILABLE"), entry
        if entry["state"] == "UNAVAILABLE":
            assert entry["reason"], entry
    assert client.is_server_live() and client.is_model_ready("linear")
