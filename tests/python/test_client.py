"""The C++ client (examples/cpp/{http,grpc}_client built on kiln::client) and
`kiln perf` against `kiln serve` on examples/model_repository: the examples'
answers, clear errors, argument errors of kiln perf, and short perf runs over
HTTP and gRPC whose CSV is sane. About 10 s on 2 cores."""
from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest

from server_util import REPO_ROOT, KilnServer, free_port, kiln_exe

REPO = REPO_ROOT / "examples" / "model_repository"
PERF_COLUMNS = ["Inferences/Second", "Client Send", "Network+Server Send/Recv", "Server Queue",
                "Server Compute Input", "Server Compute Infer", "Server Compute Output", "Client Recv",
                "p50 latency", "p90 latency", "p95 latency", "p99 latency"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if kiln_exe() is None:
        pytest.skip("kiln is not built")
    # KilnServer writes its log beside the repository's folder: use a temporary copy's parent.
    work = tmp_path_factory.mktemp("client")
    (work / "repo").symlink_to(REPO)
    srv = KilnServer(work / "repo", "--model-control-mode", "explicit", "--load-model", "simple")
    yield srv
    assert srv.stop() == 0


def example(name: str) -> Path:
    exe = Path(kiln_exe()).resolve().parents[2] / "examples" / "cpp" / name
    if not exe.is_file():
        pytest.skip(f"{exe} is not built")
    return exe


def run(*cmd, timeout=60):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_cpp_example(server, protocol):
    url = server.http_url if protocol == "http" else server.grpc_url
    r = run(example(f"{protocol}_client"), "-u", url)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "OUTPUT0 = INPUT0 + INPUT1" in r.stdout and "JSON and async infer: same answers" in r.stdout
    assert "NotFound" in r.stdout and "no_such_model" in r.stdout  # the server's error, with its code
    assert r.stdout.rstrip().endswith("OK")


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_cpp_example_connection_refused(protocol):
    if kiln_exe() is None:
        pytest.skip("kiln is not built")
    r = run(example(f"{protocol}_client"), "-u", f"127.0.0.1:{free_port()}")
    assert r.returncode == 1
    assert "Connection refused" in r.stderr or "failed to connect" in r.stderr, r.stderr


def perf(*args, timeout=60):
    return run(kiln_exe(), "perf", *args, timeout=timeout)


@pytest.mark.parametrize("args, message", [
    (["--concurrency-range", "0:4"], "start must be >= 1"),
    (["--concurrency-range", "4:2"], "end 2 is below start 4"),
    (["--concurrency-range", "1:x"], "'x' is not a number"),
    (["--request-rate-range", "0"], "start must be > 0"),
    (["--concurrency-range", "1", "--request-rate-range", "10"], "exclude each other"),
    (["-i", "udp"], "unknown protocol 'udp'"),
    (["--shape", "INPUT0:3,x"], "'x' is not a dim"),
])
def test_perf_argument_errors(args, message):
    if kiln_exe() is None:
        pytest.skip("kiln is not built")
    r = perf("-m", "simple", "-u", f"127.0.0.1:{free_port()}", *args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert message in r.stderr, r.stderr


@pytest.mark.parametrize("args, code, message", [
    (["-b", "9"], 2, "at most max_batch_size 8"),
    (["--shape", "NOPE:16"], 2, "has no input 'NOPE' (inputs: INPUT0, INPUT1)"),
    (["--shape", "INPUT0:15"], 2, "dim 0 is 15 but the model fixes it to 16"),
    (["--input-data", "/no/such/file.json"], 2, "cannot open the file"),
])
def test_perf_model_errors(server, args, code, message):
    r = perf("-m", "simple", "-u", server.http_url, *args)
    assert r.returncode == code, r.stdout + r.stderr
    assert message in r.stderr, r.stderr


def test_perf_unknown_model_and_refused(server):
    r = perf("-m", "nope", "-u", server.http_url)
    assert r.returncode == 1 and "model 'nope' is not ready" in r.stderr, r.stderr
    r = perf("-m", "simple", "-u", f"127.0.0.1:{free_port()}")
    assert r.returncode == 1 and "Connection refused" in r.stderr, r.stderr


def read_csv(path: Path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_perf_concurrency_csv(server, tmp_path, protocol):
    url = server.http_url if protocol == "http" else server.grpc_url
    out = tmp_path / "perf.csv"
    r = perf("-m", "simple", "-i", protocol, "-u", url, "--concurrency-range", "1:2", "-p", "200", "-r", "3",
             "-f", out)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Request concurrency: 2" in r.stdout and "compute infer" in r.stdout
    rows = read_csv(out)
    assert [row["Concurrency"] for row in rows] == ["1", "2"]
    for row in rows:
        assert set(PERF_COLUMNS) <= set(row)
        assert float(row["Inferences/Second"]) > 0
        assert int(row["p99 latency"]) >= int(row["p95 latency"]) >= int(row["p50 latency"]) > 0
        assert int(row["Server Queue"]) + int(row["Server Compute Infer"]) > 0  # the server's split arrived
    assert "Successful request count: 0\n" not in r.stdout


def test_perf_request_rate_json_data(server, tmp_path):
    data = tmp_path / "data.json"
    data.write_text(json.dumps({"data": [
        {"INPUT0": list(range(16)), "INPUT1": {"content": [1.0] * 16, "shape": [16]}},
        {"INPUT0": [[0.5] * 16], "INPUT1": [0.25] * 16},
    ]}))
    out = tmp_path / "rate.csv"
    r = perf("-m", "simple", "-u", server.grpc_url, "-i", "grpc", "-b", "2", "--input-data", data,
             "--request-rate-range", "100", "-p", "200", "-r", "3", "--percentile", "95", "--verbose-csv", "-f", out)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = read_csv(out)
    assert len(rows) == 1 and rows[0]["Request Rate"] == "100"
    assert float(rows[0]["Inferences/Second"]) > 0 and "Avg latency" in rows[0]
    assert "Delayed Request Count" in r.stdout and "p95 latency" in r.stdout


def test_plot_perf_svg(tmp_path):
    import sys
    import xml.etree.ElementTree as ET

    rows = "Concurrency,Inferences/Second,p50 latency,p99 latency\n1,100.5,900,1500\n2,180,1000,2500\n4,300,1300,4000\n"
    (tmp_path / "a.csv").write_text(rows)
    (tmp_path / "b.csv").write_text(rows.replace("100.5", "90"))
    out = tmp_path / "sweep.svg"
    r = run(sys.executable, REPO_ROOT / "bench" / "plot_perf.py", f"{tmp_path / 'a.csv'}:kiln perf",
            f"{tmp_path / 'b.csv'}:tritonclient", "-o", out)
    assert r.returncode == 0, r.stderr
    svg = ET.parse(out).getroot()
    ns = "{http://www.w3.org/2000/svg}"
    assert len(svg.findall(f"{ns}polyline")) == 6  # throughput x2, p50 and p99 x2
    labels = [t.text for t in svg.iter(f"{ns}text")]
    assert "kiln perf" in labels and "tritonclient p99" in labels
    for line in svg.findall(f"{ns}polyline"):  # every point inside the canvas
        for pt in line.get("points").split():
            x, y = map(float, pt.split(","))
            assert 0 <= x <= float(svg.get("width")) and 0 <= y <= float(svg.get("height"))
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    r = run(sys.executable, REPO_ROOT / "bench" / "plot_perf.py", tmp_path / "bad.csv", "-o", out)
    assert r.returncode != 0 and "no column" in r.stderr
