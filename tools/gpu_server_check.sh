#!/usr/bin/env bash
# tools/gpu_server_check.sh KILN_BINARY MODEL.onnx: the server's GPU smoke
# check, under 60 seconds, every step under `timeout`.
#
# Serves MODEL.onnx twice from a temporary repository with `kiln serve`:
# "gpu_model" (instance_group KIND_GPU) and "cpu_model" (KIND_CPU), waits
# until both are ready, sends the same random inputs to both over HTTP (JSON,
# python3 urllib + numpy; no tritonclient), compares the outputs
# (rtol/atol 1e-3, or $KILN_CHECK_TOL), and checks that /metrics has
# nv_gpu_utilization. When a server_test binary sits next to the kiln binary
# or in gpu_bundle/bin (tools/gpu_bundle.sh), its GPU instance tests run first (GpuBackend*: GPU and CPU
# instances of one model, two execution contexts on one GPU). Prints one PASS
# or FAIL line per check and exits non-zero when any failed.
#
# Dynamic dims: the batch dim gets 1 and any other variable dim 16
# ($KILN_CHECK_DIM). When the binary sits in a gpu_bundle/bin folder
# (tools/gpu_bundle.sh), the bundle's libraries are used (and its C library
# loader if the machine's cannot run it), as tools/gpu_check.sh does; a
# missing gpu_bundle/bin/kiln is first unpacked from gpu_bundle/bundle.tar.xz.
#
# KILN_CHECK_PRECISION=fp16 (tf32, bf16) sets the GPU instances' precision
# parameter (then loosen KILN_CHECK_TOL, e.g. 2e-2).
#
# Without a GPU, KILN_CHECK_KIND=KIND_CPU runs the same steps with a CPU
# "gpu_model" (the metrics check is then skipped): a dry run of the script.
#
# On the lent GPU machine, from a checkout holding gpu_bundle/ (tools/gpu_bundle.sh):
#   device run: command "bash tools/gpu_server_check.sh gpu_bundle/bin/kiln examples/models/tiny_cnn.onnx",
#   carry ["gpu_bundle"], timeout_s 150
set -u
if [ $# -ne 2 ]; then
  echo "usage: $0 KILN_BINARY MODEL.onnx" >&2
  exit 2
fi
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -x "$1" ] && [ -f "$ROOT/gpu_bundle/bundle.tar.xz" ] && [ ! -x "$ROOT/gpu_bundle/bin/kiln" ]; then
  timeout 60 tar -C "$ROOT/gpu_bundle" -xJf "$ROOT/gpu_bundle/bundle.tar.xz" && echo "unpacked gpu_bundle/bundle.tar.xz"
fi
KILN="$(cd "$(dirname "$1")" 2>/dev/null && pwd)/$(basename "$1")"
MODEL=$(realpath "$2")
KIND=${KILN_CHECK_KIND:-KIND_GPU}
PY=${KILN_CHECK_PYTHON:-python3}
WORK=$(mktemp -d /tmp/kiln_gpu_server.XXXXXX)
FAILED=0
SERVER_PID=""
pass() { echo "PASS $*"; }
fail() {
  echo "FAIL $*"
  FAILED=1
}
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null
    timeout 15 tail --pid="$SERVER_PID" -f /dev/null 2>/dev/null || kill -KILL "$SERVER_PID" 2>/dev/null
  fi
}
trap cleanup EXIT

if [ ! -x "$KILN" ] || [ ! -f "$MODEL" ]; then
  fail "setup: '$1' is not an executable or '$2' is not a file"
  exit 1
fi

if ! timeout 30 "$PY" -c "import numpy" 2>/dev/null; then
  fail "setup: $PY cannot import numpy (set KILN_CHECK_PYTHON)"
  exit 1
fi

# --- how to run a binary: as is, or with its gpu_bundle's libraries (and loader).
# bundle_runner BINARY: sets RUNNER to the command prefix that runs BINARY.
bundle_runner() {
  RUNNER=()
  local bundle
  bundle=$(cd "$(dirname "$1")/.." && pwd)
  if [ -d "$bundle/lib" ] && [ -d "$bundle/glibc" ]; then
    local cuda_dirs="" lib f
    for lib in libcudnn.so.9 libcublasLt.so.13 libnvrtc.so.13; do
      f=$(timeout 20 find /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets /usr/lib/x86_64-linux-gnu \
          /opt /usr/local/lib -name "$lib" 2>/dev/null | head -1)
      if [ -n "$f" ]; then cuda_dirs="$cuda_dirs:$(dirname "$f")"; fi
    done
    local orig_ld=${LD_LIBRARY_PATH:-}
    RUNNER=(env "LD_LIBRARY_PATH=$bundle/lib$cuda_dirs${orig_ld:+:$orig_ld}")
    if ! timeout 20 "${RUNNER[@]}" "$1" --help >/dev/null 2>&1; then
      local sys_dirs="/usr/local/nvidia/lib64:/usr/local/nvidia/lib:/usr/lib/x86_64-linux-gnu:/lib/x86_64-linux-gnu"
      RUNNER=("$bundle/glibc/ld-linux-x86-64.so.2" --library-path
              "$bundle/glibc:$bundle/lib$cuda_dirs:$sys_dirs${orig_ld:+:$orig_ld}")
    fi
  fi
}
bundle_runner "$KILN"
if timeout 20 "${RUNNER[@]}" "$KILN" --version >"$WORK/version.log" 2>&1; then
  pass "binary: $(head -1 "$WORK/version.log")"
else
  fail "binary: $KILN does not run: $(head -c 400 "$WORK/version.log")"
  exit 1
fi

# --- server_test's GPU instance tests, where the bundle has them (next to
# the kiln binary, or in gpu_bundle/bin).
KILN_RUNNER=("${RUNNER[@]}")
SERVER_TEST=$(dirname "$KILN")/server_test
[ -x "$SERVER_TEST" ] || SERVER_TEST=$ROOT/gpu_bundle/bin/server_test
if [ -x "$SERVER_TEST" ]; then
  bundle_runner "$SERVER_TEST"
  if timeout 30 "${RUNNER[@]}" "$SERVER_TEST" --gtest_filter='GpuBackend*:GpuInstances*' >"$WORK/server_test.log" 2>&1; then
    pass "server_test GpuBackend*:GpuInstances*: $(grep -c '^\[       OK \]' "$WORK/server_test.log") tests"
  else
    fail "server_test GpuBackend*:GpuInstances*:"
    grep -E '^\[  FAILED|Failure|error' "$WORK/server_test.log" | head -20
  fi
fi

RUNNER=("${KILN_RUNNER[@]}")

# --- the repository: the same model as KIND_GPU and as KIND_CPU.
REPO=$WORK/repo
for name in gpu_model cpu_model; do
  mkdir -p "$REPO/$name/1"
  cp "$MODEL" "$REPO/$name/1/model.onnx"
done
printf 'instance_group [ { kind: %s count: 1 } ]\n' "$KIND" >"$REPO/gpu_model/config.pbtxt"
if [ -n "${KILN_CHECK_PRECISION:-}" ]; then
  printf 'parameters { key: "precision" value { string_value: "%s" } }\n' "$KILN_CHECK_PRECISION" \
    >>"$REPO/gpu_model/config.pbtxt"
fi
printf 'instance_group [ { kind: KIND_CPU count: 1 } ]\n' >"$REPO/cpu_model/config.pbtxt"

read -r HTTP_PORT GRPC_PORT METRICS_PORT < <(timeout 10 "$PY" -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')
if [ -z "${METRICS_PORT:-}" ]; then
  fail "setup: $PY could not pick free ports"
  exit 1
fi
# The server's own limit: whatever happens, it is gone within 50 s.
timeout -s TERM 50 "${RUNNER[@]}" "$KILN" serve --model-repository "$REPO" --http-address 127.0.0.1 \
  --http-port "$HTTP_PORT" --grpc-port "$GRPC_PORT" --metrics-port "$METRICS_PORT" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!

# --- wait for ready, infer on both models, compare, check /metrics (one Python step, 40 s at most).
timeout 40 "$PY" - "$HTTP_PORT" "$METRICS_PORT" "$KIND" "$SERVER_PID" <<'EOF'
import json, os, sys, time, urllib.error, urllib.request
import numpy as np

http_port, metrics_port, kind, pid = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
base = f"http://127.0.0.1:{http_port}"
tol = float(os.environ.get("KILN_CHECK_TOL", "1e-3"))
free_dim = int(os.environ.get("KILN_CHECK_DIM", "16"))
failed = False

def report(ok, what):
    global failed
    print(("PASS " if ok else "FAIL ") + what, flush=True)
    failed = failed or not ok

def call(method, path, body=None, timeout=20):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()

# Ready: the server answers health/ready once every model loaded; a model that
# failed to load leaves it unready, so the index is read as soon as it is live.
deadline = time.time() + 30
live = False
while time.time() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        break
    try:
        if call("GET", "/v2/health/live", timeout=2)[0] == 200:
            live = True
            break
    except OSError:
        pass
    time.sleep(0.2)
if not live:
    report(False, "server: not live within 30 s (see server.log)")
    sys.exit(1)
status, body = call("POST", "/v2/repository/index", {})
index = {m["name"]: m for m in json.loads(body)} if status == 200 else {}
for name in ("gpu_model", "cpu_model"):
    m = index.get(name, {})
    report(m.get("state") == "READY",
           f"load {name}: {m.get('state', 'missing')} {m.get('reason', '')}".rstrip())
if failed:
    sys.exit(1)

_, body = call("GET", "/v2/models/cpu_model")
meta = json.loads(body)
_, body = call("GET", "/v2/models/gpu_model/config")
config = json.loads(body)
groups = config.get("instance_group", [])
report(bool(groups) and groups[0].get("kind") == kind,
       f"gpu_model instance_group: {[(g.get('kind'), g.get('count'), g.get('gpus')) for g in groups]}")

NP = {"FP32": np.float32, "FP16": np.float16, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32,
      "INT8": np.int8, "UINT8": np.uint8, "BOOL": np.bool_}
rng = np.random.default_rng(0)
inputs = []
for t in meta["inputs"]:
    shape = [(1 if i == 0 else free_dim) if d < 0 else d for i, d in enumerate(t["shape"])]
    dt = t["datatype"]
    if dt not in NP:
        report(False, f"input {t['name']}: datatype {dt} is not handled by this check")
        sys.exit(1)
    if dt == "BOOL":
        a = rng.integers(0, 2, shape).astype(bool)
    elif dt.startswith("FP"):
        a = rng.standard_normal(shape).astype(NP[dt])
    else:
        a = rng.integers(0, 4, shape).astype(NP[dt])
    inputs.append({"name": t["name"], "datatype": dt, "shape": shape, "data": a.ravel().tolist()})

outs = {}
for name in ("cpu_model", "gpu_model"):
    t0 = time.time()
    status, body = call("POST", f"/v2/models/{name}/infer", {"inputs": inputs}, timeout=25)
    ok = status == 200
    report(ok, f"infer {name}: HTTP {status} in {time.time() - t0:.2f} s" + ("" if ok else f": {body[:300]!r}"))
    if not ok:
        sys.exit(1)
    outs[name] = {o["name"]: np.array(o["data"], dtype=np.float64).reshape(o["shape"])
                  for o in json.loads(body)["outputs"]}
for oname, want in outs["cpu_model"].items():
    got = outs["gpu_model"].get(oname)
    if got is None or got.shape != want.shape:
        report(False, f"output {oname}: shape {None if got is None else got.shape} vs CPU {want.shape}")
        continue
    diff = float(np.max(np.abs(got - want))) if want.size else 0.0
    report(bool(np.allclose(got, want, rtol=tol, atol=tol)),
           f"output {oname} {list(want.shape)}: max |gpu - cpu| = {diff:.3g} (tol {tol:g})")

if kind == "KIND_GPU":
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    lines = [l for l in text.splitlines() if l.startswith("nv_gpu_utilization{")]
    report(bool(lines), "metrics: " + (lines[0] if lines else "no nv_gpu_utilization sample"))
    per_model = [l for l in text.splitlines() if l.startswith('nv_inference_count{model="gpu_model"')]
    print("INFO " + (per_model[0] if per_model else "no nv_inference_count for gpu_model"), flush=True)
else:
    print("SKIP metrics: gpu_model is " + kind, flush=True)
sys.exit(1 if failed else 0)
EOF
rc=$?
if [ "$rc" -ne 0 ]; then
  FAILED=1
  [ "$rc" -eq 124 ] && echo "FAIL check: timed out after 40 s"
  echo "--- server log (last 40 lines):"
  tail -40 "$WORK/server.log"
fi
cleanup
SERVER_PID=""
if [ "$FAILED" -eq 0 ]; then
  echo "PASS gpu_server_check"
  rm -rf "$WORK"
else
  echo "FAIL gpu_server_check (work folder $WORK)"
fi
exit "$FAILED"
