#!/usr/bin/env bash
# A short GPU check on a machine with an NVIDIA GPU and the CUDA driver:
#   (a) the backend test suite with the `cuda` feature, and
#   (b) a short MiniLM multi-task run on `--backend cuda` (small subsample,
#       1 epoch, 1 seed), with the CPU default run for the same settings
#       when GPU_CHECK_CPU=1.
# Prints the time of every step. Needs the fetched data for (b):
#   bash scripts/fetch-data.sh
#
#   bash scripts/gpu-check.sh
#   METHODS=probe,lora,rlora TRAIN_PER_TASK=400 bash scripts/gpu-check.sh
#
# Burn 0.21's cuda backend builds offline and loads libcuda at run time; on a
# machine without a GPU the run fails at the first CUDA call.
set -euo pipefail
cd "$(dirname "$0")/.."

METHODS="${METHODS:-probe,hydralora,rlora}"
TRAIN_PER_TASK="${TRAIN_PER_TASK:-200}"
TEST_PER_TASK="${TEST_PER_TASK:-100}"
MAX_LEN="${MAX_LEN:-64}"
OUT="${OUT:-report/minilm-gpu}"

step() {
  local name=$1
  shift
  local start
  start=$(date +%s)
  echo "::: $name"
  "$@"
  echo "::: $name took $(( $(date +%s) - start )) s"
}

if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
else
  echo "warning: nvidia-smi not found; the cuda steps will fail without a GPU" >&2
fi

step "build (release, cuda)" \
  cargo build --release -p burn-rlora-pretrained --features cuda --bin minilm-multitask

if [ -f burn-rlora/tests/it/backends.rs ]; then
  step "backend tests (cuda)" cargo test -p burn-rlora --features cuda --test it backends::
else
  echo "::: backend tests (cuda): skipped, burn-rlora/tests/it/backends.rs is not in this checkout" >&2
fi

run_minilm() {
  local backend=$1
  "${CARGO_TARGET_DIR:-target}/release/minilm-multitask" --backend "$backend" --plain \
    --methods "$METHODS" --seeds 1 --epochs 1 \
    --train-per-task "$TRAIN_PER_TASK" --test-per-task "$TEST_PER_TASK" \
    --max-len "$MAX_LEN" --out "$OUT/$backend"
}

step "minilm-multitask (cuda)" run_minilm cuda
if [ "${GPU_CHECK_CPU:-0}" = 1 ]; then
  step "minilm-multitask (flex, same settings)" run_minilm flex
fi
echo "reports under $OUT/"
