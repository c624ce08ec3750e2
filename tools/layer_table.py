#!/usr/bin/env python3
"""Print the layers-before/after table of docs/OPTIMIZER.md.

For each model: its ONNX node count (and without ConstantOfShape nodes, which
the onnx wheel's light models use to stand in for weights), the node count after the optimizer's
default pipeline (kiln.InferenceSession(path, passes=["all"]).get_layers()),
the ratio, and the kiln ops the graph ends up with.

  PYTHONPATH=build/python python tools/layer_table.py --zoo build/.cache/zoo_models \
      resnet50 mobilenetv2 bert_base inception_v2 vgg19 densenet121

A name is looked up as <zoo>/<name>.onnx first, then as the onnx wheel's
light model onnx/backend/test/data/light/light_<name>.onnx; a path works too.
"""
from __future__ import annotations

import argparse
import collections
from pathlib import Path

import onnx

import kiln


def find_model(name: str, zoo: Path | None) -> tuple[Path, str]:
    p = Path(name)
    if p.suffix == ".onnx" and p.is_file():
        return p, p.stem
    if zoo is not None and (zoo / f"{name}.onnx").is_file():
        return zoo / f"{name}.onnx", f"{name} (make_models.py)"
    light = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / f"light_{name}.onnx"
    if light.is_file():
        return light, f"{name} (onnx light)"
    raise SystemExit(f"no model named {name!r} (looked in {zoo} and the onnx wheel's light models)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+")
    ap.add_argument("--zoo", type=Path, default=None, help="folder of make_models.py's .onnx files")
    args = ap.parse_args()
    print("| model | ONNX nodes | without ConstantOfShape | after optimizer | after / without ConstantOfShape | most frequent ops after |")
    print("|---|---:|---:|---:|---:|---|")
    for name in args.models:
        path, label = find_model(name, args.zoo)
        nodes = onnx.load(str(path), load_external_data=False).graph.node
        before = len(nodes)
        # The light models store their weights as ConstantOfShape nodes (which fold into constants).
        compute = sum(1 for n in nodes if n.op_type != "ConstantOfShape")
        layers = kiln.InferenceSession(str(path), threads=1, passes=["all"]).get_layers()
        ops = collections.Counter(layer["op"] for layer in layers)
        top = ", ".join(f"{op} {n}" for op, n in ops.most_common(4))
        print(f"| {label} | {before} | {compute} | {len(layers)} | {len(layers) / compute:.0%} | {top} |")


if __name__ == "__main__":
    main()
