"""kiln.backend: Kiln as an ONNX backend (onnx.backend.base.Backend).

    import kiln.backend
    rep = kiln.backend.prepare(model_proto)       # or a path
    outputs = rep.run([x])                        # namedtuple of outputs, graph order
    outputs = kiln.backend.run_node(node, [a, b])

Only the CPU device is supported.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import onnx
from onnx import helper
from onnx.backend.base import Backend, BackendRep, namedtupledict

from .session import InferenceSession

# The newest opset of the default domain that Kiln imports.
MAX_OPSET = 28


def _device_type(device: Any) -> str:
    return str(device).split(":")[0].upper()


class KilnBackendRep(BackendRep):
    """A prepared model; run() may be called any number of times."""

    def __init__(self, session: InferenceSession) -> None:
        self.session = session
        core = session._sess
        self._all_inputs = [i.name for i in core.inputs]            # graph order, defaults included
        self._required = [i.name for i in core.inputs if not i.optional]
        self._outputs = [o.name for o in core.outputs]

    def run(self, inputs: Any, **kwargs: Any) -> tuple[Any, ...]:
        """Runs on `inputs`: a dict {name: value}, a list in graph-input order, or one array.

        A list no longer than the required inputs feeds them in order; a longer
        list feeds every graph input in order (older models list their
        initializers as inputs).
        """
        if isinstance(inputs, dict):
            feeds = dict(inputs)
        else:
            if isinstance(inputs, np.ndarray) or not isinstance(inputs, (list, tuple)):
                inputs = [inputs]
            names = self._required if len(inputs) <= len(self._required) else self._all_inputs
            if len(inputs) > len(names):
                raise ValueError(f"{len(inputs)} inputs given, the model has {len(names)}: {names}")
            feeds = dict(zip(names, inputs))
        outputs = self.session.run(None, feeds)
        return namedtupledict("Outputs", self._outputs)(*outputs)


class KilnBackend(Backend):
    @classmethod
    def supports_device(cls, device: str) -> bool:
        return _device_type(device) == "CPU"

    @classmethod
    def prepare(cls, model: onnx.ModelProto | str | bytes | os.PathLike, device: str = "CPU", **kwargs: Any
                ) -> KilnBackendRep:
        """Loads `model` (a ModelProto, a path or serialized bytes). kwargs: threads=N."""
        if not cls.supports_device(device):
            raise RuntimeError(f"kiln.backend supports only the CPU device, not {device!r}")
        threads = int(kwargs.get("threads", 0) or 0)
        if isinstance(model, onnx.ModelProto):
            model = model.SerializeToString()
        return KilnBackendRep(InferenceSession(model, threads=threads))

    @classmethod
    def run_model(cls, model: Any, inputs: Any, device: str = "CPU", **kwargs: Any) -> tuple[Any, ...]:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(
        cls,
        node: onnx.NodeProto,
        inputs: Any,
        device: str = "CPU",
        outputs_info: Sequence[tuple[Any, tuple[int, ...]]] | None = None,
        **kwargs: Any,
    ) -> tuple[Any, ...]:
        """Runs one node on `inputs` (a list in the node's input order, or a dict by name)."""
        if isinstance(inputs, dict):
            feeds = dict(inputs)
        else:
            present = [name for name in node.input if name]
            if len(inputs) > len(present):
                raise ValueError(f"{len(inputs)} inputs given, node {node.op_type} has {len(present)}")
            feeds = dict(zip(present, inputs))
        graph_inputs = [_value_info(name, value) for name, value in feeds.items()]
        graph_outputs = []
        for i, name in enumerate(node.output):
            if not name:
                continue
            if outputs_info is not None and i < len(outputs_info):
                dtype, shape = outputs_info[i]
                elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
                graph_outputs.append(helper.make_tensor_value_info(name, elem, shape))
            else:
                graph_outputs.append(helper.make_empty_tensor_value_info(name))
        opset = int(kwargs.get("opset_version", min(onnx.defs.onnx_opset_version(), MAX_OPSET)))
        opsets = [helper.make_opsetid("", opset)]
        if node.domain not in ("", "ai.onnx"):
            opsets.append(helper.make_opsetid(node.domain, 1))
        graph = helper.make_graph([node], f"run_node_{node.op_type}", graph_inputs, graph_outputs)
        model = helper.make_model(graph, opset_imports=opsets)
        rep = cls.prepare(model, device, **kwargs)
        return rep.run(feeds)


def _value_info(name: str, value: Any) -> onnx.ValueInfoProto:
    """A graph input typed after the value fed to it: a tensor, a sequence (list) or an empty optional (None)."""
    if value is None:
        return helper.make_value_info(name, helper.make_optional_type_proto(helper.make_tensor_type_proto(0, None)))
    if isinstance(value, (list, tuple)):
        elem = helper.np_dtype_to_tensor_dtype(np.asarray(value[0]).dtype) if value else onnx.TensorProto.FLOAT
        return helper.make_tensor_sequence_value_info(name, elem, None)
    arr = np.asarray(value)
    kind = arr.dtype.kind
    elem = onnx.TensorProto.STRING if kind in "USO" else helper.np_dtype_to_tensor_dtype(arr.dtype)
    return helper.make_tensor_value_info(name, elem, arr.shape)


# Module-level functions, so that `kiln.backend` itself works as a backend
# (onnx.backend.test.BackendTest(kiln.backend, __name__)).
prepare = KilnBackend.prepare
run_model = KilnBackend.run_model
run_node = KilnBackend.run_node
supports_device = KilnBackend.supports_device
is_compatible = KilnBackend.is_compatible
