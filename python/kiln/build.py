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
) -> dict:
    """Optimizes `onnx_path` and writes the plan to `plan_path`.

    `shapes` fixes input shapes ({"input": (8, 3, 224, 224)} or "input:8x3x224x224");
    `min_shapes`/`opt_shapes`/`max_shapes` give a dynamic profile instead. Tactic
    timings are read from and saved to `timing_cache` when given. Returns a
    summary: onnx_nodes, layers, peak_activation_bytes, naive_activation_bytes,
    timed_layers, cache_hits, cache_misses, seconds. Open the plan with
    kiln.InferenceSession(plan_path).
    """
    if isinstance(tactic_sources, str):
        tactic_sources = [s for s in tactic_sources.split(",") if s]
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
    )
