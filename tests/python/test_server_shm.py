"""The system shared-memory extension of kiln serve with the stock
tritonclient and tritonclient.utils.shared_memory: register / status /
unregister over HTTP and gRPC, inputs and outputs in shared memory (with
offsets), and hostile offsets and sizes answered with clear errors while
the server keeps serving."""
from __future__ import annotations

import http.client
import json
import os

import numpy as np
import pytest

from server_util import KilnServer, add_sub_model, kiln_exe, write_model

httpclient = pytest.importorskip("tritonclient.http")
grpcclient = pytest.importorskip("tritonclient.grpc")
shm = pytest.importorskip("tritonclient.utils.shared_memory")
from tritonclient.utils import InferenceServerException  # noqa: E402

pytestmark = pytest.mark.skipif(kiln_exe() is None, reason="kiln is not built")

NBYTES = 16 * 4


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    repo = tmp_path_factory.mktemp("shm") / "repo"
    write_model(repo, "simple", add_sub_model(), "max_batch_size: 8\n")
    return repo


@pytest.fixture(scope="module")
def server(repo):
    srv = KilnServer(repo, "--allow-client-shm", "true")
    yield srv
    assert srv.stop() == 0


@pytest.fixture
def regions():
    """An input region holding INPUT0 then INPUT1, and an output region for both outputs."""
    tag = os.getpid()
    ih = shm.create_shared_memory_region("in_data", f"/kiln_in_{tag}", 2 * NBYTES)
    oh = shm.create_shared_memory_region("out_data", f"/kiln_out_{tag}", 2 * NBYTES)
    a = np.arange(16, dtype=np.float32).reshape(1, 16)
    b = np.full((1, 16), 5.0, np.float32)
    shm.set_shared_memory_region(ih, [a, b])
    yield {"in": (ih, f"/kiln_in_{tag}"), "out": (oh, f"/kiln_out_{tag}"), "a": a, "b": b}
    shm.destroy_shared_memory_region(ih)
    shm.destroy_shared_memory_region(oh)


@pytest.mark.parametrize("module", [httpclient, grpcclient], ids=["http", "grpc"])
def test_inputs_and_outputs_in_shared_memory(server, regions, module):
    client = module.InferenceServerClient(server.http_url if module is httpclient else server.grpc_url)
    client.unregister_system_shared_memory()
    client.register_system_shared_memory("in_data", regions["in"][1], 2 * NBYTES)
    client.register_system_shared_memory("out_data", regions["out"][1], 2 * NBYTES)
    status = client.get_system_shared_memory_status()
    if module is httpclient:
        names = {r["name"]: r for r in status}
        assert names["in_data"]["byte_size"] == 2 * NBYTES and names["in_data"]["key"] == regions["in"][1]
    else:
        names = dict(status.regions)
        assert names["in_data"].byte_size == 2 * NBYTES
    assert set(names) == {"in_data", "out_data"}

    ins = [module.InferInput("INPUT0", [1, 16], "FP32"), module.InferInput("INPUT1", [1, 16], "FP32")]
    ins[0].set_shared_memory("in_data", NBYTES)
    ins[1].set_shared_memory("in_data", NBYTES, offset=NBYTES)
    outs = [module.InferRequestedOutput("OUTPUT0"), module.InferRequestedOutput("OUTPUT1")]
    outs[0].set_shared_memory("out_data", NBYTES)
    outs[1].set_shared_memory("out_data", NBYTES, offset=NBYTES)
    result = client.infer("simple", ins, outputs=outs)
    out0 = shm.get_contents_as_numpy(regions["out"][0], np.float32, [1, 16])
    out1 = shm.get_contents_as_numpy(regions["out"][0], np.float32, [1, 16], offset=NBYTES)
    np.testing.assert_array_equal(out0, regions["a"] + regions["b"])
    np.testing.assert_array_equal(out1, regions["a"] - regions["b"])
    meta = result.get_output("OUTPUT0")
    if module is httpclient:
        assert meta["parameters"]["shared_memory_region"] == "out_data" and "data" not in meta
    else:
        assert meta.parameters["shared_memory_region"].string_param == "out_data"

    # Input in shared memory, output in the response.
    result = client.infer("simple", ins, outputs=[module.InferRequestedOutput("OUTPUT0")])
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), regions["a"] + regions["b"])

    client.unregister_system_shared_memory("in_data")
    status = client.get_system_shared_memory_status()
    remaining = [r["name"] for r in status] if module is httpclient else list(status.regions)
    assert remaining == ["out_data"]
    with pytest.raises(InferenceServerException, match="in_data"):
        client.infer("simple", ins)
    client.unregister_system_shared_memory()
    status = client.get_system_shared_memory_status()
    assert (status == [] if module is httpclient else len(status.regions) == 0)


def post(server, path, body):
    conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=10)
    conn.request("POST", path, body=json.dumps(body) if not isinstance(body, str) else body)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, json.loads(data) if data else None


def test_hostile_regions_and_offsets(server, regions):
    client = httpclient.InferenceServerClient(server.http_url)
    client.unregister_system_shared_memory()
    key = regions["in"][1]
    # Registration beyond the end of the object, at a huge offset, of size 0, of a missing key, twice.
    for kwargs, msg in [({"byte_size": 4 * NBYTES}, "beyond the end"),
                        ({"byte_size": 8, "offset": 2**63}, "too large|beyond"),
                        ({"byte_size": 0}, "byte_size must be > 0")]:
        with pytest.raises(InferenceServerException, match=msg):
            client.register_system_shared_memory("r", key, **kwargs)
    with pytest.raises(InferenceServerException, match="unable to open"):
        client.register_system_shared_memory("r", "/kiln_no_such_key", 8)
    with pytest.raises(InferenceServerException, match="unable to open|Invalid"):
        client.register_system_shared_memory("r", "/../../etc/passwd", 8)
    client.register_system_shared_memory("in_data", key, 2 * NBYTES)
    with pytest.raises(InferenceServerException, match="already"):
        client.register_system_shared_memory("in_data", key, 2 * NBYTES)
    for body, msg in [({"key": key, "byte_size": -1}, "non-negative"), ({"byte_size": 8}, "key"), ("[", "JSON")]:
        status, err = post(server, "/v2/systemsharedmemory/region/x/register", body)
        assert status == 400 and msg in err["error"], err

    def infer_with(offset, size, region="in_data", out=None):
        ins = [httpclient.InferInput("INPUT0", [1, 16], "FP32"), httpclient.InferInput("INPUT1", [1, 16], "FP32")]
        ins[0].set_shared_memory(region, size, offset=offset)
        ins[1].set_data_from_numpy(regions["b"])
        return client.infer("simple", ins, outputs=out)

    with pytest.raises(InferenceServerException, match="outside region"):
        infer_with(NBYTES + 4, NBYTES)
    with pytest.raises(InferenceServerException, match="outside region"):
        infer_with(2**64 - 8, 16)
    with pytest.raises(InferenceServerException, match="bytes|size"):
        infer_with(0, NBYTES - 4)  # fewer bytes than the shape needs
    with pytest.raises(InferenceServerException, match="unable to find"):
        infer_with(0, NBYTES, region="nope")
    # An output region too small for the output, and one placed beyond its region.
    client.register_system_shared_memory("small_out", regions["out"][1], 8)
    for size, offset, msg in [(8, 0, "needs 64 bytes"), (NBYTES, 4, "outside region")]:
        o = httpclient.InferRequestedOutput("OUTPUT0")
        o.set_shared_memory("small_out", size, offset=offset)
        with pytest.raises(InferenceServerException, match=msg):
            infer_with(0, NBYTES, out=[o])
    # Raw JSON: negative offset, a size without a region.
    body = {"inputs": [{"name": "INPUT0", "shape": [1, 16], "datatype": "FP32",
                        "parameters": {"shared_memory_region": "in_data", "shared_memory_byte_size": 64,
                                       "shared_memory_offset": -64}},
                       {"name": "INPUT1", "shape": [1, 16], "datatype": "FP32", "data": [1] * 16}]}
    status, err = post(server, "/v2/models/simple/infer", body)
    assert status == 400 and "shared_memory_offset" in err["error"]
    body["inputs"][0]["parameters"] = {"shared_memory_byte_size": 64}
    status, err = post(server, "/v2/models/simple/infer", body)
    assert status == 400 and "need shared_memory_region" in err["error"]
    with pytest.raises(InferenceServerException, match="unable to find"):
        client.get_system_shared_memory_status("nope")
    with pytest.raises(InferenceServerException, match="unable to find"):
        client.unregister_system_shared_memory("nope")
    # CUDA shared memory is refused clearly.
    with pytest.raises(InferenceServerException, match="CUDA shared memory is not supported"):
        client.get_cuda_shared_memory_status()
    gclient = grpcclient.InferenceServerClient(server.grpc_url)
    with pytest.raises(InferenceServerException, match="CUDA shared memory is not supported"):
        gclient.get_cuda_shared_memory_status()
    client.unregister_system_shared_memory()
    assert client.is_server_live() and client.is_server_ready()


def test_disabled_by_default(repo, regions):
    srv = KilnServer(repo)
    try:
        client = httpclient.InferenceServerClient(srv.http_url)
        with pytest.raises(InferenceServerException, match="--allow-client-shm"):
            client.register_system_shared_memory("in_data", regions["in"][1], 2 * NBYTES)
    finally:
        assert srv.stop() == 0
