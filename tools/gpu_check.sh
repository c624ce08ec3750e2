#!/usr/bin/env bash
# tools/gpu_check.sh: the CUDA backend's check on a GPU machine, in at most
# 8 minutes (every step has a hard timeout taken from the time left).
#
#  1. binaries: gpu_bundle/ (tools/gpu_bundle.sh, built on the dev machine and
#     carried) when present, else configure + build cuda_test and
#     kiln_gpu_bench here with -j16 for sm_90;
#  2. the zoo models (make_models.py; needs the onnx Python package);
#  3. cuda_test: every GPU op and small model against the CPU reference;
#  4. resnet50 (batch 32) and bert_base (batch 8, seq 128) in fp16 through the
#     GPU engine and through PyTorch eager fp16 on the same GPU, outputs
#     compared;
#  5. a table: model, precision, Kiln/s, PyTorch/s, ratio, max abs diff.
#
# Logs go to /tmp/kiln_gpu_check; with $OUT set, table.txt, results.txt and
# gpu_check_logs.tgz are copied there. Exit status 0 when every step that ran
# passed.
#
# On the lent GPU machine, from a checkout holding a fresh gpu_bundle/
# (tools/gpu_bundle.sh, or a copy of one built from the same commit):
#   device run: command "bash tools/gpu_check.sh", carry ["gpu_bundle"], timeout_s 540
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
START=$(date +%s)
BUDGET=${KILN_GPU_CHECK_BUDGET:-470}  # seconds for the whole script
LOGS=/tmp/kiln_gpu_check  # per-step logs; packed into $OUT at the end (the device tool returns at most 8 files)
WORK=/tmp/kiln_gpu_work
rm -f "$LOGS"/*.log 2>/dev/null
mkdir -p "$LOGS" "$WORK/models" "$WORK/inputs" "$WORK/out_resnet50" "$WORK/out_bert_base"
RESULTS="$LOGS/results.txt"
: >"$RESULTS"
FAILED=0
export PYTHONUNBUFFERED=1

elapsed() { echo $(($(date +%s) - START)); }
left() { echo $((BUDGET - $(date +%s) + START)); }
say() { echo "=== [$(elapsed)s] $*"; }
# run_step NAME MAX_SECONDS CMD...: runs CMD with a timeout of min(MAX, time left - 10).
run_step() {
  local name=$1 max=$2
  shift 2
  local t
  t=$(left)
  t=$((t - 10))
  if [ "$t" -gt "$max" ]; then t=$max; fi
  if [ "$t" -lt 5 ]; then
    say "SKIP $name: out of time"
    echo "$name skipped (out of time)" >>"$RESULTS"
    return 124
  fi
  say "$name (timeout ${t}s)"
  timeout -k 5 "$t" "$@" 2>&1 | tee "$LOGS/$name.log"
  local rc=${PIPESTATUS[0]}
  if [ "$rc" -ne 0 ]; then
    say "FAIL $name: exit $rc$([ "$rc" -eq 124 ] && echo ' (timeout)')"
    echo "$name FAILED (exit $rc)" >>"$RESULTS"
    FAILED=1
  else
    say "ok $name"
  fi
  save_out
  return "$rc"
}
# What has run so far into $OUT after every step: a run cut off by the
# device's time limit still brings back its results and logs.
save_out() {
  if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then
    cp "$RESULTS" "$OUT/" 2>/dev/null
    tar czf "$OUT/gpu_check_logs.tgz" -C "$LOGS" . 2>/dev/null
  fi
}

say "GPU: $(timeout 20 nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -1)"
PY=${KILN_GPU_CHECK_PYTHON:-python3}
HAVE_ONNX=0
HAVE_TORCH=0
if timeout 60 $PY -c "import onnx, numpy" 2>/dev/null; then HAVE_ONNX=1; fi
if timeout 60 $PY -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then HAVE_TORCH=1; fi
say "python: $($PY --version 2>&1); onnx+numpy importable: $HAVE_ONNX; torch with CUDA: $HAVE_TORCH"

# --- CUDA libraries (cuDNN, cuBLASLt, NVRTC) from the toolkit or the Python wheels.
CUDA_DIRS=""
for lib in libcudnn.so.9 libcublasLt.so.13 libnvrtc.so.13; do
  f=$(timeout 30 find /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets /usr/lib/x86_64-linux-gnu /opt /usr/local/lib \
      -name "$lib" 2>/dev/null | head -1)
  if [ -n "$f" ]; then CUDA_DIRS="$CUDA_DIRS:$(dirname "$f")"; else say "warning: $lib not found"; fi
done
CUDA_DIRS=${CUDA_DIRS#:}
# The driver (libcuda.so.1) may live outside the loader's cache: keep the
# machine's library path, and the usual driver folders, behind ours.
ORIG_LD=${LD_LIBRARY_PATH:-}
SYS_DIRS="/usr/local/nvidia/lib64:/usr/local/nvidia/lib:/usr/lib/x86_64-linux-gnu:/lib/x86_64-linux-gnu${ORIG_LD:+:$ORIG_LD}"
say "CUDA library dirs: $CUDA_DIRS"

# --- 1. binaries
BIN=""
RUNNER=()
# Our binaries get their library path through RUNNER only, so that Python
# and PyTorch keep the machine's own libraries.
if [ -f gpu_bundle/bundle.tar.xz ] && [ ! -x gpu_bundle/bin/cuda_test ]; then
  timeout 120 tar -C gpu_bundle -xJf gpu_bundle/bundle.tar.xz && say "unpacked gpu_bundle/bundle.tar.xz"
fi
if [ -x gpu_bundle/bin/cuda_test ]; then
  BIN=gpu_bundle/bin
  RUNNER=(env "LD_LIBRARY_PATH=$ROOT/gpu_bundle/lib:$CUDA_DIRS${ORIG_LD:+:$ORIG_LD}")
  if timeout 60 "${RUNNER[@]}" "$BIN/cuda_test" --gtest_list_tests >/dev/null 2>"$LOGS/loader.log"; then
    say "using the carried binaries with this machine's C library"
  else
    say "this machine's C library cannot run them ($(head -c 300 "$LOGS/loader.log")); using the carried loader"
    RUNNER=("$ROOT/gpu_bundle/glibc/ld-linux-x86-64.so.2" --library-path "$ROOT/gpu_bundle/glibc:$ROOT/gpu_bundle/lib:$CUDA_DIRS:$SYS_DIRS")
  fi
else
  say "no gpu_bundle/: building here"
  run_step configure 120 cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DKILN_BUILD_PYTHON=OFF -DKILN_PYTHON="$(command -v python3)"
  run_step build 420 cmake --build build-gpu -j16 --target cuda_test kiln_gpu_bench
  if [ -x build-gpu/tests/cuda_test ]; then
    mkdir -p build-gpu/bin && cp build-gpu/tests/cuda_test build-gpu/tools/gpu_bench/kiln_gpu_bench build-gpu/bin/
    BIN=build-gpu/bin
    RUNNER=(env "LD_LIBRARY_PATH=$CUDA_DIRS${ORIG_LD:+:$ORIG_LD}")
  fi
fi

# --- 2. models
MAKE_MODELS=""
for f in gpu_bundle/make_models.py shared/models/make_models.py /work/shared/models/make_models.py; do
  if [ -f "$f" ]; then MAKE_MODELS=$f; break; fi
done
if [ "$HAVE_ONNX" = 1 ] && [ -n "$MAKE_MODELS" ]; then
  run_step models 150 $PY "$MAKE_MODELS" --out "$WORK/models" --no-check \
    --only tiny_mlp --only tiny_cnn --only bert_tiny --only mobilenetv2 --only resnet18 --only resnet50 --only bert_base
else
  say "no models: onnx importable=$HAVE_ONNX, make_models.py='$MAKE_MODELS'"
fi

# --- 3. GPU tests
if [ -n "$BIN" ]; then
  run_step cuda_test 90 env KILN_ZOO_DIR="$WORK/models" \
    "${RUNNER[@]}" "$ROOT/$BIN/cuda_test" --gtest_brief=1 && echo "cuda_test passed" >>"$RESULTS"
  grep -E "^\[  (PASSED|FAILED|SKIPPED) |tests? ran|FAILED TEST" "$LOGS/cuda_test.log" | tail -40
fi

# --- 3b. the builder's GPU tactics feed the timing cache; the server's GPU instances
if [ -n "$BIN" ] && [ -x "$BIN/kiln" ]; then
  rm -f "$WORK/timing_cache.txt"
  if run_step timing_cache 60 "${RUNNER[@]}" "$ROOT/$BIN/kiln" build examples/models/tiny_mlp.onnx -o "$WORK/tiny_mlp.plan" --shapes input:8x64 \
    --tactic-sources own,cuda --timing-cache "$WORK/timing_cache.txt" --verbose; then
    if grep -q "gpu:.*|cuda\.cublaslt" "$WORK/timing_cache.txt" 2>/dev/null; then
      say "timing cache holds GPU tactic times: $(grep -c 'cuda\.' "$WORK/timing_cache.txt") entries"
      grep 'cuda\.' "$WORK/timing_cache.txt" | head -4
      echo "timing_cache passed" >>"$RESULTS"
    else
      say "FAIL timing_cache: no cuda tactic entry in the cache"
      echo "timing_cache FAILED (no cuda entry)" >>"$RESULTS"
      FAILED=1
    fi
  fi
  if [ -f tools/gpu_server_check.sh ]; then
    # The server gets our libraries through a wrapper; the script's Python keeps the machine's.
    printf '#!/usr/bin/env bash\nexec %s "%s" "$@"\n' "$(printf '%q ' "${RUNNER[@]}")" "$ROOT/$BIN/kiln" >"$WORK/kiln"
    chmod +x "$WORK/kiln"
    run_step server 90 bash tools/gpu_server_check.sh "$WORK/kiln" examples/models/tiny_mlp.onnx &&
      echo "server passed" >>"$RESULTS"
  fi
fi

# --- 4. benchmarks
bench() {  # bench NAME BATCH ARGS...
  local name=$1 batch=$2
  shift 2
  local model="$WORK/models/$name.onnx" in="$WORK/inputs/$name"
  if [ ! -f "$model" ] || [ -z "$BIN" ] || [ "$HAVE_ONNX" != 1 ]; then
    say "skip $name benchmark (model or binaries missing)"
    return
  fi
  mkdir -p "$in"
  timeout 60 $PY tools/gpu_torch_bench.py --model "$model" --name "$name" --batch "$batch" "$@" --write-inputs "$in"
  local inputs=()
  for f in "$in"/*.npy; do inputs+=(--input "$(basename "$f" .npy)=$f"); done
  # Kiln inside the PyTorch run: PyTorch alone, then Kiln and PyTorch timed
  # in alternation (the GPU's speed drifts); Kiln writes its outputs first
  # for the comparison. Kiln alone where PyTorch is missing or that failed.
  local kiln_args=(--model "$model" --precision fp16 "${inputs[@]}" --outputs "$WORK/out_$name" --warmup 10 --iters 50 --profile 3)
  local tlog="$LOGS/torch_$name.log" klog="$LOGS/torch_$name.log"
  if [ "$HAVE_TORCH" = 1 ]; then
    run_step "torch_$name" 180 $PY tools/gpu_torch_bench.py --model "$model" --name "$name" --batch "$batch" "$@" \
      --precision fp16 --kiln-outputs "$WORK/out_$name" --warmup 10 --iters 50 --rounds 5 \
      --interleave "$(printf '%q ' "${RUNNER[@]}" "$ROOT/$BIN/kiln_gpu_bench" "${kiln_args[@]}" --rounds-from-stdin)"
  fi
  if ! grep -q '^KILN_GPU_BENCH' "$tlog" 2>/dev/null; then
    klog="$LOGS/kiln_$name.log"
    if ! run_step "kiln_$name" 150 "${RUNNER[@]}" "$ROOT/$BIN/kiln_gpu_bench" "${kiln_args[@]}"; then
      # Once more with the most conservative engine settings (no CUDA graph, no cuDNN fused epilogue).
      run_step "kiln_${name}_safe" 120 "${RUNNER[@]}" "$ROOT/$BIN/kiln_gpu_bench" --model "$model" --precision fp16 \
        "${inputs[@]}" --outputs "$WORK/out_$name" --warmup 5 --iters 20 --no-graph --no-fused-conv &&
        cp "$LOGS/kiln_${name}_safe.log" "$klog"
    fi
  fi
  local k t e d d32 dk32
  k=$(grep '^KILN_GPU_BENCH' "$klog" 2>/dev/null | grep -o 'device_ms=[0-9.]*' | cut -d= -f2)
  e=$(grep '^KILN_GPU_BENCH' "$klog" 2>/dev/null | grep -o 'e2e_ms=[0-9.]*' | cut -d= -f2)
  t=$(grep '^TORCH_BENCH' "$tlog" 2>/dev/null | grep -o 'torch_ms=[0-9.]*' | cut -d= -f2)
  d=$(grep '^TORCH_BENCH' "$tlog" 2>/dev/null | grep -o 'diff_kiln=[^ ]*' | cut -d= -f2)
  d32=$(grep '^TORCH_BENCH' "$tlog" 2>/dev/null | grep -o 'diff_fp32=[^ ]*' | cut -d= -f2)
  dk32=$(grep '^TORCH_BENCH' "$tlog" 2>/dev/null | grep -o 'diff_kiln_fp32=[^ ]*' | cut -d= -f2)
  local ik it ir irmin irmax
  local il
  il=$(grep '^INTERLEAVED' "$tlog" 2>/dev/null)
  ik=$(echo "$il" | grep -o 'kiln_ms=[0-9.]*' | cut -d= -f2)
  it=$(echo "$il" | grep -o 'torch_ms=[0-9.]*' | cut -d= -f2)
  ir=$(echo "$il" | grep -o 'ratio_median=[0-9.]*' | cut -d= -f2)
  irmin=$(echo "$il" | grep -o 'ratio_min=[0-9.]*' | cut -d= -f2)
  irmax=$(echo "$il" | grep -o 'ratio_max=[0-9.]*' | cut -d= -f2)
  echo "BENCH $name $batch ${k:-nan} ${t:-nan} ${d:-nan} ${d32:-nan} ${e:-nan} ${dk32:-nan} ${ik:-nan} ${it:-nan} ${ir:-nan} ${irmin:-nan} ${irmax:-nan}" >>"$RESULTS"
}
# The lent GPU is shared: the same binary has measured 1.6 to 7.5 ms per
# resnet50 batch within minutes, so the ratio that counts is the median of
# the per-round ratios of the interleaved timing.
bench resnet50 32
bench bert_base 8 --seq 128

# --- 5. table
echo
say "done in $(elapsed)s"
GPU_NAME=$(timeout 10 nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
grep -v '^BENCH' "$RESULTS"
awk -v gpu="$GPU_NAME" 'BEGIN {
    printf "\nGPU: %s. Kiln/s: GPU engine (CUDA graph), inputs on the GPU; Kiln e2e/s: run() with host copies;\n", gpu
    printf "PyTorch/s: PyTorch eager (cudnn.benchmark on), same ONNX weights, inputs on the GPU. Diffs: max abs over all outputs (PT32: PyTorch fp32, no TF32).\n"
    printf "Interleaved: Kiln and PyTorch timed in alternation, 5 rounds; ratio = median of the rounds (min-max). Separate: each timed alone, one after the other.\n"
    printf "%-10s %-6s %-9s %-12s %10s %10s %10s %18s %13s %14s %14s\n", "model", "batch", "precision", "timing", "Kiln/s", "PyTorch/s", "Kiln e2e/s", "ratio", "max|Kiln-PT|", "max|Kiln-PT32|", "max|PT16-PT32|"
  }
  /^BENCH/ {
    k = $4 + 0; t = $5 + 0; e = $8 + 0
    ks = (k > 0) ? $3 * 1000 / k : 0; ts = (t > 0) ? $3 * 1000 / t : 0; es = (e > 0) ? $3 * 1000 / e : 0
    printf "%-10s %-6s %-9s %-12s %10.1f %10.1f %10.1f %18.2f %13s %14s %14s\n", $2, $3, "fp16", "separate", ks, ts, es, (ts > 0 ? ks / ts : 0), $6, $9, $7
    ik = $10 + 0; it = $11 + 0
    if (ik > 0 && it > 0) {
      printf "%-10s %-6s %-9s %-12s %10.1f %10.1f %10s %18s\n", $2, $3, "fp16", "interleaved", $3 * 1000 / ik, $3 * 1000 / it, "-", sprintf("%.2f (%.2f-%.2f)", $12, $13, $14)
    }
  }' "$RESULTS" | tee "$LOGS/table.txt"
if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then
  cp "$LOGS/table.txt" "$RESULTS" "$OUT/" 2>/dev/null
  tar czf "$OUT/gpu_check_logs.tgz" -C "$LOGS" . 2>/dev/null
fi
exit $FAILED
