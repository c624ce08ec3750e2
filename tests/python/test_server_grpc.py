"""kiln serve over gRPC with the stock tritonclient (sync, async, streaming
and asyncio): every RPC, every datatype, typed contents, and hostile
requests answered with a gRPC status while the server keeps serving."""
from __future__ import annotations

import json
import queue

import grpc
import ml_dtypes
import numpy as np
import pytest

from server_util import DATATYPES, KilnServer, add_sub_model, identity_model, kiln_exe, write_model

grpcclient = pytest.importorskip("tritonclient.grpc")
from tritonclient.grpc import service_pb2, service_pb2_grpc  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if kiln_exe() is None:
        pytest.skip("kiln is not built")
    repo = tmp_path_factory.mktemp("grpc") / "repo"
    write_model(repo, "simple", add_sub_model(), 'max_batch_size: 8\ndynamic_batching { }\n')
    write_model(repo, "ident", identity_model(list(DATATYPES)))
    write_model(repo, "other", add_sub_model())
    srv = KilnServer(repo, "--model-control-mode", "explicit", "--load-model", "simple", "--load-model", "ident",
                     "--max-request-size", str(1 << 20))
    yield srv
    assert srv.stop() == 0


@pytest.fixture
def client(server):
    c = grpcclient.InferenceServerClient(server.grpc_url)
    yield c
    c.close()


def simple_inputs(batch=1):
    a = np.arange(16 * batch, dtype=np.float32).reshape(batch, 16)
    b = np.full((batch, 16), 2, np.float32)
    ins = [grpcclient.InferInput("INPUT0", [batch, 16], "FP32"), grpcclient.InferInput("INPUT1", [batch, 16], "FP32")]
    ins[0].set_data_from_numpy(a)
    ins[1].set_data_from_numpy(b)
    return a, b, ins


def test_health_metadata_config(client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("simple") and not client.is_model_ready("other")
    md = client.get_server_metadata(as_json=True)
    assert md["name"] == "kiln" and "statistics" in md["extensions"]
    mm = client.get_model_metadata("simple", as_json=True)
    assert mm["inputs"][0]["shape"] == ["-1", "16"] and mm["platform"] == "onnxruntime_onnx"
    cfg = client.get_model_config("ident", as_json=True)["config"]
    assert cfg["max_batch_size"] == 4 and len(cfg["input"]) == len(DATATYPES)


def test_infer_and_output_order(client):
    a, b, ins = simple_inputs(batch=2)
    outs = [grpcclient.InferRequestedOutput("OUTPUT1"), grpcclient.InferRequestedOutput("OUTPUT0")]
    r = client.infer("simple", ins, outputs=outs, request_id="g1")
    np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(r.as_numpy("OUTPUT1"), a - b)
    resp = r.get_response()
    assert resp.id == "g1" and [o.name for o in resp.outputs] == ["OUTPUT1", "OUTPUT0"]
    assert len(resp.raw_output_contents) == 2


def test_every_datatype(client):
    arrays = {}
    for dt in DATATYPES:
        if dt == "BYTES":
            arr = np.array([[b"a", b"", b"\x00\xff"]], dtype=object)
        elif dt == "BOOL":
            arr = np.array([[True, False, True]])
        elif dt == "BF16":
            arr = np.array([[1.5, -2.25, 8.0]], dtype=ml_dtypes.bfloat16)
        elif dt.startswith("FP"):
            arr = np.array([[0.5, -1.25, 3.0]], dtype={"FP16": np.float16, "FP32": np.float32, "FP64": np.float64}[dt])
        else:
            t = np.dtype(dt.lower())
            arr = np.array([[np.iinfo(t).min, np.iinfo(t).max, 3]], dtype=t)
        arrays[dt] = arr
    ins = []
    for dt, arr in arrays.items():
        i = grpcclient.InferInput(f"IN_{dt}", list(arr.shape), dt)
        i.set_data_from_numpy(arr)
        ins.append(i)
    r = client.infer("ident", ins)
    for dt, arr in arrays.items():
        out = r.as_numpy(f"OUT_{dt}")
        if dt == "BYTES":
            assert out.tolist() == arr.tolist()
        else:
            np.testing.assert_array_equal(out.astype(np.float64), arr.astype(np.float64), err_msg=dt)


def test_typed_contents(server):
    channel = grpc.insecure_channel(server.grpc_url)
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
    req = service_pb2.ModelInferRequest(model_name="simple")
    for name, value in (("INPUT0", 1.5), ("INPUT1", 0.5)):
        t = req.inputs.add(name=name, datatype="FP32", shape=[1, 16])
        t.contents.fp32_contents.extend([value] * 16)
    resp = stub.ModelInfer(req)
    assert np.frombuffer(resp.raw_output_contents[0], np.float32).tolist() == [2.0] * 16
    # Typed contents together with raw contents is an error.
    req.raw_input_contents.append(b"\0" * 64)
    with pytest.raises(grpc.RpcError) as e:
        stub.ModelInfer(req)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "raw_input_contents" in e.value.details()
    # Too few elements.
    bad = service_pb2.ModelInferRequest(model_name="simple")
    t = bad.inputs.add(name="INPUT0", datatype="FP32", shape=[1, 16])
    t.contents.fp32_contents.extend([1.0] * 3)
    with pytest.raises(grpc.RpcError) as e:
        stub.ModelInfer(bad)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    channel.close()


@pytest.mark.parametrize("mutate,code,message", [
    (lambda r: setattr(r, "model_name", "nope"), grpc.StatusCode.NOT_FOUND, "unknown model"),
    (lambda r: setattr(r, "model_name", "../simple"), grpc.StatusCode.INVALID_ARGUMENT, "model name"),
    (lambda r: setattr(r, "model_version", "x1"), grpc.StatusCode.INVALID_ARGUMENT, "positive integer"),
    (lambda r: setattr(r, "model_version", "5"), grpc.StatusCode.NOT_FOUND, "version 5"),
    (lambda r: r.raw_input_contents.__setitem__(0, b"\0" * 60), grpc.StatusCode.INVALID_ARGUMENT, "needs 64 bytes"),
    (lambda r: r.raw_input_contents.pop(), grpc.StatusCode.INVALID_ARGUMENT, "no data"),
    (lambda r: r.raw_input_contents.append(b"x"), grpc.StatusCode.INVALID_ARGUMENT, "raw_input_contents entries"),
    (lambda r: r.inputs[0].shape.__setitem__(0, 1 << 40), grpc.StatusCode.INVALID_ARGUMENT, "too large"),
    (lambda r: r.inputs[0].shape.__setitem__(0, 1 << 20), grpc.StatusCode.INVALID_ARGUMENT, "needs 67108864 bytes"),
    (lambda r: setattr(r.inputs[0], "datatype", "INT32"), grpc.StatusCode.INVALID_ARGUMENT, "data-type"),
    (lambda r: r.outputs.add(name="NOPE"), grpc.StatusCode.INVALID_ARGUMENT, "unexpected inference output"),
    (lambda r: setattr(r.parameters["triton_enable_empty_final_response"], "int64_param", 1),
     grpc.StatusCode.INVALID_ARGUMENT, "'triton_enable_empty_final_response' must be a bool_param"),
])
def test_hostile_requests(server, mutate, code, message):
    channel = grpc.insecure_channel(server.grpc_url)
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
    req = service_pb2.ModelInferRequest(model_name="simple")
    for name in ("INPUT0", "INPUT1"):
        req.inputs.add(name=name, datatype="FP32", shape=[1, 16])
        req.raw_input_contents.append(np.ones(16, np.float32).tobytes())
    mutate(req)
    with pytest.raises(grpc.RpcError) as e:
        stub.ModelInfer(req)
    assert e.value.code() == code, e.value.details()
    assert message in e.value.details()
    channel.close()


def test_message_size_limit(client):
    big = np.zeros((8, 40000), np.float32)  # 1.28 MB > the 1 MiB limit
    i = grpcclient.InferInput("INPUT0", list(big.shape), "FP32")
    i.set_data_from_numpy(big)
    with pytest.raises(InferenceServerException) as e:
        client.infer("simple", [i])
    assert "RESOURCE_EXHAUSTED" in str(e.value)
    _, _, ins = simple_inputs()
    assert client.infer("simple", ins).as_numpy("OUTPUT0") is not None


def test_statistics_index_load_unload(client):
    _, _, ins = simple_inputs()
    client.infer("simple", ins)
    stats = client.get_inference_statistics("simple", as_json=True)["model_stats"][0]
    assert int(stats["inference_count"]) >= 1 and int(stats["execution_count"]) >= 1
    names = {m["name"] for m in client.get_model_repository_index(as_json=True)["models"]}
    assert {"simple", "ident", "other"} <= names
    client.load_model("other")
    assert client.is_model_ready("other")
    client.load_model("other", config=json.dumps({"max_batch_size": 2}))
    assert client.get_model_config("other", as_json=True)["config"]["max_batch_size"] == 2
    client.unload_model("other")
    assert not client.is_model_ready("other")
    with pytest.raises(InferenceServerException, match="NOT_FOUND"):
        client.get_model_metadata("other")


def test_async_infer(client):
    a, b, ins = simple_inputs()
    results = queue.Queue()
    for _ in range(8):
        client.async_infer("simple", ins, callback=lambda result, error: results.put((result, error)))
    for _ in range(8):
        r, e = results.get(timeout=30)
        assert e is None
        np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), a + b)


def test_stream_infer(client):
    a, b, ins = simple_inputs()
    results = queue.Queue()
    client.start_stream(callback=lambda result, error: results.put((result, error)))
    for k in range(5):
        client.async_stream_infer("simple", ins, request_id=str(k))
    client.async_stream_infer("missing_model", ins, request_id="bad")
    got, errors = set(), []
    for _ in range(6):
        r, e = results.get(timeout=30)
        if e is not None:
            errors.append(str(e))
        else:
            np.testing.assert_array_equal(r.as_numpy("OUTPUT1"), a - b)
            got.add(r.get_response().id)
    client.stop_stream()
    assert got == {"0", "1", "2", "3", "4"}
    assert len(errors) == 1 and "unknown model" in errors[0]


def test_aio_client(server):
    import asyncio

    import tritonclient.grpc.aio as aio

    async def main():
        client = aio.InferenceServerClient(server.grpc_url)
        try:
            assert await client.is_server_ready()
            a, b, ins = simple_inputs()
            results = await asyncio.gather(*[client.infer("simple", ins) for _ in range(4)])
            for r in results:
                np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), a + b)
        finally:
            await client.close()

    asyncio.run(main())
