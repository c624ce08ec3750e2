"""The metric names `kiln serve` really exports: serve examples/model_repository,
send one inference request to each model, scrape /metrics. Shared by the docs
and deploy tests (one server per test session)."""
from __future__ import annotations

import functools
import json
import re
import shutil
import tempfile
import urllib.request
from pathlib import Path

from server_util import KilnServer, REPO_ROOT

EXAMPLE_REPOSITORY = REPO_ROOT / "examples" / "model_repository"

# A Prometheus metric name, the way docs and queries mention Kiln's: Triton's nv_*,
# Kiln's own kiln_inference_*, and the process_* collector names.
METRIC_NAME = re.compile(r"\b((?:nv|kiln_inference|process)_[a-z0-9_]*[a-z0-9])\b")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# The nv_gpu_* families appear only where NVML sees a GPU: those are checked
# against the source that writes them instead of a scrape.
GPU_METRICS_SOURCE = REPO_ROOT / "src" / "server" / "gpu_metrics.cc"


def _infer_once(server: KilnServer, model: str) -> None:
    """One request with zeros for every input of `model`, from its metadata (FP32 only)."""
    with urllib.request.urlopen(f"http://{server.http_url}/v2/models/{model}", timeout=10) as r:
        meta = json.load(r)
    inputs = []
    for tensor in meta["inputs"]:
        if tensor["datatype"] != "FP32":
            return
        shape = [1 if d < 0 else d for d in tensor["shape"]]
        count = 1
        for d in shape:
            count *= d
        inputs.append({"name": tensor["name"], "shape": shape, "datatype": "FP32", "data": [0.0] * count})
    body = json.dumps({"inputs": inputs}).encode()
    req = urllib.request.Request(f"http://{server.http_url}/v2/models/{model}/infer", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 200


@functools.lru_cache(maxsize=None)
def exported_metrics() -> frozenset[str]:
    """Every sample name on /metrics after one request per FP32 model (histograms with their
    _bucket/_sum/_count series and their base name)."""
    tmp = Path(tempfile.mkdtemp(prefix="kiln_metrics_"))
    repo = tmp / "repo"
    shutil.copytree(EXAMPLE_REPOSITORY, repo)
    server = KilnServer(repo)
    try:
        for model in ("simple", "tiny_mlp"):
            _infer_once(server, model)
        text = server.metrics()
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return frozenset(names)


@functools.lru_cache(maxsize=None)
def gpu_metrics() -> frozenset[str]:
    """The GPU family names gpu_metrics.cc writes (quoted as "nv_..." there)."""
    return frozenset(re.findall(r'"((?:nv_gpu|nv_energy)_[a-z0-9_]*[a-z0-9])"', GPU_METRICS_SOURCE.read_text()))


def is_exported(name: str, exported: frozenset[str]) -> bool:
    return (name in exported or name in gpu_metrics()
            or any(name.endswith(s) and name[: -len(s)] in exported for s in HISTOGRAM_SUFFIXES))
