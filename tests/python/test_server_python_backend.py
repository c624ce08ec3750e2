"""The Python backend of kiln serve with the stock tritonclient: model.py
files written for Triton's Python backend (TritonPythonModel with
initialize / execute / finalize on triton_python_backend_utils) serve
pre- and post-processing, an ensemble preprocess (Python) -> classify
(Kiln, ONNX) -> postprocess (Python) runs end to end, model errors come
back clearly, and a crash of the instance's process fails only the
request in flight: the instance restarts and the server keeps serving."""
from __future__ import annotations

import textwrap

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from server_util import KilnServer, _model, kiln_exe, write_model

httpclient = pytest.importorskip("tritonclient.http")
grpcclient = pytest.importorskip("tritonclient.grpc")
from tritonclient.utils import InferenceServerException  # noqa: E402

pytestmark = pytest.mark.skipif(kiln_exe() is None, reason="kiln is not built")

W = np.array([[1.0, -1.0, 0.5], [0.5, 2.0, -1.0], [-1.0, 0.5, 1.5], [2.0, 0.0, -0.5]], np.float32)
LABELS = ["cat", "dog", "bird"]

PREPROCESS = '''
import json
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.model_config = json.loads(args["model_config"])
        cfg = pb_utils.get_output_config_by_name(self.model_config, "FEATURES")
        self.dtype = pb_utils.triton_string_to_numpy(cfg["data_type"])
        assert args["model_name"] == "preprocess" and args["model_version"] == "1"

    def execute(self, requests):
        responses = []
        for request in requests:
            image = pb_utils.get_input_tensor_by_name(request, "IMAGE").as_numpy()
            features = ((image.astype(np.float32) / 255.0) - 0.5) * 2.0
            responses.append(pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor("FEATURES", features.astype(self.dtype))]))
        return responses

    def finalize(self):
        pb_utils.Logger.log_info("preprocess finalized")
'''

POSTPROCESS = '''
import json
import numpy as np
import triton_python_backend_utils as pb_utils

LABELS = {labels!r}


class TritonPythonModel:
    def initialize(self, args):
        self.model_config = json.loads(args["model_config"])

    def execute(self, requests):
        responses = []
        for request in requests:
            logits = pb_utils.get_input_tensor_by_name(request, "LOGITS").as_numpy()
            e = np.exp(logits - logits.max(axis=-1, keepdims=True))
            p = e / e.sum(axis=-1, keepdims=True)
            idx = p.argmax(axis=-1)
            label = np.array([LABELS[i].encode() for i in idx], dtype=np.object_)
            score = pb_utils.Tensor.from_numpy("SCORE", p.max(axis=-1).astype(np.float32))
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("LABEL", label), score]))
        return responses
'''.format(labels=LABELS)

CRASHY = '''
import os
import signal
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "X").as_numpy()
            v = float(x.reshape(-1)[0])
            if v < 0:
                os.kill(os.getpid(), signal.SIGKILL)
            if v == 0:
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError("zero is not allowed")))
                continue
            if v == 1:
                raise ValueError("one is right out")
            if v == 8:
                return []
            if v == 9:
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(f"id={request.request_id()}")))
                continue
            if v == 2:
                responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("Y", x.astype(np.int64))]))
                continue
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("Y", x * 2)]))
        return responses
'''

BAD_INIT = '''
class TritonPythonModel:
    def initialize(self, args):
        raise RuntimeError("cannot find my weights")
    def execute(self, requests):
        return []
'''

UPPER = '''
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            s = pb_utils.get_input_tensor_by_name(r, "TEXT").as_numpy()
            up = np.array([t.decode().upper().encode() for t in s.reshape(-1)], dtype=np.object_).reshape(s.shape)
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("UPPER", up)]))
        return out
'''


# Each request's answer says how many requests its execute() call held, its own rows and its id:
# a dynamic batch must reach execute() as separate requests, as in Triton.
PER_REQUEST = '''
import time
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        time.sleep(0.05)  # let the next requests queue up behind this call
        out = []
        for r in requests:
            x = pb_utils.get_input_tensor_by_name(r, "X").as_numpy()
            if x[0, 0] < 0:  # an error response fails this request alone
                out.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(f"negative request {r.request_id()}")))
                continue
            info = np.array([[len(requests), x.shape[0], int(r.request_id() or -1)]] * x.shape[0], np.int64)
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("Y", x * 2), pb_utils.Tensor("INFO", info)]))
        return out
'''


# Business logic scripting: execute() runs other models of the server (an ONNX model, and a
# model that is missing or given a bad input, whose errors come back as the responses' errors).
BLS = '''
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            x = pb_utils.get_input_tensor_by_name(r, "FEATURES")
            resp = pb_utils.InferenceRequest(model_name="classify", requested_output_names=["LOGITS"],
                                             inputs=[x]).exec()
            if resp.has_error():
                raise pb_utils.TritonModelException(resp.error().message())
            logits = pb_utils.get_output_tensor_by_name(resp, "LOGITS").as_numpy()
            missing = pb_utils.InferenceRequest(model_name="no_such_model", requested_output_names=["Y"],
                                                inputs=[x]).exec()
            bad = pb_utils.InferenceRequest(model_name="classify", requested_output_names=["LOGITS"],
                                            inputs=[pb_utils.Tensor("FEATURES", np.zeros((1, 5), np.float32))]).exec()
            errors = np.array([missing.error().message().encode(), bad.error().message().encode()], dtype=np.object_)
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("LOGITS2", logits * 2),
                                                   pb_utils.Tensor("ERRORS", errors)]))
        return out
'''

# async execute awaiting async_exec: Python (preprocess) then ONNX (classify), chained by hand.
ASYNC_BLS = '''
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    async def execute(self, requests):
        out = []
        for r in requests:
            image = pb_utils.get_input_tensor_by_name(r, "IMAGE")
            pre = await pb_utils.InferenceRequest(model_name="preprocess", requested_output_names=["FEATURES"],
                                                  inputs=[image]).async_exec()
            features = pb_utils.get_output_tensor_by_name(pre, "FEATURES")
            cls = await pb_utils.InferenceRequest(model_name="classify", requested_output_names=["LOGITS"],
                                                  inputs=[features]).async_exec()
            out.append(pb_utils.InferenceResponse([pb_utils.get_output_tensor_by_name(cls, "LOGITS")]))
        return out
'''


# A decoupled model: IN = n answers with n responses OUT = 0..n-1 through the response sender,
# then the final flag; 7 adds an error response; 5 sends from a thread after execute() returns;
# 9 drops its sender without the final flag.
DECOUPLED = '''
import threading
import time
import numpy as np
import triton_python_backend_utils as pb_utils


def send_all(sender, n):
    for i in range(n):
        sender.send(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", np.array([i], np.int32))]))
    if n == 7:
        sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError("seven is an error")))
    sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)


class TritonPythonModel:
    def initialize(self, args):
        self.threads = []

    def execute(self, requests):
        for request in requests:
            n = int(pb_utils.get_input_tensor_by_name(request, "IN").as_numpy().reshape(-1)[0])
            sender = request.get_response_sender()
            if n == 9:
                continue
            if n == 5:
                def later(sender=sender):
                    time.sleep(0.05)
                    send_all(sender, 5)
                t = threading.Thread(target=later)
                t.start()
                self.threads.append(t)
                continue
            send_all(sender, n)
        return None
'''


def python_model(repo, name, source, config):
    d = repo / name / "1"
    d.mkdir(parents=True)
    (d / "model.py").write_text(textwrap.dedent(source))
    (repo / name / "config.pbtxt").write_text(f'backend: "python"\n{config}')


def classify_model():
    w = numpy_helper.from_array(W, "W")
    return _model([helper.make_node("MatMul", ["FEATURES", "W"], ["LOGITS"])],
                  [helper.make_tensor_value_info("FEATURES", TensorProto.FLOAT, [1, 4])],
                  [helper.make_tensor_value_info("LOGITS", TensorProto.FLOAT, [1, 3])], [w])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("py") / "repo"
    python_model(repo, "preprocess", PREPROCESS,
                 'input [ { name: "IMAGE" data_type: TYPE_UINT8 dims: [ 1, 4 ] } ]\n'
                 'output [ { name: "FEATURES" data_type: TYPE_FP32 dims: [ 1, 4 ] } ]\n')
    python_model(repo, "postprocess", POSTPROCESS,
                 'input [ { name: "LOGITS" data_type: TYPE_FP32 dims: [ 1, 3 ] } ]\n'
                 'output [ { name: "LABEL" data_type: TYPE_STRING dims: [ 1 ] },'
                 ' { name: "SCORE" data_type: TYPE_FP32 dims: [ 1 ] } ]\n')
    python_model(repo, "crashy", CRASHY,
                 'input [ { name: "X" data_type: TYPE_FP32 dims: [ 1 ] } ]\n'
                 'output [ { name: "Y" data_type: TYPE_FP32 dims: [ 1 ] } ]\n'
                 'instance_group [ { count: 2 kind: KIND_CPU } ]\n')
    python_model(repo, "bad_init", BAD_INIT,
                 'input [ { name: "X" data_type: TYPE_FP32 dims: [ 1 ] } ]\n'
                 'output [ { name: "Y" data_type: TYPE_FP32 dims: [ 1 ] } ]\n')
    python_model(repo, "syntax_error", "def broken(:\n",
                 'input [ { name: "X" data_type: TYPE_FP32 dims: [ 1 ] } ]\n'
                 'output [ { name: "Y" data_type: TYPE_FP32 dims: [ 1 ] } ]\n')
    python_model(repo, "upper", UPPER,
                 'max_batch_size: 8\ninput [ { name: "TEXT" data_type: TYPE_STRING dims: [ -1 ] } ]\n'
                 'output [ { name: "UPPER" data_type: TYPE_STRING dims: [ -1 ] } ]\n')
    python_model(repo, "per_request", PER_REQUEST,
                 'max_batch_size: 16\ninput [ { name: "X" data_type: TYPE_FP32 dims: [ 2 ] } ]\n'
                 'output [ { name: "Y" data_type: TYPE_FP32 dims: [ 2 ] }, { name: "INFO" data_type: TYPE_INT64 dims: [ 3 ] } ]\n'
                 'dynamic_batching { max_queue_delay_microseconds: 100000 }\n')
    python_model(repo, "bls", BLS,
                 'input [ { name: "FEATURES" data_type: TYPE_FP32 dims: [ 1, 4 ] } ]\n'
                 'output [ { name: "LOGITS2" data_type: TYPE_FP32 dims: [ 1, 3 ] },'
                 ' { name: "ERRORS" data_type: TYPE_STRING dims: [ 2 ] } ]\n')
    python_model(repo, "async_bls", ASYNC_BLS,
                 'input [ { name: "IMAGE" data_type: TYPE_UINT8 dims: [ 1, 4 ] } ]\n'
                 'output [ { name: "LOGITS" data_type: TYPE_FP32 dims: [ 1, 3 ] } ]\n')
    python_model(repo, "decoupled", DECOUPLED,
                 'model_transaction_policy { decoupled: true }\n'
                 'input [ { name: "IN" data_type: TYPE_INT32 dims: [ 1 ] } ]\n'
                 'output [ { name: "OUT" data_type: TYPE_INT32 dims: [ 1 ] } ]\n')
    python_model(repo, "decoupled_batched", DECOUPLED,
                 'max_batch_size: 8\nmodel_transaction_policy { decoupled: true }\n'
                 'input [ { name: "IN" data_type: TYPE_INT32 dims: [ 1 ] } ]\n'
                 'output [ { name: "OUT" data_type: TYPE_INT32 dims: [ 1 ] } ]\n'
                 'dynamic_batching { max_queue_delay_microseconds: 200000 }\n')
    write_model(repo, "classify", classify_model())
    (repo / "classifier" / "1").mkdir(parents=True)
    (repo / "classifier" / "config.pbtxt").write_text('''
platform: "ensemble"
input [ { name: "IMAGE" data_type: TYPE_UINT8 dims: [ 1, 4 ] } ]
output [ { name: "LABEL" data_type: TYPE_STRING dims: [ 1 ] }, { name: "SCORE" data_type: TYPE_FP32 dims: [ 1 ] } ]
ensemble_scheduling { step [
  { model_name: "preprocess" model_version: -1 input_map { key: "IMAGE" value: "IMAGE" }
    output_map { key: "FEATURES" value: "features" } },
  { model_name: "classify" model_version: -1 input_map { key: "FEATURES" value: "features" }
    output_map { key: "LOGITS" value: "logits" } },
  { model_name: "postprocess" model_version: -1 input_map { key: "LOGITS" value: "logits" }
    output_map { key: "LABEL" value: "LABEL" } output_map { key: "SCORE" value: "SCORE" } } ] }
''')
    srv = KilnServer(repo, wait_ready=False)
    yield srv
    assert srv.stop() == 0


def reference(image):
    f = ((image.astype(np.float32) / 255.0) - 0.5) * 2.0
    logits = f @ W
    p = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    return f, LABELS[int(p.argmax())], float(p.max())


def test_preprocess_model(server):
    client = httpclient.InferenceServerClient(server.http_url)
    image = np.array([[0, 64, 128, 255]], np.uint8)
    x = httpclient.InferInput("IMAGE", [1, 4], "UINT8")
    x.set_data_from_numpy(image)
    r = client.infer("preprocess", [x])
    np.testing.assert_allclose(r.as_numpy("FEATURES"), reference(image)[0], rtol=1e-6)


@pytest.mark.parametrize("module", [httpclient, grpcclient], ids=["http", "grpc"])
def test_ensemble_python_kiln_python(server, module):
    client = module.InferenceServerClient(server.http_url if module is httpclient else server.grpc_url)
    rng = np.random.default_rng(0)
    for _ in range(5):
        image = rng.integers(0, 256, (1, 4), dtype=np.uint8)
        x = module.InferInput("IMAGE", [1, 4], "UINT8")
        x.set_data_from_numpy(image)
        r = client.infer("classifier", [x])
        _, label, score = reference(image)
        assert r.as_numpy("LABEL")[0].decode() == label
        assert abs(r.as_numpy("SCORE")[0] - score) < 1e-5


def test_dynamic_batch_reaches_execute_as_separate_requests(server):
    from concurrent.futures import ThreadPoolExecutor

    def call(i):
        client = httpclient.InferenceServerClient(server.http_url)
        rows = 1 + i % 3
        x = httpclient.InferInput("X", [rows, 2], "FP32")
        data = np.full((rows, 2), float(i), np.float32)
        x.set_data_from_numpy(data)
        r = client.infer("per_request", [x], request_id=str(i))
        return i, rows, data, r.as_numpy("Y"), r.as_numpy("INFO")

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, range(16)))
    batched = 0
    for i, rows, data, y, info in results:
        np.testing.assert_array_equal(y, data * 2)  # its own rows, in order
        assert info.shape == (rows, 3) and (info[:, 1] == rows).all() and (info[:, 2] == i).all(), info
        batched += int(info[0, 0] > 1)
    assert batched > 0, "no execute() call held more than one request: batches did not form"


def test_error_response_fails_only_its_request_in_a_batch(server):
    from concurrent.futures import ThreadPoolExecutor

    def call(i):
        client = httpclient.InferenceServerClient(server.http_url)
        value = -1.0 if i % 5 == 0 else float(i)
        x = httpclient.InferInput("X", [1, 2], "FP32")
        x.set_data_from_numpy(np.full((1, 2), value, np.float32))
        try:
            r = client.infer("per_request", [x], request_id=str(i))
            return i, r.as_numpy("Y"), r.as_numpy("INFO"), None
        except InferenceServerException as e:
            return i, None, None, str(e)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, range(20)))
    batched_with_error = 0
    for i, y, info, error in results:
        if i % 5 == 0:
            assert error is not None and f"negative request {i}" in error, (i, error)
        else:
            assert error is None, (i, error)
            np.testing.assert_array_equal(y, np.full((1, 2), 2.0 * i, np.float32))
            assert info[0, 2] == i
            batched_with_error += int(info[0, 0] > 1)
    assert batched_with_error > 0, "no batch formed"


def test_bls_runs_other_models(server):
    client = httpclient.InferenceServerClient(server.http_url)
    features = np.array([[0.5, -1.0, 2.0, 0.25]], np.float32)
    x = httpclient.InferInput("FEATURES", [1, 4], "FP32")
    x.set_data_from_numpy(features)
    r = client.infer("bls", [x])
    np.testing.assert_allclose(r.as_numpy("LOGITS2"), (features @ W) * 2, rtol=1e-5)
    missing, bad = (e.decode() for e in r.as_numpy("ERRORS"))
    assert "no_such_model" in missing
    assert "FEATURES" in bad and "[1,5]" in bad.replace(" ", ""), bad


@pytest.mark.parametrize("module", [httpclient, grpcclient], ids=["http", "grpc"])
def test_async_execute_chains_python_and_onnx_models(server, module):
    client = module.InferenceServerClient(server.http_url if module is httpclient else server.grpc_url)
    image = np.array([[0, 64, 128, 255]], np.uint8)
    x = module.InferInput("IMAGE", [1, 4], "UINT8")
    x.set_data_from_numpy(image)
    r = client.infer("async_bls", [x])
    features, _, _ = reference(image)
    np.testing.assert_allclose(r.as_numpy("LOGITS"), features @ W, rtol=1e-5)


def test_decoupled_model_streams_responses(server):
    import queue

    client = grpcclient.InferenceServerClient(server.grpc_url)
    got = queue.Queue()
    client.start_stream(callback=lambda result, error: got.put((result, error)))
    cases = [(3, False), (2, True), (0, True), (5, False), (7, False), (9, False)]
    for n, empty_final in cases:
        x = grpcclient.InferInput("IN", [1], "INT32")
        x.set_data_from_numpy(np.array([n], np.int32))
        client.async_stream_infer("decoupled", [x], request_id=f"r{n}", enable_empty_final_response=empty_final)
    client.stop_stream()  # waits for the server to finish the stream
    by_id, errors = {}, []
    while not got.empty():
        result, error = got.get()
        if error is not None:
            errors.append(str(error))
            continue
        resp = result.get_response()
        final = resp.parameters["triton_final_response"].bool_param
        value = int(result.as_numpy("OUT")[0]) if resp.outputs else None
        by_id.setdefault(resp.id, []).append((value, final))
    # In order per request; final markers only where the client asked for an empty final response.
    assert by_id["r3"] == [(0, False), (1, False), (2, False)]
    assert by_id["r2"] == [(0, False), (1, False), (None, True)]
    assert by_id["r0"] == [(None, True)]
    assert by_id["r5"] == [(i, False) for i in range(5)]  # sent from a thread after execute() returned
    assert by_id["r7"] == [(i, False) for i in range(7)]
    assert "r9" not in by_id
    assert any("seven is an error" in e for e in errors), errors
    assert any("dropped this request's response sender" in e for e in errors), errors
    assert len(errors) == 2, errors


def test_decoupled_model_with_dynamic_batching(server):
    """Requests batched into one execute() each stream their own responses."""
    import queue

    client = grpcclient.InferenceServerClient(server.grpc_url)
    got = queue.Queue()
    client.start_stream(callback=lambda result, error: got.put((result, error)))
    for n in (2, 3, 1, 4):
        x = grpcclient.InferInput("IN", [1, 1], "INT32")
        x.set_data_from_numpy(np.array([[n]], np.int32))
        client.async_stream_infer("decoupled_batched", [x], request_id=f"b{n}", enable_empty_final_response=True)
    client.stop_stream()
    by_id = {}
    while not got.empty():
        result, error = got.get()
        assert error is None, error.message()
        resp = result.get_response()
        value = result.as_numpy("OUT").reshape(-1).tolist() if resp.outputs else None
        by_id.setdefault(resp.id, []).append(value)
    for n in (2, 3, 1, 4):
        assert by_id[f"b{n}"] == [[i] for i in range(n)] + [None], by_id
    stats = httpclient.InferenceServerClient(server.http_url).get_inference_statistics("decoupled_batched")
    s = stats["model_stats"][0]
    assert int(s["inference_count"]) == 4
    assert int(s["execution_count"]) < 4, "the four requests never shared an execute()"


def test_decoupled_model_refuses_http_and_unary_grpc(server):
    x = httpclient.InferInput("IN", [1], "INT32")
    x.set_data_from_numpy(np.array([2], np.int32))
    with pytest.raises(InferenceServerException, match="decoupled") as e:
        httpclient.InferenceServerClient(server.http_url).infer("decoupled", [x])
    assert e.value.status() == "501" or "501" in str(e.value.status())
    g = grpcclient.InferInput("IN", [1], "INT32")
    g.set_data_from_numpy(np.array([2], np.int32))
    with pytest.raises(InferenceServerException, match="decoupled") as e:
        grpcclient.InferenceServerClient(server.grpc_url).infer("decoupled", [g])
    assert "UNIMPLEMENTED" in str(e.value.status())


def test_string_tensors_and_batching(server):
    client = httpclient.InferenceServerClient(server.http_url)
    text = np.array([[b"hello", b"kiln"], [b"", b"\xc3\xa9t\xc3\xa9"]], dtype=np.object_)
    x = httpclient.InferInput("TEXT", [2, 2], "BYTES")
    x.set_data_from_numpy(text)
    r = client.infer("upper", [x])
    assert r.as_numpy("UPPER").tolist() == [[b"HELLO", b"KILN"], [b"", "ÉTÉ".encode()]]


def crashy(client, value):
    x = httpclient.InferInput("X", [1], "FP32")
    x.set_data_from_numpy(np.array([value], np.float32))
    return client.infer("crashy", [x])


def test_model_errors_are_reported(server):
    client = httpclient.InferenceServerClient(server.http_url)
    with pytest.raises(InferenceServerException, match="zero is not allowed"):
        crashy(client, 0.0)
    with pytest.raises(InferenceServerException, match="ValueError: one is right out"):
        crashy(client, 1.0)
    with pytest.raises(InferenceServerException, match="as INT64 but its config says FP32"):
        crashy(client, 2.0)
    with pytest.raises(InferenceServerException, match="returned 0 responses for 1 requests"):
        crashy(client, 8.0)
    x = httpclient.InferInput("X", [1], "FP32")
    x.set_data_from_numpy(np.array([9.0], np.float32))
    with pytest.raises(InferenceServerException, match="id=req-42"):
        client.infer("crashy", [x], request_id="req-42")
    assert crashy(client, 3.0).as_numpy("Y")[0] == 6.0


def test_crash_restarts_the_instance_only(server):
    client = httpclient.InferenceServerClient(server.http_url)
    for _ in range(2):  # each of the two instances may take the fatal request
        with pytest.raises(InferenceServerException, match="stopped while executing.*signal 9"):
            crashy(client, -1.0)
    for v in (4.0, 5.0, 6.0, 7.0):
        assert crashy(client, v).as_numpy("Y")[0] == 2 * v
    assert client.is_server_live()
    x = httpclient.InferInput("IMAGE", [1, 4], "UINT8")
    x.set_data_from_numpy(np.zeros((1, 4), np.uint8))
    assert client.infer("classifier", [x]).as_numpy("LABEL") is not None


def test_failed_initialize_leaves_the_rest_serving(server):
    client = httpclient.InferenceServerClient(server.http_url)
    index = {m["name"]: m for m in client.get_model_repository_index()}
    assert index["bad_init"]["state"] == "UNAVAILABLE"
    assert "initialize() failed: RuntimeError: cannot find my weights" in index["bad_init"]["reason"]
    assert index["syntax_error"]["state"] == "UNAVAILABLE" and "SyntaxError" in index["syntax_error"]["reason"]
    assert client.is_model_ready("preprocess") and client.is_model_ready("classifier")
