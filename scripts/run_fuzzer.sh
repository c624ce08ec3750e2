#!/usr/bin/env bash
# Runs one libFuzzer target for a fixed time on its seeds and a growing corpus
# kept beside the binary; a finding fails the run and is saved for
# tests/regress (or tests/data/plans), where it becomes a regression seed.
#   scripts/run_fuzzer.sh BINARY SECONDS MAX_LEN SEED_DIR...
set -euo pipefail
bin=$1 seconds=$2 max_len=$3
shift 3
name=$(basename "$bin")
out=$(dirname "$bin")
corpus="$out/corpus-$name"
log="$out/$name.log"
mkdir -p "$corpus"
echo "fuzz: $name for $seconds s"
if ! "$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len="$max_len" \
     -artifact_prefix="$out/$name-" "$corpus" "$@" >"$log" 2>&1; then
  tail -60 "$log"
  echo "fuzz: $name found a bug; the input is saved as $out/$name-crash-* (or -timeout-/-oom-)."
  echo "fuzz: fix it and add the input to the seed folder ($*) as a regression case."
  exit 1
fi
grep -E "^#[0-9]+.*DONE" "$log" | tail -1
