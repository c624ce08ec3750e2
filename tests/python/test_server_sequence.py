"""Stateful models through kiln serve's sequence batcher, with the stock
tritonclient: an accumulator on implicit state (direct and oldest
strategies, control inputs START/END/READY/CORRID, integer and string
correlation ids, HTTP and gRPC streaming), slots and the backlog, the idle
timeout, hostile sequence requests, and an ONNX LSTM whose state
(initial_h / initial_c) is carried between chunks: streaming a sequence in
chunks gives the same outputs as running it whole."""
from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from server_util import KilnServer, _model, kiln_exe, write_model

httpclient = pytest.importorskip("tritonclient.http")
grpcclient = pytest.importorskip("tritonclient.grpc")
from tritonclient.utils import InferenceServerException  # noqa: E402

pytestmark = pytest.mark.skipif(kiln_exe() is None, reason="kiln is not built")

HIDDEN, FEATURES = 8, 3


def accumulator_model(corrid_type=TensorProto.UINT64):
    """OUTPUT = ACC_IN + INPUT (state ACC_IN -> ACC_OUT); the control inputs are echoed."""
    vi = helper.make_tensor_value_info
    b = ["batch", 1]
    nodes = [
        helper.make_node("Add", ["ACC_IN", "INPUT"], ["OUTPUT"]),
        helper.make_node("Identity", ["OUTPUT"], ["ACC_OUT"]),
        helper.make_node("Identity", ["START"], ["START_OUT"]),
        helper.make_node("Identity", ["END"], ["END_OUT"]),
        helper.make_node("Identity", ["READY"], ["READY_OUT"]),
        helper.make_node("Identity", ["CORRID"], ["CORRID_OUT"]),
    ]
    ins = [vi("INPUT", TensorProto.FLOAT, b), vi("ACC_IN", TensorProto.FLOAT, b), vi("START", TensorProto.FLOAT, b),
           vi("END", TensorProto.INT32, b), vi("READY", TensorProto.BOOL, b), vi("CORRID", corrid_type, b)]
    outs = [vi("OUTPUT", TensorProto.FLOAT, b), vi("ACC_OUT", TensorProto.FLOAT, b),
            vi("START_OUT", TensorProto.FLOAT, b), vi("END_OUT", TensorProto.INT32, b),
            vi("READY_OUT", TensorProto.BOOL, b), vi("CORRID_OUT", corrid_type, b)]
    return _model(nodes, ins, outs)


def accumulator_config(strategy="", idle_us=2_000_000, max_batch=4, corrid="TYPE_UINT64", instances=1):
    return f"""
max_batch_size: {max_batch}
input [ {{ name: "INPUT" data_type: TYPE_FP32 dims: [ 1 ] }} ]
instance_group [ {{ count: {instances} kind: KIND_CPU }} ]
sequence_batching {{
  max_sequence_idle_microseconds: {idle_us}
  {strategy}
  control_input [
    {{ name: "START" control [ {{ kind: CONTROL_SEQUENCE_START fp32_false_true: [ 0, 1 ] }} ] }},
    {{ name: "END" control [ {{ kind: CONTROL_SEQUENCE_END int32_false_true: [ 0, 1 ] }} ] }},
    {{ name: "READY" control [ {{ kind: CONTROL_SEQUENCE_READY bool_false_true: [ false, true ] }} ] }},
    {{ name: "CORRID" control [ {{ kind: CONTROL_SEQUENCE_CORRID data_type: {corrid} }} ] }}
  ]
  state [ {{ input_name: "ACC_IN" output_name: "ACC_OUT" data_type: TYPE_FP32 dims: [ 1 ]
            initial_state {{ data_type: TYPE_FP32 dims: [ 1 ] zero_data: true name: "zero" }} }} ]
}}
"""


def lstm_model():
    """ONNX LSTM over X [seq, 1, FEATURES] with initial_h / initial_c [1, 1, HIDDEN] from implicit state."""
    rng = np.random.default_rng(7)
    w = numpy_helper.from_array(rng.normal(0, 0.5, (1, 4 * HIDDEN, FEATURES)).astype(np.float32), "W")
    r = numpy_helper.from_array(rng.normal(0, 0.5, (1, 4 * HIDDEN, HIDDEN)).astype(np.float32), "R")
    bias = numpy_helper.from_array(rng.normal(0, 0.1, (1, 8 * HIDDEN)).astype(np.float32), "B")
    vi = helper.make_tensor_value_info
    node = helper.make_node("LSTM", ["X", "W", "R", "B", "", "H_IN", "C_IN"], ["Y", "H_OUT", "C_OUT"],
                            hidden_size=HIDDEN)
    return _model([node],
                  [vi("X", TensorProto.FLOAT, ["seq", 1, FEATURES]), vi("H_IN", TensorProto.FLOAT, [1, 1, HIDDEN]),
                   vi("C_IN", TensorProto.FLOAT, [1, 1, HIDDEN])],
                  [vi("Y", TensorProto.FLOAT, ["seq", 1, 1, HIDDEN]), vi("H_OUT", TensorProto.FLOAT, [1, 1, HIDDEN]),
                   vi("C_OUT", TensorProto.FLOAT, [1, 1, HIDDEN])],
                  [w, r, bias])


LSTM_CONFIG = f"""
max_batch_size: 0
input [ {{ name: "X" data_type: TYPE_FP32 dims: [ -1, 1, {FEATURES} ] }} ]
output [ {{ name: "Y" data_type: TYPE_FP32 dims: [ -1, 1, 1, {HIDDEN} ] }} ]
sequence_batching {{
  state [ {{ input_name: "H_IN" output_name: "H_OUT" data_type: TYPE_FP32 dims: [ 1, 1, {HIDDEN} ] }},
          {{ input_name: "C_IN" output_name: "C_OUT" data_type: TYPE_FP32 dims: [ 1, 1, {HIDDEN} ] }} ]
}}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    repo = tmp_path_factory.mktemp("seq") / "repo"
    write_model(repo, "acc", accumulator_model(), accumulator_config("direct { }"))
    write_model(repo, "acc_oldest", accumulator_model(),
                accumulator_config("oldest { max_candidate_sequences: 8 preferred_batch_size: [ 4 ] "
                                   "max_queue_delay_microseconds: 20000 }"))
    write_model(repo, "acc_idle", accumulator_model(), accumulator_config(idle_us=200_000))
    write_model(repo, "acc_one_slot", accumulator_model(), accumulator_config(max_batch=1, idle_us=60_000_000))
    write_model(repo, "acc_str", accumulator_model(TensorProto.STRING), accumulator_config(corrid="TYPE_STRING"))
    write_model(repo, "lstm", lstm_model(), LSTM_CONFIG)
    srv = KilnServer(repo)
    yield srv
    assert srv.stop() == 0


def acc_inputs(value, module=httpclient):
    x = module.InferInput("INPUT", [1, 1], "FP32")
    x.set_data_from_numpy(np.array([[value]], np.float32))
    return [x]


def test_config_hides_control_and_state_tensors(server):
    client = httpclient.InferenceServerClient(server.http_url)
    cfg = client.get_model_config("acc")
    assert [i["name"] for i in cfg["input"]] == ["INPUT"]
    names = [o["name"] for o in cfg["output"]]
    assert "ACC_OUT" not in names and "OUTPUT" in names
    assert "sequence" in client.get_server_metadata()["extensions"]
    md = client.get_model_metadata("acc")
    assert [i["name"] for i in md["inputs"]] == ["INPUT"]


def test_http_sequence_accumulates_and_feeds_controls(server):
    client = httpclient.InferenceServerClient(server.http_url)
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    for i, v in enumerate(values):
        r = client.infer("acc", acc_inputs(v), sequence_id=42, sequence_start=i == 0,
                         sequence_end=i == len(values) - 1)
        assert r.as_numpy("OUTPUT")[0, 0] == sum(values[: i + 1])
        assert r.as_numpy("START_OUT")[0, 0] == (1.0 if i == 0 else 0.0)
        assert r.as_numpy("END_OUT")[0, 0] == (1 if i == len(values) - 1 else 0)
        assert r.as_numpy("READY_OUT")[0, 0]
        assert r.as_numpy("CORRID_OUT")[0, 0] == 42
    # The sequence ended: a request without START is refused, a new START begins from zero.
    with pytest.raises(InferenceServerException, match="START flag"):
        client.infer("acc", acc_inputs(1.0), sequence_id=42)
    r = client.infer("acc", acc_inputs(7.0), sequence_id=42, sequence_start=True, sequence_end=True)
    assert r.as_numpy("OUTPUT")[0, 0] == 7.0


@pytest.mark.parametrize("model", ["acc", "acc_oldest"])
def test_interleaved_sequences_keep_their_own_state(server, model):
    n_seq, steps = 6, 8

    def run(seq):
        client = httpclient.InferenceServerClient(server.http_url)
        total, outs = 0.0, []
        for i in range(steps):
            v = float(seq * 100 + i)
            total += v
            r = client.infer(model, acc_inputs(v), sequence_id=1000 + seq, sequence_start=i == 0,
                             sequence_end=i == steps - 1)
            assert r.as_numpy("CORRID_OUT")[0, 0] == 1000 + seq
            outs.append((r.as_numpy("OUTPUT")[0, 0], total))
        return outs

    with ThreadPoolExecutor(n_seq) as pool:
        for outs in pool.map(run, range(n_seq)):
            for got, want in outs:
                assert got == want
    stats = httpclient.InferenceServerClient(server.http_url).get_inference_statistics(model)
    batches = {int(b["batch_size"]) for b in stats["model_stats"][0]["batch_stats"]}
    if model == "acc_oldest":
        assert max(batches) > 1, f"oldest strategy never batched sequences: {batches}"


def test_grpc_stream_with_string_ids(server):
    client = grpcclient.InferenceServerClient(server.grpc_url)
    results = queue.Queue()
    client.start_stream(callback=lambda result, error: results.put((result, error)))
    seqs = {"alpha": [1.0, 2.0, 3.0], "beta": [10.0, 20.0, 30.0]}
    for i in range(3):
        for sid, vals in seqs.items():
            client.async_stream_infer("acc_str", acc_inputs(vals[i], grpcclient), sequence_id=sid,
                                      sequence_start=i == 0, sequence_end=i == 2, request_id=f"{sid}-{i}")
    got = {}
    for _ in range(6):
        result, error = results.get(timeout=30)
        assert error is None, error
        rid = result.get_response().id
        got[rid] = (result.as_numpy("OUTPUT")[0, 0], result.as_numpy("CORRID_OUT")[0, 0])
    client.stop_stream()
    client.close()
    for sid, vals in seqs.items():
        for i in range(3):
            out, corr = got[f"{sid}-{i}"]
            assert out == sum(vals[: i + 1])
            assert corr == sid.encode()


def test_grpc_unary_sequence_and_errors(server):
    client = grpcclient.InferenceServerClient(server.grpc_url)
    r = client.infer("acc", acc_inputs(2.5, grpcclient), sequence_id=77, sequence_start=True)
    assert r.as_numpy("OUTPUT")[0, 0] == 2.5
    r = client.infer("acc", acc_inputs(2.5, grpcclient), sequence_id=77, sequence_end=True)
    assert r.as_numpy("OUTPUT")[0, 0] == 5.0
    with pytest.raises(InferenceServerException, match="correlation ID"):
        client.infer("acc", acc_inputs(1.0, grpcclient))
    with pytest.raises(InferenceServerException, match="START flag"):
        client.infer("acc", acc_inputs(1.0, grpcclient), sequence_id=78)
    # A string id on a model whose CORRID control is an integer.
    with pytest.raises(InferenceServerException, match="is a string"):
        client.infer("acc", acc_inputs(1.0, grpcclient), sequence_id="s1", sequence_start=True, sequence_end=True)
    client.close()


def test_hostile_sequence_requests(server):
    client = httpclient.InferenceServerClient(server.http_url)
    with pytest.raises(InferenceServerException, match="batch size 1"):
        x = httpclient.InferInput("INPUT", [2, 1], "FP32")
        x.set_data_from_numpy(np.ones((2, 1), np.float32))
        client.infer("acc", [x], sequence_id=5, sequence_start=True)
    import http.client
    import json
    for params, msg in [({"sequence_id": -3}, "sequence_id"), ({"sequence_id": 1.5}, "sequence_id"),
                        ({"sequence_id": 9, "sequence_start": "yes"}, "sequence_start")]:
        conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=10)
        body = {"inputs": [{"name": "INPUT", "shape": [1, 1], "datatype": "FP32", "data": [1]}], "parameters": params}
        conn.request("POST", "/v2/models/acc/infer", body=json.dumps(body))
        resp = conn.getresponse()
        assert resp.status == 400 and msg in json.loads(resp.read())["error"]
        conn.close()
    assert client.is_server_live()


def test_idle_sequence_is_released(server):
    client = httpclient.InferenceServerClient(server.http_url)
    client.infer("acc_idle", acc_inputs(1.0), sequence_id=9, sequence_start=True)
    time.sleep(0.6)
    with pytest.raises(InferenceServerException, match="idle"):
        client.infer("acc_idle", acc_inputs(1.0), sequence_id=9)
    r = client.infer("acc_idle", acc_inputs(3.0), sequence_id=9, sequence_start=True, sequence_end=True)
    assert r.as_numpy("OUTPUT")[0, 0] == 3.0


def test_sequence_waits_for_a_slot(server):
    """One instance with one slot: a second sequence waits in the backlog until the first ends."""
    client = httpclient.InferenceServerClient(server.http_url)
    client.infer("acc_one_slot", acc_inputs(1.0), sequence_id=1, sequence_start=True)
    done = threading.Event()
    result = {}

    def second():
        c = httpclient.InferenceServerClient(server.http_url)
        result["r"] = c.infer("acc_one_slot", acc_inputs(5.0), sequence_id=2, sequence_start=True, sequence_end=True)
        done.set()

    t = threading.Thread(target=second)
    t.start()
    assert not done.wait(0.5), "the second sequence ran while the only slot was taken"
    r = client.infer("acc_one_slot", acc_inputs(1.0), sequence_id=1, sequence_end=True)
    assert r.as_numpy("OUTPUT")[0, 0] == 2.0
    assert done.wait(10)
    t.join()
    assert result["r"].as_numpy("OUTPUT")[0, 0] == 5.0


def test_lstm_chunks_match_whole_sequence(server):
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, (12, 1, FEATURES)).astype(np.float32)

    def infer(client, chunk, **seq):
        inp = grpcclient.InferInput("X", list(chunk.shape), "FP32")
        inp.set_data_from_numpy(chunk)
        return client.infer("lstm", [inp], **seq).as_numpy("Y")

    client = grpcclient.InferenceServerClient(server.grpc_url)
    whole = infer(client, x, sequence_id=500, sequence_start=True, sequence_end=True)
    assert whole.shape == (12, 1, 1, HIDDEN)
    chunks = [x[0:5], x[5:6], x[6:12]]
    parts = [infer(client, c, sequence_id=501, sequence_start=i == 0, sequence_end=i == len(chunks) - 1)
             for i, c in enumerate(chunks)]
    np.testing.assert_allclose(np.concatenate(parts), whole, rtol=1e-5, atol=1e-5)
    # Over a gRPC stream too, with two sequences interleaved.
    results = queue.Queue()
    client.start_stream(callback=lambda result, error: results.put((result, error)))
    for i, c in enumerate(chunks):
        for sid in (600, 601):
            inp = grpcclient.InferInput("X", list(c.shape), "FP32")
            inp.set_data_from_numpy(c)
            client.async_stream_infer("lstm", [inp], sequence_id=sid, sequence_start=i == 0,
                                      sequence_end=i == len(chunks) - 1, request_id=f"{sid}-{i}")
    got = {}
    for _ in range(2 * len(chunks)):
        result, error = results.get(timeout=30)
        assert error is None, error
        got[result.get_response().id] = result.as_numpy("Y")
    client.stop_stream()
    client.close()
    for sid in (600, 601):
        np.testing.assert_allclose(np.concatenate([got[f"{sid}-{i}"] for i in range(len(chunks))]), whole,
                                   rtol=1e-5, atol=1e-5)
