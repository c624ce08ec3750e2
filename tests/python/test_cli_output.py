"""The kiln command's output modes (tools/kiln/output.h): progress on a terminal, plain lines in
logs, --quiet, and --log-format json (every stderr line and the result are JSON)."""
from __future__ import annotations

import json
import os
import pty
import select
import subprocess

from conftest import EXAMPLE_MODELS

MODEL = EXAMPLE_MODELS / "tiny_cnn.onnx"


def build(kiln_exe, tmp_path, *flags, expect=0):
    r = subprocess.run([kiln_exe, *flags, "build", str(MODEL), "-o", str(tmp_path / "m.plan")],
                       capture_output=True, text=True, timeout=300, env=dict(os.environ, KILN_SKIP_TIMING="0"))
    assert r.returncode == expect, r.stdout + r.stderr
    return r


def test_log_lines_are_plain(kiln_exe, tmp_path):
    r = build(kiln_exe, tmp_path)
    progress = [line for line in r.stderr.splitlines() if line.startswith("kiln build: tactics")]
    assert progress and progress[-1].startswith("kiln build: tactics 6/6"), r.stderr
    assert "\r" not in r.stderr and "\033" not in r.stderr
    assert "wrote" in r.stdout and "layers" in r.stdout


def test_quiet(kiln_exe, tmp_path):
    r = build(kiln_exe, tmp_path, "--quiet")
    assert r.stderr == ""
    assert r.stdout.startswith("wrote ") and len(r.stdout.splitlines()) == 1
    # The flag may also follow the subcommand.
    r = subprocess.run([kiln_exe, "build", str(MODEL), "-o", str(tmp_path / "n.plan"), "--quiet"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stderr == "" and len(r.stdout.splitlines()) == 1


def test_json(kiln_exe, tmp_path):
    r = build(kiln_exe, tmp_path, "--log-format", "json")
    events = [json.loads(line) for line in r.stderr.splitlines()]
    assert events and all(e["command"] == "build" and e["event"] == "progress" for e in events)
    assert events[-1]["done"] == events[-1]["total"]
    result = json.loads(r.stdout)
    assert result["event"] == "built" and result["plan"] == str(tmp_path / "m.plan") and result["layers"] > 0
    err = subprocess.run([kiln_exe, "--log-format", "json", "build", str(tmp_path / "missing.onnx"), "-o", "x.plan"],
                         capture_output=True, text=True, timeout=60)
    assert err.returncode == 1
    (event,) = [json.loads(line) for line in err.stderr.splitlines()]
    assert event["event"] == "error" and "missing.onnx" in event["message"]
    bad = subprocess.run([kiln_exe, "--log-format", "xml", "ops"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "xml" in bad.stderr


def test_terminal_progress_is_redrawn(kiln_exe, tmp_path):
    """With stderr on a terminal, progress is one line redrawn with \\r and cleared at the end."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([kiln_exe, "build", str(MODEL), "-o", str(tmp_path / "m.plan")],
                            stdout=subprocess.DEVNULL, stderr=slave, env=dict(os.environ, KILN_SKIP_TIMING="0"))
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        if not ready:
            break
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert proc.wait(60) == 0
    text = out.decode()
    assert "\r\033[K" in text and "tactics [" in text and "6/6" in text, repr(text)
    assert text.endswith("\r\033[K"), repr(text[-40:])


def test_serve_json_and_quiet(kiln_exe, tmp_path):
    """kiln serve's status lines are JSON with --log-format json and absent with --quiet; errors stay."""
    import signal
    import time
    import urllib.request

    from server_util import REPO_ROOT, free_port

    repo = REPO_ROOT / "examples" / "model_repository"
    proc = subprocess.Popen([kiln_exe, "--log-format", "json", "serve", "--model-repository", str(repo),
                             "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stderr.readline()
    proc.send_signal(signal.SIGTERM)
    rest = proc.communicate(timeout=60)[1]
    assert proc.returncode == 0
    events = [json.loads(line) for line in [first, *rest.splitlines()]]
    assert events[0]["event"] == "status" and "ready=true" in events[0]["message"]
    assert events[-1] == {"command": "serve", "event": "status", "message": "stopped"}
    http_port = free_port()
    quiet = subprocess.Popen([kiln_exe, "serve", "--quiet", "--model-repository", str(repo), "--http-port",
                              str(http_port), "--grpc-port", "0", "--metrics-port", "0"], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and quiet.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/v2/health/ready", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.1)
    quiet.send_signal(signal.SIGTERM)
    assert quiet.communicate(timeout=60)[1] == "" and quiet.returncode == 0
    bad = subprocess.run([kiln_exe, "serve", "--quiet", "--model-repository", str(tmp_path / "none")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "error" in bad.stderr and "none" in bad.stderr


def test_bench_json(kiln_exe):
    r = subprocess.run([kiln_exe, "--log-format", "json", "bench", str(EXAMPLE_MODELS / "tiny_mlp.onnx"),
                        "--iterations", "5", "--warmup", "0", "--batch", "2"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    (result,) = [json.loads(line) for line in r.stdout.splitlines()]
    assert result["event"] == "result" and result["runtime"] == "Kiln" and result["batch"] == 2
    assert result["iterations"] == 5 and 0 < result["latency_ms"]["min"] <= result["latency_ms"]["max"]
