"""kiln.build: ONNX model in, plan file out (mirrors `kiln build`)."""
from __future__ import annotations

import os
from typing import Any, Iterable, Mapping, Sequence

from . import _core

ShapeArg = "str | Mapping[str, Sequence[int]] | None"


def _shape_spec(shapes: Any, what: str) -> str:
    """trtexec's syntax from a str ("x:1x3x224x224,y:1") or {name: dims}."""
    if shapes is None:
        return ""
    if isinstance(shapes, str):
        return shapes
    if isinstance(shapes, Mapping):
        parts = []
        for name, dims in shapes.items():
            if not isinstance(name, str):
                raise TypeError(f"{what}: input names must be str, got {type(name).__name__}")
            try:
                text = "x".join(str(int(d)) for d in dims)
            except (TypeError, ValueError):
                raise TypeError(f"{what}: dims of {name!r} must be a sequence of ints, got {dims!r}") from None
            parts.append(f"{name}:{text}")
        return ",".join(parts)
    raise TypeError(f"{what} must be a str or a dict of name -> dims, got {type(shapes).__name__}")


def build(
    onnx_path: str | os.PathLike,
    plan_path: str | os.PathLike,
    precision: str = "fp32",
    shapes: Any = None,
    timing_cache: str | os.PathLike | None = None,
    *,
    min_shapes: Any = None,
    opt_shapes: Any = None,
    max_shapes: Any = None,
    tactic_sources: Iterable[str] | str | None = None,
    threads: int = 0,
    time_tactics: bool = True,
    calib: Iterable[Mapping[str, Any]] | None = None,
    calib_cache: str | os.PathLike | None = None,
    calibrator: str = "entropy",
    layer_precision: Iterable[str] | Mapping[str, str] | None = None,
    max_accuracy_drop: float | None = None,
) -> dict:
    """Optimizes `onnx_path` and writes the plan to `plan_path`.

    `shapes` fixes input shapes ({"input": (8, 3, 224, 224)} or "input:8x3x224x224");
    `min_shapes`/`opt_shapes`/`max_shapes` give a dynamic profile instead. Tactic
    timings are read from and saved to `timing_cache` when given. Returns a
    summary: onnx_nodes, layers, peak_activation_bytes, naive_activation_bytes,
    timed_layers, cache_hits, cache_misses, seconds, int8_layers. Open the plan with
    kiln.InferenceSession(plan_path).

    precision="int8" calibrates on `calib` (an iterable of {input name: array}
    batches) with `calibrator` ("entropy", "minmax" or "percentile"), or reads
    `calib_cache` when no data is given (and writes it after calibrating);
    `layer_precision` keeps layers in float: {"conv1": "fp32"} or ["conv1:fp32"].
    `max_accuracy_drop` (int8) keeps the most sensitive layers in fp32 until top-1
    agreement with fp32 on `calib` is within that many points (summary["fp32_layers"]).
    precision="bf16"/"fp16" rounds Conv/Gemm/MatMul weights and inputs to 16 bits
    with fp32 accumulation (fp32 kernels still run).
    """
    if isinstance(tactic_sources, str):
        tactic_sources = [s for s in tactic_sources.split(",") if s]
    if isinstance(layer_precision, Mapping):
        layer_precision = [f"{k}:{v}" for k, v in layer_precision.items()]
    if calib is not None:
        calib = [dict(b) for b in calib]
        if not calib:
            raise _core.InvalidArgumentError("calibration data is empty: the iterable gave no batches")
    return _core.build(
        os.fspath(onnx_path),
        os.fspath(plan_path),
        precision=precision,
        shapes=_shape_spec(shapes, "shapes"),
        min_shapes=_shape_spec(min_shapes, "min_shapes"),
        opt_shapes=_shape_spec(opt_shapes, "opt_shapes"),
        max_shapes=_shape_spec(max_shapes, "max_shapes"),
        timing_cache=os.fspath(timing_cache) if timing_cache is not None else "",
        tactic_sources=list(tactic_sources or []),
        threads=int(threads),
        time_tactics=bool(time_tactics),
        calib=calib,
        calib_cache=os.fspath(calib_cache) if calib_cache is not None else "",
        calibrator=calibrator,
        layer_precisions=list(layer_precision or []),
        max_accuracy_drop=-1.0 if max_accuracy_drop is None else float(max_accuracy_drop),
    )
