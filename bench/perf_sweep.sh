#!/usr/bin/env bash
# A concurrency sweep of `kiln serve` measured twice: by `kiln perf` and by the
# stock tritonclient (bench/tritonclient_perf.py, N threads), with the two
# CSVs plotted side by side (bench/plot_perf.py -> SVG).
#
#   bench/perf_sweep.sh [OUT_DIR]        # default build/perf_sweep
#
# Environment: KILN (the kiln binary; default build/tools/kiln/kiln), PYTHON
# (default .venv/bin/python, else /work/main/.venv/bin/python, else python3),
# MODEL (simple), REPO (examples/model_repository), PROTOCOL (http|grpc),
# RANGE (concurrency start:end:step, 1:8:1), INTERVAL_MS (2000), BATCH (1),
# ONNX (an .onnx file to serve instead: a one-model repository is made under
# OUT_DIR with its config auto-completed, and MODEL is the file's stem).
# Figures are only meaningful on a quiet machine; see bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-build/perf_sweep}
KILN=${KILN:-build/tools/kiln/kiln}
if [[ -z "${PYTHON:-}" ]]; then
  for p in .venv/bin/python /work/main/.venv/bin/python python3; do
    if command -v "$p" >/dev/null 2>&1; then PYTHON=$p; break; fi
  done
fi
MODEL=${MODEL:-simple}
REPO=${REPO:-examples/model_repository}
PROTOCOL=${PROTOCOL:-http}
RANGE=${RANGE:-1:8:1}
INTERVAL_MS=${INTERVAL_MS:-2000}
BATCH=${BATCH:-1}
[[ -x "$KILN" ]] || { echo "perf_sweep: $KILN is not built (cmake --build build --target kiln)" >&2; exit 1; }
mkdir -p "$OUT"
if [[ -n "${ONNX:-}" ]]; then
  [[ -f "$ONNX" ]] || { echo "perf_sweep: ONNX=$ONNX is not a file" >&2; exit 1; }
  MODEL=$(basename "$ONNX" .onnx)
  REPO=$OUT/repo
  rm -rf "$REPO" && mkdir -p "$REPO/$MODEL/1"
  cp "$ONNX" "$REPO/$MODEL/1/model.onnx"
fi

free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HTTP_PORT=$(free_port); GRPC_PORT=$(free_port); METRICS_PORT=$(free_port)
"$KILN" serve --model-repository "$REPO" --model-control-mode explicit --load-model "$MODEL" \
  --http-address 127.0.0.1 --http-port "$HTTP_PORT" --grpc-port "$GRPC_PORT" --metrics-port "$METRICS_PORT" \
  > "$OUT/serve.log" 2>&1 &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  if "$PYTHON" -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:$HTTP_PORT/v2/health/ready', timeout=1).status != 200)" 2>/dev/null; then
    break
  fi
  kill -0 $SERVER 2>/dev/null || { echo "perf_sweep: kiln serve exited:" >&2; cat "$OUT/serve.log" >&2; exit 1; }
  sleep 0.2
done
if [[ $PROTOCOL == grpc ]]; then URL=127.0.0.1:$GRPC_PORT; else URL=127.0.0.1:$HTTP_PORT; fi

echo "== kiln perf ($PROTOCOL, concurrency $RANGE) =="
"$KILN" perf -m "$MODEL" -i "$PROTOCOL" -u "$URL" -b "$BATCH" --concurrency-range "$RANGE" \
  -p "$INTERVAL_MS" -f "$OUT/kiln_perf.csv" > "$OUT/kiln_perf.txt"
grep -E "^Concurrency:" "$OUT/kiln_perf.txt"
echo "== tritonclient ($PROTOCOL, concurrency $RANGE) =="
"$PYTHON" bench/tritonclient_perf.py -m "$MODEL" -i "$PROTOCOL" -u "$URL" -b "$BATCH" \
  --concurrency-range "$RANGE" -p "$INTERVAL_MS" -f "$OUT/tritonclient.csv"
"$PYTHON" bench/plot_perf.py "$OUT/kiln_perf.csv:kiln perf" "$OUT/tritonclient.csv:tritonclient ($PROTOCOL, threads)" \
  -o "$OUT/perf_sweep.svg" --title "$MODEL, $PROTOCOL, batch $BATCH, $(nproc) cores, $(date -u +%Y-%m-%d)"
echo "perf_sweep: $OUT/kiln_perf.csv $OUT/tritonclient.csv $OUT/perf_sweep.svg"
