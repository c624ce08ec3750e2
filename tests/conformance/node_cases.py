"""ONNX's own backend node test cases, run through kiln.backend.

The cases are generated from the pinned onnx package
(onnx.backend.test.case.node.collect_testcases: model + inputs + expected
outputs computed by ONNX's reference implementation) and compared with the
same rule as ONNX's backend test runner (Runner.assert_similar_outputs).

    python tests/conformance/node_cases.py             # summary by category
    python tests/conformance/node_cases.py -k conv     # only names containing 'conv'
    python tests/conformance/node_cases.py --failures  # list each failure and its error
    python tests/conformance/node_cases.py --markdown docs/CONFORMANCE.md
"""
from __future__ import annotations

import argparse
import collections
import os
import sys
import time
import warnings

import numpy as np
import onnx
from onnx.backend.test.runner import Runner

HERE = os.path.dirname(os.path.abspath(__file__))
EXPECTED_FAILURES = os.path.join(HERE, "expected_failures.txt")

FLOAT8_4_TYPES = {
    onnx.TensorProto.FLOAT8E4M3FN, onnx.TensorProto.FLOAT8E4M3FNUZ, onnx.TensorProto.FLOAT8E5M2,
    onnx.TensorProto.FLOAT8E5M2FNUZ, onnx.TensorProto.UINT4, onnx.TensorProto.INT4,
    onnx.TensorProto.FLOAT4E2M1,
}
for _name in ("FLOAT8E8M0", "UINT2", "INT2"):
    if hasattr(onnx.TensorProto, _name):
        FLOAT8_4_TYPES.add(getattr(onnx.TensorProto, _name))


def load_cases():
    """All node cases of the pinned onnx package, in a stable order."""
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        cases = collect_testcases(None)
    return sorted(cases, key=lambda c: c.name)


def _types_in(model: onnx.ModelProto):
    """Element types and type kinds used by the model's graph I/O and initializers."""
    elem, kinds = set(), set()

    def visit_type(t):
        which = t.WhichOneof("value")
        kinds.add(which)
        if which == "tensor_type":
            elem.add(t.tensor_type.elem_type)
        elif which == "sequence_type":
            visit_type(t.sequence_type.elem_type)
        elif which == "optional_type":
            visit_type(t.optional_type.elem_type)
        elif which == "map_type":
            visit_type(t.map_type.value_type)

    g = model.graph
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        visit_type(vi.type)
    for init in g.initializer:
        elem.add(init.data_type)
    for node in g.node:
        for a in node.attribute:
            if a.HasField("t"):
                elem.add(a.t.data_type)
            if a.name == "to":
                elem.add(a.i)
    return elem, kinds


def category(case) -> str:
    """One category per case; everything but 'core' is excluded from the core pass rate."""
    model = case.model
    domains = {n.domain for n in model.graph.node}
    ops = {n.op_type for n in model.graph.node}
    elem, kinds = _types_in(model)
    if "ai.onnx.ml" in domains:
        return "ai.onnx.ml"
    if any(d.startswith("ai.onnx.preview") for d in domains):
        return "training"
    if "ImageDecoder" in ops:
        return "image"
    if onnx.TensorProto.STRING in elem or any(o.startswith("String") or o == "RegexFullMatch" for o in ops):
        return "string"
    if kinds & {"sequence_type", "optional_type", "map_type"} or any(
        o.startswith("Sequence") or o.startswith("Optional") or o in ("SplitToSequence", "ConcatFromSequence")
        for o in ops
    ):
        return "sequence/optional"
    if elem & FLOAT8_4_TYPES:
        return "float8/int4/float4"
    return "core"


def run_case(case, backend):
    """Returns None on success, else a one-line error message."""
    try:
        rep = backend.prepare(case.model, "CPU")
        for inputs, ref_outputs in case.data_sets:
            inputs = [_normalize(x) for x in inputs]
            ref_outputs = [_normalize(x) for x in ref_outputs]
            outputs = rep.run(inputs)
            Runner.assert_similar_outputs(ref_outputs, outputs, rtol=case.rtol, atol=case.atol)
    except Exception as e:  # noqa: BLE001  (every failure is reported, none stops the run)
        msg = f"{type(e).__name__}: {e}".strip().replace("\n", " | ")
        return msg[:400]
    return None


def _normalize(x):
    if isinstance(x, onnx.TensorProto):
        return onnx.numpy_helper.to_array(x)
    return x


def readable_reason(err: str) -> str:
    """A short reason a user can read, from a failure message."""
    import re

    m = re.search(r"unknown operator '([\w.]+)'(?: \(domain '([\w.]*)'\))?", err)
    if m:
        domain = f" ({m.group(2)})" if m.group(2) else ""
        return f"operator {m.group(1)}{domain} is not implemented yet"
    m = re.search(r"\((\w+)\): no kernel for opset (\d+)", err)
    if m:
        return f"{m.group(1)} at opset {m.group(2)} is not implemented yet"
    if err.startswith("AssertionError"):
        return "output differs from ONNX's reference beyond the case tolerance: " + err[15:120].strip(" |")
    return err[:150]


def read_expected_failures(path=EXPECTED_FAILURES):
    """name -> reason, from lines 'test_name: reason' (# comments allowed)."""
    out = {}
    if not os.path.exists(path):
        return out
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip() if line.lstrip().startswith("#") else line.strip()
            if not line:
                continue
            name, _, reason = line.partition(":")
            out[name.strip()] = reason.strip()
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-k", default=None, help="only cases whose name contains this")
    ap.add_argument("--failures", action="store_true", help="print each failure")
    ap.add_argument("--markdown", default=None, help="write the pass counts as markdown to this file")
    ap.add_argument("--write-expected", default=None, help="write current failures as an expected-failure list")
    args = ap.parse_args(argv)

    import kiln.backend as backend

    t0 = time.time()
    cases = [c for c in load_cases() if args.k is None or args.k in c.name]
    counts = collections.defaultdict(lambda: [0, 0])
    failures = {}
    for c in cases:
        cat = category(c)
        err = run_case(c, backend)
        counts[cat][1] += 1
        if err is None:
            counts[cat][0] += 1
        else:
            failures[c.name] = (cat, err)
    elapsed = time.time() - t0
    total_pass = sum(p for p, _ in counts.values())
    total = sum(n for _, n in counts.values())
    lines = ["| category | passed | cases | rate |", "|---|---|---|---|"]
    for cat in sorted(counts, key=lambda k: (k != "core", k)):
        p, n = counts[cat]
        lines.append(f"| {cat} | {p} | {n} | {100.0 * p / n:.1f}% |")
    lines.append(f"| **all** | {total_pass} | {total} | {100.0 * total_pass / max(total, 1):.1f}% |")
    print("\n".join(lines))
    print(f"{total_pass} passed, {total - total_pass} failed in {elapsed:.0f} s")
    if args.failures:
        for name, (cat, err) in sorted(failures.items()):
            print(f"{name} [{cat}]: {err}")
    if args.write_expected:
        with open(args.write_expected, "w", encoding="utf-8") as f:
            f.write("# ONNX node cases that Kiln does not pass yet, one per line: 'name: reason'.\n"
                    "# Regenerate with tests/conformance/node_cases.py --write-expected FILE and edit the reasons.\n")
            for name, (cat, err) in sorted(failures.items()):
                f.write(f"{name}: {readable_reason(err)}\n")
    if args.markdown:
        write_markdown(args.markdown, lines, cases, failures, elapsed)
    return 0


def _op_table(cases, failures):
    """Rows of (op, opsets, dtypes, passed, cases) from the registry (`kiln ops --json`) and the cases."""
    import json
    import subprocess

    kiln_bin = os.environ.get("KILN_BIN") or os.path.join(HERE, "..", "..", "build", "tools", "kiln", "kiln")
    registry = json.loads(subprocess.run([kiln_bin, "ops", "--json"], check=True, capture_output=True, text=True).stdout)
    per_op = collections.defaultdict(lambda: [0, 0, set()])
    for c in cases:
        node_ops = {(n.domain if n.domain != "ai.onnx" else "", n.op_type) for n in c.model.graph.node}
        if len(c.model.graph.node) != 1:
            continue  # expanded (function body) cases exercise several ops: count them for none
        passed = c.name not in failures
        elem, _ = _types_in(c.model)
        for op in node_ops:
            per_op[op][1] += 1
            if passed:
                per_op[op][0] += 1
                per_op[op][2].update(onnx.helper.tensor_dtype_to_np_dtype(t).name if t not in FLOAT8_4_TYPES
                                     else onnx.TensorProto.DataType.Name(t).lower() for t in elem if t)
    rows = []
    for entry in registry:
        key = (entry["domain"], entry["op"])
        versions = ", ".join(f"{v['since']}+" if v["until"] == 0 else f"{v['since']}-{v['until']}"
                             for v in entry["versions"])
        passed, total, dtypes = per_op.get(key, [0, 0, set()])
        name = entry["op"] if not entry["domain"] else f"{entry['domain']}.{entry['op']}"
        rows.append((name, versions, ", ".join(sorted(dtypes)), passed, total))
    return rows


def write_markdown(path, summary_lines, cases, failures, elapsed):
    rows = _op_table(cases, failures)
    out = [
        "# ONNX conformance",
        "",
        "Generated by `python tests/conformance/node_cases.py --markdown docs/CONFORMANCE.md`",
        f"(onnx {onnx.__version__}, {len(cases)} node cases, {elapsed:.0f} s). The cases come from",
        "`onnx.backend.test.case.node.collect_testcases` and are compared with ONNX's runner rule.",
        "CI runs them all (`tests/python/test_conformance.py`); the cases that fail are listed with",
        "a reason in `tests/conformance/expected_failures.txt`.",
        "",
        "## Pass counts by category",
        "",
        "'core' excludes ai.onnx.ml and training ops, strings, sequence/optional/map types,",
        "float8/int4/float4 types and ImageDecoder.",
        "",
        *summary_lines,
        "",
        "## Supported operators",
        "",
        "From the op registry (`kiln ops`). dtypes: the element types of the single-node cases that",
        "pass for the op (kernels may accept more).",
        "",
        "| operator | opsets | dtypes seen passing | node cases passed |",
        "|---|---|---|---|",
    ]
    for name, versions, dtypes, passed, total in rows:
        out.append(f"| {name} | {versions} | {dtypes or '-'} | {passed}/{total} |")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    sys.exit(main())
