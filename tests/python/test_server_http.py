"""kiln serve over HTTP/REST with the stock tritonclient: every endpoint,
every datatype (binary and JSON), compression, the repository extension and
hostile requests (each a 4xx with a clear message while the server keeps
serving)."""
from __future__ import annotations

import gzip
import http.client
import json
import socket
import struct
import time
import zlib

import ml_dtypes
import numpy as np
import pytest

from server_util import DATATYPES, KilnServer, add_sub_model, identity_model, kiln_exe, write_model

tritonclient_http = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402

SIMPLE_CONFIG = """
name: "simple"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 16 ] }, { name: "INPUT1" data_type: TYPE_FP32 dims: [ 16 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 16 ] }, { name: "OUTPUT1" data_type: TYPE_FP32 dims: [ 16 ] } ]
dynamic_batching { }
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if kiln_exe() is None:
        pytest.skip("kiln is not built")
    repo = tmp_path_factory.mktemp("http") / "repo"
    write_model(repo, "simple", add_sub_model(), SIMPLE_CONFIG)
    write_model(repo, "ident", identity_model(list(DATATYPES)))  # no config: auto-complete
    write_model(repo, "nobatch", add_sub_model(batch=False), versions=(1, 2))
    write_model(repo, "tf_model", add_sub_model(), 'platform: "tensorflow_savedmodel"\n')
    srv = KilnServer(repo, "--model-control-mode", "explicit", "--load-model", "simple", "--load-model", "ident",
                     "--load-model", "nobatch", "--max-request-size", str(1 << 20), wait_ready=False)
    yield srv
    assert srv.stop() == 0


@pytest.fixture
def client(server):
    return tritonclient_http.InferenceServerClient(server.http_url)


def simple_inputs(batch=1, binary=True):
    a = np.arange(16 * batch, dtype=np.float32).reshape(batch, 16)
    b = np.ones((batch, 16), np.float32)
    ins = [tritonclient_http.InferInput("INPUT0", [batch, 16], "FP32"),
           tritonclient_http.InferInput("INPUT1", [batch, 16], "FP32")]
    ins[0].set_data_from_numpy(a, binary_data=binary)
    ins[1].set_data_from_numpy(b, binary_data=binary)
    return a, b, ins


def raw(server, method, path, body=b"", headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=30)
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data, dict(r.getheaders())


def test_health_and_metadata(client):
    assert client.is_server_live()
    assert client.is_model_ready("simple")
    assert not client.is_model_ready("does_not_exist")
    md = client.get_server_metadata()
    assert "binary_tensor_data" in md["extensions"] and "model_repository" in md["extensions"]
    mm = client.get_model_metadata("simple")
    assert mm["platform"] == "onnxruntime_onnx" and mm["versions"] == ["1"]
    assert mm["inputs"][0] == {"name": "INPUT0", "datatype": "FP32", "shape": [-1, 16]}
    nb = client.get_model_metadata("nobatch")
    assert nb["inputs"][0]["shape"] == [16] and nb["versions"] == ["2"]  # latest 1 by default
    assert client.get_model_metadata("nobatch", model_version="2")["name"] == "nobatch"


def test_model_config_is_completed(client):
    cfg = client.get_model_config("ident")
    assert cfg["max_batch_size"] == 4 and "dynamic_batching" in cfg
    assert {i["name"]: i["data_type"] for i in cfg["input"]}["IN_BYTES"] == "TYPE_STRING"
    assert cfg["input"][0]["dims"] == [-1]
    assert client.get_model_config("simple")["max_batch_size"] == 8


@pytest.mark.parametrize("binary", [True, False])
def test_infer_simple(client, binary):
    a, b, ins = simple_inputs(batch=3, binary=binary)
    outs = [tritonclient_http.InferRequestedOutput("OUTPUT1", binary_data=binary),
            tritonclient_http.InferRequestedOutput("OUTPUT0", binary_data=binary)]
    r = client.infer("simple", ins, outputs=outs, request_id="req-7")
    np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(r.as_numpy("OUTPUT1"), a - b)
    resp = r.get_response()
    assert resp["id"] == "req-7" and resp["model_version"] == "1"
    assert [o["name"] for o in resp["outputs"]] == ["OUTPUT1", "OUTPUT0"]


def all_type_inputs(binary):
    rng = np.random.default_rng(0)
    arrays = {}
    for dt in DATATYPES:
        if dt == "BYTES":
            arr = np.array([[b"hello", b"", b"w\x00rld\xff"]], dtype=object)
            if not binary:
                arr = np.array([["hello", "", "wörld"]], dtype=object)
        elif dt == "BOOL":
            arr = np.array([[True, False, True]])
        elif dt == "BF16":
            arr = np.array([[1.5, -2.25, 3e10]], dtype=ml_dtypes.bfloat16)
        elif dt in ("FP16", "FP32", "FP64"):
            arr = rng.standard_normal((1, 3)).astype({"FP16": np.float16, "FP32": np.float32, "FP64": np.float64}[dt])
        else:
            np_type = np.dtype(dt.lower())
            info = np.iinfo(np_type)
            arr = np.array([[info.min, info.max, 7]], dtype=np_type)
        arrays[dt] = arr
    return arrays


def test_every_datatype_binary(client):
    arrays = all_type_inputs(binary=True)
    ins = []
    for dt, arr in arrays.items():
        i = tritonclient_http.InferInput(f"IN_{dt}", list(arr.shape), dt)
        i.set_data_from_numpy(arr, binary_data=True)
        ins.append(i)
    r = client.infer("ident", ins)  # no outputs requested: binary_data_output
    for dt, arr in arrays.items():
        out = r.as_numpy(f"OUT_{dt}")
        assert out.shape == arr.shape, dt
        if dt == "BYTES":
            assert out.tolist() == arr.tolist()
        else:
            np.testing.assert_array_equal(out.astype(np.float64) if dt == "BF16" else out,
                                          arr.astype(np.float64) if dt == "BF16" else arr, err_msg=dt)


def test_every_datatype_json(client):
    arrays = all_type_inputs(binary=False)
    ins = []
    for dt, arr in arrays.items():
        i = tritonclient_http.InferInput(f"IN_{dt}", list(arr.shape), dt)
        if dt in ("FP16", "BF16"):
            i.set_data_from_numpy(arr, binary_data=True)  # tritonclient only sends these as binary
        else:
            i.set_data_from_numpy(arr, binary_data=False)
        ins.append(i)
    outs = [tritonclient_http.InferRequestedOutput(f"OUT_{dt}", binary_data=False) for dt in arrays]
    r = client.infer("ident", ins, outputs=outs)
    for dt, arr in arrays.items():
        out = r.as_numpy(f"OUT_{dt}")
        if dt == "BYTES":
            assert [x.decode() if isinstance(x, bytes) else x for x in out.ravel()] == list(arr.ravel())
        else:
            np.testing.assert_allclose(out.astype(np.float64), arr.astype(np.float64), rtol=1e-2, err_msg=dt)


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_compression(client, algorithm):
    a, b, ins = simple_inputs(batch=2)
    r = client.infer("simple", ins, request_compression_algorithm=algorithm,
                     response_compression_algorithm=algorithm)
    np.testing.assert_array_equal(r.as_numpy("OUTPUT0"), a + b)


def test_raw_compressed_body_and_encoding_errors(server):
    body = json.dumps({"inputs": [
        {"name": "INPUT0", "shape": [1, 16], "datatype": "FP32", "data": [1.0] * 16},
        {"name": "INPUT1", "shape": [1, 16], "datatype": "FP32", "data": [2.0] * 16}]}).encode()
    status, data, headers = raw(server, "POST", "/v2/models/simple/infer", zlib.compress(body),
                                {"Content-Encoding": "deflate", "Accept-Encoding": "gzip"})
    assert status == 200 and headers.get("Content-Encoding") == "gzip"
    out = json.loads(gzip.decompress(data))
    assert out["outputs"][0]["data"] == [3.0] * 16
    status, data, _ = raw(server, "POST", "/v2/models/simple/infer", body, {"Content-Encoding": "br"})
    assert status == 501 and "Unsupported compression" in json.loads(data)["error"]
    status, data, _ = raw(server, "POST", "/v2/models/simple/infer", b"\x1f\x8b\x08garbage",
                          {"Content-Encoding": "gzip"})
    assert status == 400 and "decompress" in json.loads(data)["error"]
    bomb = gzip.compress(b"\0" * (4 << 20))  # 4 MiB inflated, limit is 1 MiB
    status, data, _ = raw(server, "POST", "/v2/models/simple/infer", bomb, {"Content-Encoding": "gzip"})
    assert status == 400 and "limit" in json.loads(data)["error"]


def test_raw_binary_request(server):
    x = np.arange(16, dtype=np.float32)
    # A model with two inputs cannot take a raw body.
    status, data, _ = raw(server, "POST", "/v2/models/simple/infer", x.tobytes(), {"Inference-Header-Content-Length": "0"})
    assert status == 400 and "exactly one input" in json.loads(data)["error"]


def test_statistics_and_repository_index(client):
    _, _, ins = simple_inputs()
    client.infer("simple", ins)
    stats = client.get_inference_statistics("simple")["model_stats"][0]
    assert stats["name"] == "simple" and stats["inference_count"] >= 1
    assert stats["inference_stats"]["success"]["count"] >= 1
    assert stats["inference_stats"]["compute_infer"]["ns"] > 0
    all_stats = client.get_inference_statistics()
    assert {s["name"] for s in all_stats["model_stats"]} >= {"simple", "ident", "nobatch"}
    index = {(m["name"], m.get("state")) for m in client.get_model_repository_index()}
    assert ("simple", "READY") in index and ("tf_model", None) in index


def test_load_unload_and_errors(client):
    with pytest.raises(InferenceServerException, match="tensorflow_savedmodel"):
        client.load_model("tf_model")
    index = {m["name"]: m for m in client.get_model_repository_index()}
    assert index["tf_model"]["state"] == "UNAVAILABLE" and "Kiln serves ONNX" in index["tf_model"]["reason"]
    client.unload_model("nobatch")
    assert not client.is_model_ready("nobatch")
    client.load_model("nobatch")
    assert client.is_model_ready("nobatch")
    # A config override (JSON) replaces config.pbtxt: serve every version.
    client.load_model("nobatch", config=json.dumps({"platform": "onnxruntime_onnx", "version_policy": {"all": {}}}))
    assert client.get_model_metadata("nobatch")["versions"] == ["1", "2"]
    with pytest.raises(InferenceServerException, match="no model folder"):
        client.load_model("missing_model")


def test_unknown_model_and_version(server, client):
    _, _, ins = simple_inputs()
    with pytest.raises(InferenceServerException) as e:
        client.infer("nope", ins)
    assert e.value.status() == "404" and "unknown model" in e.value.message()
    with pytest.raises(InferenceServerException) as e:
        client.infer("simple", ins, model_version="9")
    assert e.value.status() == "404"
    status, data, _ = raw(server, "GET", "/v2/models/simple/versions/abc")
    assert status == 400 and "not a positive integer" in json.loads(data)["error"]


def test_path_like_model_names(server):
    for name in ("..%2F..%2Fetc", "a%2Fb", "%2E%2E", "x%00y"):
        status, data, _ = raw(server, "GET", f"/v2/models/{name}")
        assert status == 400, name
        assert "model name" in json.loads(data)["error"], name
    status, data, _ = raw(server, "POST", "/v2/repository/models/..%2Fsimple/load", b"{}")
    assert status == 400


HOSTILE = [
    (b"{not json", {}, 400, "failed to parse"),
    (b"[]", {}, 400, "JSON object"),
    (b'{"inputs": 5}', {}, 400, "'inputs' array"),
    (json.dumps({"inputs": [{"name": "INPUT0", "shape": [1, 16], "datatype": "FP32", "data": [1.0] * 15}]}).encode(),
     {}, 400, "needs 16 elements"),
    (json.dumps({"inputs": [{"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "data": [1] * 16},
                            {"name": "INPUT1", "shape": [1, 16], "datatype": "FP32", "data": [1.0] * 16}]}).encode(),
     {}, 400, "data-type"),
    (json.dumps({"inputs": [{"name": "INPUT0", "shape": [1, 15], "datatype": "FP32", "data": [1.0] * 15},
                            {"name": "INPUT1", "shape": [1, 15], "datatype": "FP32", "data": [1.0] * 15}]}).encode(),
     {}, 400, "unexpected shape"),
    (json.dumps({"inputs": [{"name": "INPUT0", "shape": [99, 16], "datatype": "FP32", "data": [1.0] * 1584},
                            {"name": "INPUT1", "shape": [99, 16], "datatype": "FP32", "data": [1.0] * 1584}]}).encode(),
     {}, 400, "batch-size must be <= 8"),
    (json.dumps({"inputs": [{"name": "INPUT0", "shape": [1 << 40, 1 << 30], "datatype": "FP32", "data": [1.0]}]}).encode(),
     {}, 400, "too large"),
    (json.dumps({"inputs": [{"name": "INPUT0", "shape": [100000, 100000], "datatype": "FP32", "data": [1.0]}]}).encode(),
     {}, 400, "needs 10000000000 elements"),
    (json.dumps({"inputs": [{"name": "BOGUS", "shape": [1], "datatype": "FP32", "data": [1.0]}]}).encode(),
     {}, 400, "unexpected inference input"),
    (json.dumps({"inputs": [{"name": "INPUT0", "shape": [1, 16], "datatype": "FP99", "data": [1.0]}]}).encode(),
     {}, 400, "unknown datatype"),
    (json.dumps({"inputs": [], "parameters": {"triton_x": 1}}).encode(), {}, 400, "reserved"),
]


@pytest.mark.parametrize("body,headers,status,message", HOSTILE)
def test_hostile_json(server, body, headers, status, message):
    got, data, hdrs = raw(server, "POST", "/v2/models/simple/infer", body, headers)
    assert got == status, data
    assert hdrs.get("Content-Type") == "application/json"
    assert message in json.loads(data)["error"]


def binary_body(declared_size, actual_bytes, header_length=None):
    header = json.dumps({"inputs": [
        {"name": "INPUT0", "shape": [1, 16], "datatype": "FP32", "parameters": {"binary_data_size": declared_size}},
        {"name": "INPUT1", "shape": [1, 16], "datatype": "FP32", "data": [1.0] * 16}]}).encode()
    hl = len(header) if header_length is None else header_length
    return header + actual_bytes, {"Inference-Header-Content-Length": str(hl)}


@pytest.mark.parametrize("declared,actual,header_length,message", [
    (64, b"\0" * 32, None, "truncated"),               # truncated binary data
    (32, b"\0" * 32, None, "needs 64 bytes"),          # declared size does not match the shape
    (64, b"\0" * 80, None, "holds 80 bytes"),          # extra bytes after the tensors
    (1 << 60, b"\0" * 64, None, "truncated"),          # huge declared size
    (64, b"\0" * 64, 1 << 40, "larger than the body"),  # header length beyond the body
    (64, b"\0" * 64, "abc", "non-negative integer"),
])
def test_hostile_binary(server, declared, actual, header_length, message):
    body, headers = binary_body(declared, actual, header_length)
    status, data, _ = raw(server, "POST", "/v2/models/simple/infer", body, headers)
    assert status == 400, data
    assert message in json.loads(data)["error"]


def test_bytes_truncated_prefix(server):
    header = json.dumps({"inputs": [{"name": "IN_BYTES", "shape": [1, 2], "datatype": "BYTES",
                                     "parameters": {"binary_data_size": 9}}]}).encode()
    body = header + struct.pack("<I", 3) + b"abc" + b"\x05\x00"
    status, data, _ = raw(server, "POST", "/v2/models/ident/infer", body,
                          {"Inference-Header-Content-Length": str(len(header))})
    assert status == 400 and "truncated" in json.loads(data)["error"]


def test_oversized_body_and_bad_routes(server, client):
    # The server answers as soon as it sees the declared length, before the body arrives.
    s = socket.create_connection(("127.0.0.1", server.http_port), timeout=30)
    s.sendall(b"POST /v2/models/simple/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (2 << 20))
    reply = b""
    while b"}" not in reply:
        chunk = s.recv(4096)
        if not chunk:
            break
        reply += chunk
    s.close()
    assert reply.startswith(b"HTTP/1.1 413") and b"limit" in reply, reply
    assert raw(server, "GET", "/v2/nothing")[0] == 404
    assert raw(server, "DELETE", "/v2/models/simple")[0] == 405
    assert raw(server, "GET", "/v2/models/simple/infer")[0] == 405
    _, _, ins = simple_inputs()
    assert client.infer("simple", ins).as_numpy("OUTPUT0") is not None  # still serving


def test_slow_and_dropped_clients(server, client):
    # A client that sends half a request and stalls, and one that disconnects mid-body.
    slow = socket.create_connection(("127.0.0.1", server.http_port))
    slow.sendall(b"POST /v2/models/simple/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"inp")
    dropped = socket.create_connection(("127.0.0.1", server.http_port))
    dropped.sendall(b"POST /v2/models/simple/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"a" * 500)
    dropped.close()
    garbage = socket.create_connection(("127.0.0.1", server.http_port))
    garbage.sendall(b"\x00\x01\x02 not http at all\r\n\r\n")
    assert garbage.recv(100).startswith(b"HTTP/1.1 400")
    garbage.close()
    a, b, ins = simple_inputs()
    t = time.time()
    np.testing.assert_array_equal(client.infer("simple", ins).as_numpy("OUTPUT0"), a + b)
    assert time.time() - t < 5
    slow.close()


def test_async_client(server):
    client = tritonclient_http.InferenceServerClient(server.http_url, concurrency=4)
    a, b, ins = simple_inputs()
    futures = [client.async_infer("simple", ins) for _ in range(8)]
    for f in futures:
        np.testing.assert_array_equal(f.get_result().as_numpy("OUTPUT0"), a + b)
    client.close()


def test_aio_client(server):
    import asyncio

    import tritonclient.http.aio as aio

    async def main():
        client = aio.InferenceServerClient(server.http_url)
        try:
            assert await client.is_server_live()
            a, b, ins = simple_inputs()
            results = await asyncio.gather(*[client.infer("simple", ins) for _ in range(4)])
            for r in results:
                np.testing.assert_array_equal(r.as_numpy("OUTPUT1"), a - b)
            assert (await client.get_model_metadata("simple"))["name"] == "simple"
        finally:
            await client.close()

    asyncio.run(main())
