"""Ensembles (platform "ensemble") through kiln serve with the stock
tritonclient: a DAG of steps with input/output maps and tensors passed
between steps, over HTTP and gRPC; a failing step answers with an error
naming the step; invalid ensemble configs fail to load with the reason
while everything else keeps serving."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from server_util import KilnServer, _model, add_sub_model, kiln_exe, write_model

httpclient = pytest.importorskip("tritonclient.http")
grpcclient = pytest.importorskip("tritonclient.grpc")
from tritonclient.utils import InferenceServerException  # noqa: E402

pytestmark = pytest.mark.skipif(kiln_exe() is None, reason="kiln is not built")


def scale_model(factor, width=16):
    """Y = X * factor on FP32 [batch, width]."""
    f = numpy_helper.from_array(np.array(factor, np.float32), "f")
    vi = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", width])  # noqa: E731
    return _model([helper.make_node("Mul", ["X", "f"], ["Y"])], [vi("X")], [vi("Y")], [f])


def ensemble_config(name, steps, inputs, outputs, max_batch=8):
    def io(kind, names):
        return ", ".join(f'{{ name: "{n}" data_type: TYPE_FP32 dims: [ 16 ] }}' for n in names)
    body = []
    for model, imap, omap in steps:
        ims = " ".join(f'input_map {{ key: "{k}" value: "{v}" }}' for k, v in imap.items())
        oms = " ".join(f'output_map {{ key: "{k}" value: "{v}" }}' for k, v in omap.items())
        body.append(f'{{ model_name: "{model}" model_version: -1 {ims} {oms} }}')
    return (f'name: "{name}"\nplatform: "ensemble"\nmax_batch_size: {max_batch}\n'
            f'input [ {io("in", inputs)} ]\noutput [ {io("out", outputs)} ]\n'
            f'ensemble_scheduling {{ step [ {", ".join(body)} ] }}\n')


def write_ensemble(repo, name, config):
    (repo / name / "1").mkdir(parents=True, exist_ok=True)
    (repo / name / "config.pbtxt").write_text(config)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("ens") / "repo"
    write_model(repo, "addsub", add_sub_model(), "max_batch_size: 8\n")
    write_model(repo, "double", scale_model(2.0), "max_batch_size: 8\n")
    write_model(repo, "negate", scale_model(-1.0), "max_batch_size: 8\n")
    write_model(repo, "narrow", scale_model(1.0, width=4), "max_batch_size: 8\n")
    # sum, diff = addsub(a, b); out_sum = double(sum); out_diff = negate(diff): two steps run in parallel.
    write_ensemble(repo, "pipeline", ensemble_config(
        "pipeline",
        [("addsub", {"INPUT0": "A", "INPUT1": "B"}, {"OUTPUT0": "sum", "OUTPUT1": "diff"}),
         ("double", {"X": "sum"}, {"Y": "OUT_SUM"}),
         ("negate", {"X": "diff"}, {"Y": "OUT_DIFF"})],
        ["A", "B"], ["OUT_SUM", "OUT_DIFF"]))
    # A step whose model rejects the tensor's shape.
    write_ensemble(repo, "bad_step", ensemble_config(
        "bad_step", [("narrow", {"X": "A"}, {"Y": "OUT"})], ["A"], ["OUT"]))
    write_ensemble(repo, "missing_model", ensemble_config(
        "missing_model", [("nonexistent", {"X": "A"}, {"Y": "OUT"})], ["A"], ["OUT"]))
    # Invalid: OUT is never produced.
    write_ensemble(repo, "broken", ensemble_config(
        "broken", [("double", {"X": "A"}, {"Y": "OTHER"})], ["A"], ["OUT"]))
    srv = KilnServer(repo, wait_ready=False)
    yield srv
    assert srv.stop() == 0


def inputs(module, batch=2):
    a = np.arange(16 * batch, dtype=np.float32).reshape(batch, 16)
    b = np.full((batch, 16), 3.0, np.float32)
    ins = [module.InferInput("A", [batch, 16], "FP32"), module.InferInput("B", [batch, 16], "FP32")]
    ins[0].set_data_from_numpy(a)
    ins[1].set_data_from_numpy(b)
    return a, b, ins


@pytest.mark.parametrize("module", [httpclient, grpcclient], ids=["http", "grpc"])
def test_pipeline(server, module):
    url = server.http_url if module is httpclient else server.grpc_url
    client = module.InferenceServerClient(url)
    assert client.is_model_ready("pipeline")
    a, b, ins = inputs(module)
    r = client.infer("pipeline", ins)
    np.testing.assert_allclose(r.as_numpy("OUT_SUM"), (a + b) * 2)
    np.testing.assert_allclose(r.as_numpy("OUT_DIFF"), -(a - b))
    # Only one output requested.
    r = client.infer("pipeline", ins, outputs=[module.InferRequestedOutput("OUT_DIFF")])
    np.testing.assert_allclose(r.as_numpy("OUT_DIFF"), -(a - b))
    assert r.as_numpy("OUT_SUM") is None
    md = client.get_model_metadata("pipeline")
    md = md if module is httpclient else {"platform": md.platform}
    assert md["platform"] == "ensemble"


def test_pipeline_concurrent_requests_and_statistics(server):
    client = httpclient.InferenceServerClient(server.http_url)
    before = client.get_inference_statistics("double")["model_stats"][0]["inference_stats"]["success"]["count"]

    def one(i):
        c = httpclient.InferenceServerClient(server.http_url)
        a = np.full((1, 16), float(i), np.float32)
        b = np.ones((1, 16), np.float32)
        ins = [httpclient.InferInput("A", [1, 16], "FP32"), httpclient.InferInput("B", [1, 16], "FP32")]
        ins[0].set_data_from_numpy(a)
        ins[1].set_data_from_numpy(b)
        r = c.infer("pipeline", ins)
        return np.allclose(r.as_numpy("OUT_SUM"), (a + b) * 2) and np.allclose(r.as_numpy("OUT_DIFF"), b - a)

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(one, range(32)))
    after = client.get_inference_statistics("double")["model_stats"][0]["inference_stats"]["success"]["count"]
    assert after - before == 32
    ens = client.get_inference_statistics("pipeline")["model_stats"][0]["inference_stats"]["success"]["count"]
    assert ens >= 32


def test_step_errors_are_reported(server):
    client = httpclient.InferenceServerClient(server.http_url)
    x = httpclient.InferInput("A", [1, 16], "FP32")
    x.set_data_from_numpy(np.ones((1, 16), np.float32))
    with pytest.raises(InferenceServerException, match=r"step 0 \(model 'narrow'\) failed: .*shape"):
        client.infer("bad_step", [x])
    with pytest.raises(InferenceServerException, match="nonexistent"):
        client.infer("missing_model", [x])
    gclient = grpcclient.InferenceServerClient(server.grpc_url)
    gx = grpcclient.InferInput("A", [1, 16], "FP32")
    gx.set_data_from_numpy(np.ones((1, 16), np.float32))
    with pytest.raises(InferenceServerException, match="narrow"):
        gclient.infer("bad_step", [gx])
    # Wrong input to the ensemble itself is checked against its config.
    with pytest.raises(InferenceServerException, match="unexpected inference input"):
        y = httpclient.InferInput("Z", [1, 16], "FP32")
        y.set_data_from_numpy(np.ones((1, 16), np.float32))
        client.infer("pipeline", [y])


def test_invalid_ensemble_fails_to_load_and_others_serve(server):
    client = httpclient.InferenceServerClient(server.http_url)
    index = {m["name"]: m for m in client.get_model_repository_index()}
    assert index["broken"]["state"] == "UNAVAILABLE"
    assert "not produced by any step" in index["broken"]["reason"]
    assert client.is_model_ready("pipeline")
