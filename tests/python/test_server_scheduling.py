"""Scheduling, metrics and lifecycle of kiln serve: dynamic batching really
forms batches, queue limits and timeouts reject clearly, instances run
concurrently, metrics agree with the statistics endpoint, load/unload keeps
the resident set flat, poll mode follows the repository, SIGTERM drains."""
from __future__ import annotations

import http.client
import json
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from server_util import KilnServer, add_sub_model, kiln_exe, slow_model, write_model

httpclient = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402

pytestmark = pytest.mark.skipif(kiln_exe() is None, reason="kiln is not built")


def post_json(port, path, body, timeout=60):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request("POST", path, body=json.dumps(body))
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, json.loads(data) if data else None


def slow_request(value=1.0, priority=0, timeout_us=0):
    body = {"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": [value]}]}
    params = {}
    if priority:
        params["priority"] = priority
    if timeout_us:
        params["timeout"] = timeout_us
    if params:
        body["parameters"] = params
    return body


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    repo = tmp_path_factory.mktemp("sched") / "repo"
    write_model(repo, "batched", slow_model(384),
                "max_batch_size: 16\ndynamic_batching { max_queue_delay_microseconds: 20000 }\n")
    write_model(repo, "limited", slow_model(640),
                "max_batch_size: 1\ndynamic_batching { default_queue_policy { max_queue_size: 2 } }\n")
    write_model(repo, "timeouts", slow_model(640),
                "max_batch_size: 1\ndynamic_batching { priority_levels: 2 default_priority_level: 2\n"
                "  default_queue_policy { default_timeout_microseconds: 1 allow_timeout_override: true } }\n")
    write_model(repo, "parallel", slow_model(512), "max_batch_size: 1\ninstance_group [ { count: 2 kind: KIND_CPU } ]\n")
    write_model(repo, "simple", add_sub_model(), "max_batch_size: 8\n")
    return repo


@pytest.fixture(scope="module")
def server(repo):
    srv = KilnServer(repo)
    yield srv
    assert srv.stop() == 0


def test_dynamic_batching_forms_batches(server):
    n = 48
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda i: post_json(server.http_port, "/v2/models/batched/infer",
                                                    slow_request(float(i))), range(n)))
    for i, (status, body) in enumerate(results):
        assert status == 200, body
        assert body["outputs"][0]["data"] == [float(i)]  # every request got its own rows back
    count = server.metric("nv_inference_count", model="batched", version="1")
    execs = server.metric("nv_inference_exec_count", model="batched", version="1")
    assert count == n
    assert execs <= n / 3, f"{execs} executions for {n} requests: batches did not form"
    # The batch-size histogram saw batches larger than 1.
    text = server.metrics()
    le1 = [line for line in text.splitlines() if line.startswith('kiln_inference_batch_size_bucket{model="batched"')
           and 'le="1"' in line][0]
    assert float(le1.rsplit(" ", 1)[1]) < execs
    # The statistics endpoint agrees with the metrics.
    stats = httpclient.InferenceServerClient(server.http_url).get_inference_statistics("batched")["model_stats"][0]
    assert stats["inference_count"] == count and stats["execution_count"] == execs
    assert sum(b["compute_infer"]["count"] for b in stats["batch_stats"]) == execs
    assert stats["inference_stats"]["success"]["count"] == server.metric(
        "nv_inference_request_success", model="batched", version="1")
    assert 'nv_inference_queue_duration_us{model="batched",version="1"}' in text
    assert "process_resident_memory_bytes" in text and "nv_cpu_utilization" in text


def test_auto_complete_off_runs_each_request_alone(tmp_path):
    """--disable-auto-complete-config (Triton's flag): a batchable model without dynamic_batching
    is not given one, so concurrent requests execute one by one; a config without its inputs
    and outputs fails to load with the reason."""
    repo = tmp_path / "repo"
    write_model(repo, "alone", slow_model(256), 'max_batch_size: 16\n'
                'input [ { name: "x" data_type: TYPE_FP32 dims: [ 1 ] } ]\n'
                'output [ { name: "y" data_type: TYPE_FP32 dims: [ 1 ] } ]\n')
    write_model(repo, "bare", add_sub_model())  # no config.pbtxt
    srv = KilnServer(repo, "--disable-auto-complete-config", wait_ready=False)
    try:
        client = httpclient.InferenceServerClient(srv.http_url)
        for _ in range(300):
            if client.is_model_ready("alone"):
                break
            time.sleep(0.1)
        assert "dynamic_batching" not in client.get_model_config("alone")
        n = 12
        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(lambda i: post_json(srv.http_port, "/v2/models/alone/infer",
                                                        slow_request(float(i))), range(n)))
        assert all(status == 200 for status, _ in results), results
        assert srv.metric("nv_inference_exec_count", model="alone", version="1") == n
        assert not client.is_model_ready("bare")
        index = {m["name"]: m for m in client.get_model_repository_index()}
        assert "--disable-auto-complete-config" in index["bare"]["reason"], index["bare"]
    finally:
        assert srv.stop() == 0


def test_queue_size_limit_rejects(server):
    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(lambda i: post_json(server.http_port, "/v2/models/limited/infer", slow_request()),
                                range(12)))
    codes = [s for s, _ in results]
    assert codes.count(200) >= 3 and 503 in codes, codes
    rejected = [b["error"] for s, b in results if s != 200]
    assert all("maximum queue size" in e for e in rejected), rejected
    assert server.metric("nv_inference_request_failure", model="limited", version="1", reason="REJECTED") == len(rejected)
    assert post_json(server.http_port, "/v2/models/simple/infer", {"inputs": [
        {"name": "INPUT0", "shape": [1, 16], "datatype": "FP32", "data": [0.0] * 16},
        {"name": "INPUT1", "shape": [1, 16], "datatype": "FP32", "data": [0.0] * 16}]})[0] == 200


def test_queue_timeouts_and_priorities(server):
    # Level-2 requests time out after 1 us in the queue; level 1 (override timeout 0 = policy) waits.
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(post_json, server.http_port, "/v2/models/timeouts/infer", slow_request(priority=2))
                   for _ in range(6)]
        results = [f.result() for f in futures]
    expired = [b["error"] for s, b in results if s != 200]
    assert expired and all("timeout" in e for e in expired), results
    status, body = post_json(server.http_port, "/v2/models/timeouts/infer", slow_request(priority=1, timeout_us=30_000_000))
    assert status == 200, body


def test_instances_run_concurrently(server):
    one = time.time()
    assert post_json(server.http_port, "/v2/models/parallel/infer", slow_request())[0] == 200
    single = time.time() - one
    start = time.time()
    with ThreadPoolExecutor(4) as pool:
        codes = [s for s, _ in pool.map(lambda i: post_json(server.http_port, "/v2/models/parallel/infer",
                                                            slow_request()), range(4))]
    assert codes == [200] * 4
    assert server.metric("nv_inference_exec_count", model="parallel", version="1") == 5
    # Two contexts exist; on a busy 2-core machine their overlap is not timed strictly.
    assert time.time() - start < 4 * single + 5


def test_load_unload_memory_flat(tmp_path):
    repo = tmp_path / "repo"
    write_model(repo, "m", add_sub_model(), "max_batch_size: 8\n")
    srv = KilnServer(repo, "--model-control-mode", "explicit")
    try:
        client = httpclient.InferenceServerClient(srv.http_url)
        a = np.ones((1, 16), np.float32)
        ins = [httpclient.InferInput("INPUT0", [1, 16], "FP32"), httpclient.InferInput("INPUT1", [1, 16], "FP32")]
        ins[0].set_data_from_numpy(a)
        ins[1].set_data_from_numpy(a)
        rss = []
        for i in range(50):
            client.load_model("m")
            client.infer("m", ins)
            client.unload_model("m")
            if i in (9, 49):
                rss.append(srv.rss_bytes())
        assert not client.is_model_ready("m")
        assert rss[1] - rss[0] < 8 << 20, f"resident set grew from {rss[0]} to {rss[1]} bytes"
    finally:
        assert srv.stop() == 0


def test_poll_mode_follows_repository(tmp_path):
    repo = tmp_path / "repo"
    write_model(repo, "a", add_sub_model(), "max_batch_size: 8\n")
    srv = KilnServer(repo, "--model-control-mode", "poll", "--repository-poll-secs", "1")
    try:
        client = httpclient.InferenceServerClient(srv.http_url)
        assert client.is_model_ready("a")
        with pytest.raises(InferenceServerException, match="not allowed"):
            client.load_model("a")
        write_model(repo, "b", add_sub_model(), "max_batch_size: 8\n", versions=(1, 3))
        shutil.rmtree(repo / "a")
        deadline = time.time() + 20
        while time.time() < deadline and not (client.is_model_ready("b") and not client.is_model_ready("a")):
            time.sleep(0.2)
        assert client.is_model_ready("b") and not client.is_model_ready("a")
        assert client.get_model_metadata("b")["versions"] == ["3"]
    finally:
        assert srv.stop() == 0


def test_sigterm_drains_in_flight_requests(tmp_path):
    repo = tmp_path / "repo"
    write_model(repo, "slow", slow_model(1024), "max_batch_size: 4\n")
    srv = KilnServer(repo, "--shutdown-grace-secs", "1", "--exit-timeout-secs", "60")
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        post_json(srv.http_port, "/v2/models/slow/infer", slow_request(3.0), timeout=120))) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    srv.proc.send_signal(15)
    time.sleep(0.3)
    conn = http.client.HTTPConnection("127.0.0.1", srv.http_port, timeout=10)
    conn.request("GET", "/v2/health/ready")
    r = conn.getresponse()
    assert r.status != 200  # readiness is off while the server still answers
    r.read()
    conn.close()
    for t in threads:
        t.join(120)
    assert srv.proc.wait(120) == 0
    assert [s for s, _ in results] == [200] * 3, results
    assert all(b["outputs"][0]["data"] == [3.0] for _, b in results)
    srv.log.close()
