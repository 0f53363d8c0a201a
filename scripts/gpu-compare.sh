#!/usr/bin/env bash
# The full-scale MiniLM comparison on one NVIDIA GPU, in one go: every
# training example of the four tasks, the whole test splits, 128 tokens,
# 3 epochs, 5 paired seeds, LoRA, HydraLoRA, both ablations and R-LoRA, with
# head similarity traced over training. It writes the same report as the CPU
# run (table.md with the paired 95% intervals, results.json, the plots) to
# $OUT, and can be resumed after an interruption by running it again with
# RESUME=1.
#
#   bash scripts/fetch-data.sh          # once: the model and the task data
#   bash scripts/gpu-compare.sh
#   SEEDS=3 EPOCHS=2 bash scripts/gpu-compare.sh
#
# The hyperparameters are the binary's defaults, the same for every method
# (rank 4 x 4 heads, LoRA's rank matched to their parameter count, alpha 16,
# dropout 0.1, lr 1e-3 with 3% warm-up and cosine decay, batch 16); only the
# data size, length, epochs and seeds differ from the CPU run in RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."

METHODS="${METHODS:-lora,hydralora,hydralora-mt,hydralora-init,rlora}"
SEEDS="${SEEDS:-5}"
EPOCHS="${EPOCHS:-3}"
MAX_LEN="${MAX_LEN:-128}"
OUT="${OUT:-report/minilm-gpu-full}"
RESUME_FLAG=()
if [ "${RESUME:-0}" = 1 ]; then
  RESUME_FLAG=(--resume)
fi

if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
else
  echo "warning: nvidia-smi not found; the run fails at the first CUDA call without a GPU" >&2
fi

start=$(date +%s)
cargo build --release -p burn-rlora-examples --features cuda --bin minilm-multitask
"${CARGO_TARGET_DIR:-target}/release/minilm-multitask" --backend cuda --plain \
  --methods "$METHODS" --seeds "$SEEDS" --epochs "$EPOCHS" \
  --train-per-task 1000000 --test-per-task 1000000 --max-len "$MAX_LEN" \
  --trace-every 50 --out "$OUT" "${RESUME_FLAG[@]}"
echo "::: full-scale comparison took $(( $(date +%s) - start )) s; report in $OUT/"
