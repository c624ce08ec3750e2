"""InferenceSession: onnxruntime.InferenceSession's interface over kiln._core."""
from __future__ import annotations

import os
from typing import Any, Iterable, Mapping, Sequence

from . import _core


class NodeArg:
    """One input or output, described as onnxruntime's NodeArg does.

    `shape` holds an int per known dim, the symbol (str) of a named dynamic
    dim and None for an unknown one; it is [] when the rank is unknown and for
    sequences, as in onnxruntime. `type` is "tensor(float)", "seq(tensor(int64))", ...
    """

    __slots__ = ("name", "type", "shape", "dtype", "kind")

    def __init__(self, info: _core.IoInfo):
        self.name: str = info.name
        self.type: str = info.type
        self.kind: str = info.kind
        self.dtype: str = info.dtype
        if info.kind != "tensor" or not info.rank_known:
            self.shape: list[int | str | None] = []
        else:
            self.shape = [
                name if name else (dim if dim >= 0 else None) for dim, name in zip(info.dims, info.dim_names)
            ]

    def __repr__(self) -> str:
        return f"NodeArg(name={self.name!r}, type={self.type!r}, shape={self.shape!r})"

    __str__ = __repr__


class SessionOptions:
    """The subset of onnxruntime.SessionOptions that Kiln reads.

    Kiln honours `intra_op_num_threads`; any other attribute may be set and is ignored.
    """

    def __init__(self) -> None:
        self.intra_op_num_threads = 0


class InferenceSession:
    """Loads an ONNX model (a path or serialized bytes) or a plan file (kiln.build) and runs it.

    Mirrors onnxruntime.InferenceSession so that switching is a one-line change:
    `sess_options`, `providers` and `provider_options` are accepted (Kiln reads
    only `sess_options.intra_op_num_threads`). `threads` sets the number of
    intra-op threads; 0 (default) uses every hardware thread. `passes` runs the
    optimizer first: None or [] runs no pass, ["all"] the default pipeline
    (kiln.optimizer_pass_names()), ["NAME"] the pipeline up to and including
    the pass NAME.
    """

    def __init__(
        self,
        path_or_bytes: str | bytes | os.PathLike,
        sess_options: Any = None,
        providers: Sequence[Any] | None = None,
        provider_options: Sequence[Any] | None = None,
        threads: int | None = None,
        passes: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        if threads is None:
            threads = int(getattr(sess_options, "intra_op_num_threads", 0) or 0)
        if isinstance(path_or_bytes, os.PathLike):
            path_or_bytes = os.fspath(path_or_bytes)
        if not isinstance(path_or_bytes, (str, bytes, bytearray, memoryview)):
            raise TypeError(
                f"InferenceSession expects a model path or serialized ONNX bytes, got {type(path_or_bytes).__name__}"
            )
        self._model_path = path_or_bytes if isinstance(path_or_bytes, str) else None
        self._sess = _core.Session(path_or_bytes, threads, list(passes or []))
        self._inputs = [NodeArg(i) for i in self._sess.inputs if not i.optional]
        self._initializers = [NodeArg(i) for i in self._sess.inputs if i.optional]
        self._outputs = [NodeArg(o) for o in self._sess.outputs]

    def get_inputs(self) -> list[NodeArg]:
        """The inputs a caller must feed (inputs with a default are listed by get_overridable_initializers)."""
        return list(self._inputs)

    def get_outputs(self) -> list[NodeArg]:
        return list(self._outputs)

    def get_overridable_initializers(self) -> list[NodeArg]:
        """Inputs that have a default value (an initializer) and may be fed to override it."""
        return list(self._initializers)

    def get_layers(self) -> list[dict[str, Any]]:
        """The top-level nodes the session runs, in order: {"name", "op", "fused_from"} each."""
        return [{"name": n, "op": op, "fused_from": list(src)} for n, op, src in self._sess.layers]

    def get_providers(self) -> list[str]:
        return ["KilnCPUExecutionProvider"]

    @property
    def opset(self) -> int:
        """The opset of the default ONNX domain the model imports."""
        return self._sess.opset

    def run(
        self,
        output_names: Iterable[str] | None,
        input_feed: Mapping[str, Any],
        run_options: Any = None,
    ) -> list[Any]:
        """Runs the model; returns the outputs named (all when None or empty) as a list.

        Tensors are numpy arrays; sequence outputs are lists of arrays; an empty
        optional is None. Errors raise KilnError (InvalidArgumentError, a
        ValueError, for bad feeds) naming the input at fault.
        """
        if not isinstance(input_feed, Mapping):
            raise TypeError(f"input_feed must be a dict of {{name: array}}, got {type(input_feed).__name__}")
        names = None if output_names is None else list(output_names)
        return self._sess.run(dict(input_feed), names)
