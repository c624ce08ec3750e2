"""The process behind one instance of a Kiln Python-backend model.

kiln serve starts `python kiln_python_stub.py <fd>` per model instance with
one end of a Unix socket pair as file descriptor <fd>, and talks to it in
frames: two little-endian uint64 (header length, payload length), a JSON
header, then the payload (the tensors' bytes, back to back; BYTES elements
as a 4-byte length and the bytes). Messages: init -> ok | error,
execute -> responses | error, finalize -> ok. While execute() runs, the stub
may send bls (InferenceRequest.exec: a request to another model), which the
server answers with bls_response before anything else. A decoupled model's
responses go out as stream frames ({request, final, error, outputs}) from
execute() or from threads it started, until every request got its final
flag; the server reads them until then. The model's prints go
to the server's log (stdout and stderr are the server's)."""
from __future__ import annotations

import asyncio
import importlib.util
import inspect
import gc
import json
import os
import struct
import sys
import threading
import time
import traceback
import weakref

import numpy as np

import triton_python_backend_utils as pb_utils


def read_exact(fd, n):
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = os.readv(fd, [view[got:]])
        if k == 0:
            raise EOFError("the server closed the connection")
        got += k
    return buf


def read_frame(fd):
    header_len, payload_len = struct.unpack("<QQ", read_exact(fd, 16))
    header = json.loads(bytes(read_exact(fd, header_len)))
    payload = read_exact(fd, payload_len) if payload_len else bytearray()
    return header, payload


_write_lock = threading.Lock()  # a decoupled model's threads send frames too


def write_frame(fd, header, payload=b""):
    head = json.dumps(header).encode()
    data = memoryview(struct.pack("<QQ", len(head), len(payload)) + head + bytes(payload))
    with _write_lock:
        while data:
            k = os.write(fd, data)
            data = data[k:]


def decode_bytes(buf, count):
    out = np.empty(count, dtype=np.object_)
    pos = 0
    for i in range(count):
        (n,) = struct.unpack_from("<I", buf, pos)
        out[i] = bytes(buf[pos + 4: pos + 4 + n])
        pos += 4 + n
    return out


def encode_bytes(array):
    parts = []
    for item in array.reshape(-1):
        b = item if isinstance(item, bytes) else str(item).encode() if not isinstance(item, bytearray) else bytes(item)
        parts.append(struct.pack("<I", len(b)))
        parts.append(b)
    return b"".join(parts)


def tensor_from(desc, payload):
    shape = desc["shape"]
    start, size = desc["offset"], desc["size"]
    if desc["datatype"] == "BYTES":
        array = decode_bytes(memoryview(payload)[start: start + size], int(np.prod(shape, dtype=np.int64)))
    else:
        dtype = pb_utils.triton_to_numpy_type(desc["datatype"])
        array = np.frombuffer(payload, dtype=dtype, count=size // np.dtype(dtype).itemsize, offset=start)
    return pb_utils.Tensor(desc["name"], array.reshape(shape))


def pack_outputs(tensors, payload):
    descs = []
    for t in tensors:
        if not isinstance(t, pb_utils.Tensor):
            raise pb_utils.TritonModelException(f"output_tensors must hold pb_utils.Tensor, got {type(t).__name__}")
        array = t.as_numpy()
        datatype = pb_utils.numpy_to_triton_type(array.dtype)
        data = encode_bytes(array) if datatype == "BYTES" else np.ascontiguousarray(array).tobytes()
        descs.append({"name": t.name(), "datatype": datatype, "shape": list(array.shape), "offset": len(payload),
                      "size": len(data)})
        payload += data
    return descs


def load_model(init):
    path = init["model_file"]
    spec = importlib.util.spec_from_file_location("kiln_python_model", path)
    if spec is None or spec.loader is None:
        raise pb_utils.TritonModelException(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, os.path.dirname(path))
    spec.loader.exec_module(module)
    if not hasattr(module, "TritonPythonModel"):
        raise pb_utils.TritonModelException(f"{path} defines no class TritonPythonModel")
    model = module.TritonPythonModel()
    if hasattr(model, "initialize"):
        model.initialize({k: init[k] for k in ("model_config", "model_instance_kind", "model_instance_name",
                                               "model_instance_device_id", "model_repository", "model_version",
                                               "model_name")})
    return model


def bls_exec(fd, request):
    """InferenceRequest.exec(): one bls frame out, the server's bls_response back."""
    payload = bytearray()
    frame = {"type": "bls", "model_name": request.model_name(), "model_version": int(request.model_version()),
             "request_id": request.request_id(), "requested_outputs": list(request.requested_output_names()),
             "flags": int(request.flags()), "timeout": int(request.timeout()),
             "inputs": pack_outputs(request.inputs(), payload)}
    if request.correlation_id():
        frame["correlation_id"] = request.correlation_id()
    write_frame(fd, frame, payload)
    reply, out = read_frame(fd)
    if reply.get("type") != "bls_response":
        raise pb_utils.TritonModelException(f"unexpected {reply.get('type')!r} frame from the server during exec()")
    if reply.get("error") is not None:
        return pb_utils.InferenceResponse(error=pb_utils.TritonError(reply["error"]))
    return pb_utils.InferenceResponse(output_tensors=[tensor_from(d, out) for d in reply.get("outputs", [])])


def response_fields(response, payload):
    """A response as the server reads it: {"error": message or None, "outputs": [...]}, the
    outputs' bytes appended to `payload`."""
    if response.has_error():
        return {"error": response.error().message(), "outputs": []}
    return {"error": None, "outputs": pack_outputs(response.output_tensors(), payload)}


def send_stream(fd, index, response, final):
    """One response (or just the final flag) of decoupled request `index`."""
    payload = bytearray()
    frame = {"type": "stream", "request": index, "final": final, "error": None, "outputs": []}
    if response is not None:
        frame.update(response_fields(response, payload))
    write_frame(fd, frame, payload)


def drain(fd, states, senders):
    """Waits until every decoupled request got its final flag. A request whose sender nobody
    holds any more can never get one: it is completed with an error, as the model dropped it."""
    last_gc = 0.0
    while True:
        pending = [i for i, state in enumerate(states) if not state["final"]]
        if not pending:
            return
        if time.monotonic() - last_gc > 0.05:
            gc.collect()
            last_gc = time.monotonic()
        for i in pending:
            if senders[i]() is None and not states[i]["final"]:
                states[i]["final"] = True
                error = pb_utils.TritonError("the model dropped this request's response sender without sending "
                                             "the TRITONSERVER_RESPONSE_COMPLETE_FINAL flag")
                send_stream(fd, i, pb_utils.InferenceResponse(error=error), True)
        time.sleep(0.002)


def execute(model, header, payload, fd):
    requests = []
    decoupled = bool(header.get("decoupled"))
    states, senders = [], []
    for i, r in enumerate(header["requests"]):
        inputs = [tensor_from(d, payload) for d in r["inputs"]]
        request = pb_utils.InferenceRequest(inputs=inputs, request_id=r.get("id", ""),
                                            correlation_id=r.get("correlation_id", 0),
                                            requested_output_names=r.get("requested_outputs", []),
                                            model_name=header.get("model_name", ""))
        if decoupled:
            state = {"final": False}
            sender = pb_utils.InferenceResponseSender(
                lambda response, final, i=i: send_stream(fd, i, response, final), state)
            request._sender = sender
            states.append(state)
            senders.append(weakref.ref(sender))
            del sender
        requests.append(request)
    try:
        responses = model.execute(requests)
        if inspect.iscoroutine(responses):  # async def execute (it may await InferenceRequest.async_exec)
            responses = asyncio.run(responses)
    except BaseException:
        for state in states:  # the server fails the unfinished requests; later sends must not reach it
            state["final"] = True
        raise
    if decoupled:
        del requests, responses
        return {"type": "responses", "responses": [], "decoupled": True}, bytearray(), (states, senders)
    if responses is None or len(responses) != len(requests):
        n = "None" if responses is None else len(responses)
        raise pb_utils.TritonModelException(f"execute() returned {n} responses for {len(requests)} requests")
    out_payload = bytearray()
    out = []
    for resp in responses:
        if not isinstance(resp, pb_utils.InferenceResponse):
            raise pb_utils.TritonModelException(f"execute() must return InferenceResponse objects, got "
                                                f"{type(resp).__name__}")
        out.append(response_fields(resp, out_payload))
    return {"type": "responses", "responses": out}, out_payload, None


def main():
    fd = int(sys.argv[1])
    model = None
    while True:
        try:
            header, payload = read_frame(fd)
        except EOFError:
            return 0
        kind = header.get("type")
        try:
            if kind == "init":
                model = load_model(header)
                write_frame(fd, {"type": "ok"})
            elif kind == "execute":
                pb_utils._bls_exec = lambda request: bls_exec(fd, request)
                try:
                    reply, out, pending = execute(model, header, payload, fd)
                finally:
                    pb_utils._bls_exec = None
                write_frame(fd, reply, out)
                if pending is not None:
                    drain(fd, *pending)
            elif kind == "finalize":
                if model is not None and hasattr(model, "finalize"):
                    model.finalize()
                write_frame(fd, {"type": "ok"})
                return 0
            else:
                write_frame(fd, {"type": "error", "message": f"unknown message type {kind!r}"})
        except Exception as e:  # the model's error goes back to the server as the requests' error
            message = e.message() if isinstance(e, pb_utils.TritonModelException) else f"{type(e).__name__}: {e}"
            detail = traceback.format_exc(limit=4)
            print(detail, file=sys.stderr, flush=True)
            write_frame(fd, {"type": "error", "message": message})


if __name__ == "__main__":
    sys.exit(main())
