"""Kiln's implementation of the `triton_python_backend_utils` API that
Triton Python-backend models (model.py) are written against: Tensor,
InferenceRequest, InferenceResponse, TritonError, TritonModelException,
Logger and the config / datatype helpers. Tensors are numpy arrays; they
travel to and from the server over the instance's socket (see
kiln_python_stub.py)."""
from __future__ import annotations

import json
import sys

import numpy as np

_TRITON_TO_NUMPY = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
    "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64, "FP16": np.float16,
    "FP32": np.float32, "FP64": np.float64, "BYTES": np.object_, "STRING": np.object_,
}


def triton_to_numpy_type(data_type):
    """Protocol datatype name ("FP32", "BYTES") or config name ("TYPE_FP32") -> numpy dtype."""
    if isinstance(data_type, str) and data_type.startswith("TYPE_"):
        data_type = data_type[5:]
    if data_type not in _TRITON_TO_NUMPY:
        raise TritonModelException(f"unsupported datatype {data_type!r}")
    return _TRITON_TO_NUMPY[data_type]


def triton_string_to_numpy(triton_type_string):
    """Config datatype ("TYPE_FP32", "TYPE_STRING") -> numpy dtype."""
    return triton_to_numpy_type(triton_type_string)


def numpy_to_triton_type(np_type):
    np_type = np.dtype(np_type)
    if np_type == np.object_ or np_type.kind in "SU":
        return "BYTES"
    for name, t in _TRITON_TO_NUMPY.items():
        if name != "STRING" and np.dtype(t) == np_type:
            return name
    raise TritonModelException(f"numpy dtype {np_type} has no Triton datatype")


class TritonModelException(Exception):
    """Raised by the utilities on misuse; a model may raise it to fail its requests."""

    def __init__(self, msg=""):
        super().__init__(msg)
        self._msg = msg

    def message(self):
        return self._msg


class TritonError:
    UNKNOWN, INTERNAL, NOT_FOUND, INVALID_ARG, UNAVAILABLE, UNSUPPORTED, ALREADY_EXISTS, CANCELLED = range(8)

    def __init__(self, message, code=None):
        self._message = str(message)
        self._code = TritonError.INTERNAL if code is None else code

    def message(self):
        return self._message

    def code(self):
        return self._code

    def __repr__(self):
        return f"TritonError({self._message!r})"


class Tensor:
    """A named tensor holding a numpy array (CPU memory)."""

    def __init__(self, name, data):
        if not isinstance(name, str):
            raise TritonModelException("Tensor name must be a string")
        array = np.asarray(data)
        if array.dtype.kind in "SU":
            array = array.astype(np.object_)
        self._name = name
        self._array = array

    @classmethod
    def from_numpy(cls, name, array):
        return cls(name, array)

    def name(self):
        return self._name

    def as_numpy(self):
        return self._array

    def triton_dtype(self):
        return numpy_to_triton_type(self._array.dtype)

    def shape(self):
        return list(self._array.shape)

    def is_cpu(self):
        return True

    def to_dlpack(self):
        return self._array.__dlpack__()

    def __repr__(self):
        return f"Tensor({self._name!r}, shape={self.shape()}, dtype={self._array.dtype})"


class InferenceRequest:
    """One request as execute() receives it."""

    def __init__(self, inputs=None, request_id="", correlation_id=0, requested_output_names=None, model_name="",
                 model_version=-1, flags=0, parameters=None, timeout=0, **_):
        self._inputs = list(inputs or [])
        self._request_id = request_id
        self._correlation_id = correlation_id
        self._requested = list(requested_output_names or [])
        self._model_name = model_name
        self._model_version = model_version
        self._flags = flags
        self._parameters = parameters if isinstance(parameters, str) else json.dumps(parameters or {})
        self._timeout = int(timeout or 0)

    def inputs(self):
        return self._inputs

    def request_id(self):
        return self._request_id

    def correlation_id(self):
        return self._correlation_id

    def requested_output_names(self):
        return self._requested

    def model_name(self):
        return self._model_name

    def flags(self):
        return self._flags

    def parameters(self):
        return self._parameters

    def is_cancelled(self):
        return False

    def get_response_sender(self):
        """Decoupled models: the sender of this request's responses (any number, then the final flag)."""
        sender = getattr(self, "_sender", None)
        if sender is None:
            raise TritonModelException("get_response_sender() needs a decoupled model (model_transaction_policy "
                                       "{ decoupled: true })")
        return sender

    def model_version(self):
        return self._model_version

    def timeout(self):
        return self._timeout

    def exec(self, decoupled=False):
        """Business logic scripting: runs this request on model_name (another model of the server)
        and returns its InferenceResponse; a failure is the response's error(), not an exception."""
        if decoupled:
            raise TritonModelException("exec(decoupled=True): business logic scripting into a decoupled model is "
                                       "not supported by Kiln's Python backend")
        if _bls_exec is None:
            raise TritonModelException("InferenceRequest.exec() is only available inside execute()")
        return _bls_exec(self)

    async def async_exec(self, decoupled=False):
        return self.exec(decoupled)


# Set by the stub while execute() runs: sends a request to the server and returns its InferenceResponse.
_bls_exec = None


class InferenceResponseSender:
    """Sends a decoupled request's responses as the model produces them, from execute() or from a
    thread it started. send(flags=TRITONSERVER_RESPONSE_COMPLETE_FINAL) completes the request;
    nothing may be sent after that."""

    def __init__(self, send, state):
        self._send = send    # the stub's frame writer for this request
        self._state = state  # shared with the stub: {"final": bool}

    def send(self, response=None, flags=0):
        if self._state["final"]:
            raise TritonModelException("the response sender has already sent the final flag")
        if response is not None and not isinstance(response, InferenceResponse):
            raise TritonModelException(f"send() takes an InferenceResponse, got {type(response).__name__}")
        final = bool(flags & TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        if response is None and not final:
            raise TritonModelException("send() needs a response or the TRITONSERVER_RESPONSE_COMPLETE_FINAL flag")
        self._state["final"] = final
        self._send(response, final)

    def is_cancelled(self):
        return False


class InferenceResponse:
    def __init__(self, output_tensors=None, error=None, parameters=None):
        self._outputs = list(output_tensors or [])
        if error is not None and not isinstance(error, TritonError):
            error = TritonError(str(error))
        self._error = error
        self._parameters = parameters

    def output_tensors(self):
        return self._outputs

    def has_error(self):
        return self._error is not None

    def error(self):
        return self._error


def get_input_tensor_by_name(inference_request, name):
    for t in inference_request.inputs():
        if t.name() == name:
            return t
    return None


def get_output_tensor_by_name(inference_response, name):
    for t in inference_response.output_tensors():
        if t.name() == name:
            return t
    return None


def get_input_config_by_name(model_config, name):
    for cfg in model_config.get("input", []):
        if cfg["name"] == name:
            return cfg
    return None


def get_output_config_by_name(model_config, name):
    for cfg in model_config.get("output", []):
        if cfg["name"] == name:
            return cfg
    return None


def using_decoupled_model_transaction_policy(model_config):
    return bool(model_config.get("model_transaction_policy", {}).get("decoupled", False))


class Logger:
    """Writes to the server's log (the instance's stderr)."""

    @staticmethod
    def log(message, level=None):
        print(message, file=sys.stderr, flush=True)

    @staticmethod
    def log_info(message):
        Logger.log(f"[python] INFO: {message}")

    @staticmethod
    def log_warn(message):
        Logger.log(f"[python] WARNING: {message}")

    @staticmethod
    def log_error(message):
        Logger.log(f"[python] ERROR: {message}")

    @staticmethod
    def log_verbose(message):
        Logger.log(f"[python] VERBOSE: {message}")


# Flags of Triton's API that models sometimes test.
TRITONSERVER_REQUEST_FLAG_SEQUENCE_START = 1
TRITONSERVER_REQUEST_FLAG_SEQUENCE_END = 2
TRITONSERVER_RESPONSE_COMPLETE_FINAL = 1
