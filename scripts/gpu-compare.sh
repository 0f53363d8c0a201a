#!/usr/bin/env bash
# The full-scale comparisons on one NVIDIA GPU, in one go: MiniLM, then the
# SmolLM2 decoder (WHAT=minilm or WHAT=smollm runs one of them).
#
# MiniLM: every
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
#
# SmolLM2-135M-Instruct: multi-task instruction tuning on all the data of the
# five instruction tasks (four classifications and the BBC headline task),
# sequences of 512 tokens, 5 paired seeds, every method (the zero-shot base,
# LoRA at rank 4 and at the matched rank, HydraLoRA, both ablations, R-LoRA),
# the reference's recipe: rank 4 x 5 heads, alpha 32 with rsLoRA scaling,
# dropout 0.1, lr 2e-4 with 3% warm-up and cosine decay, 1 epoch, batch 8.
set -euo pipefail
cd "$(dirname "$0")/.."
WHAT="${WHAT:-both}"

if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
else
  echo "warning: nvidia-smi not found; the run fails at the first CUDA call without a GPU" >&2
fi
RESUME_FLAG=()
if [ "${RESUME:-0}" = 1 ]; then
  RESUME_FLAG=(--resume)
fi

minilm() {
  local METHODS="${METHODS:-lora,hydralora,hydralora-mt,hydralora-init,rlora}"
  local SEEDS="${SEEDS:-5}" EPOCHS="${EPOCHS:-3}" MAX_LEN="${MAX_LEN:-128}"
  local OUT="${OUT:-report/minilm-gpu-full}"
  local start
  start=$(date +%s)
  cargo build --release -p burn-rlora-pretrained --features cuda --bin minilm-multitask
  "${CARGO_TARGET_DIR:-target}/release/minilm-multitask" --backend cuda --plain \
    --methods "$METHODS" --seeds "$SEEDS" --epochs "$EPOCHS" \
    --train-per-task 1000000 --test-per-task 1000000 --max-len "$MAX_LEN" \
    --trace-every 50 --out "$OUT" "${RESUME_FLAG[@]}"
  echo "::: full-scale MiniLM comparison took $(( $(date +%s) - start )) s; report in $OUT/"
}

smollm() {
  local METHODS="${SMOLLM_METHODS:-base,lora-r,lora,hydralora,hydralora-mt,hydralora-init,rlora}"
  local SEEDS="${SEEDS:-5}" OUT="${SMOLLM_OUT:-report/smollm-gpu-full}"
  local start
  start=$(date +%s)
  cargo build --release -p burn-rlora-pretrained --features cuda --bin smollm-multitask
  "${CARGO_TARGET_DIR:-target}/release/smollm-multitask" --backend cuda --plain \
    --methods "$METHODS" --seeds "$SEEDS" --epochs 1 --lr 2e-4 --batch-size 8 \
    --train-per-task 1000000 --test-per-task 1000000 --max-len 512 --max-new-tokens 32 \
    --trace-every 200 --out "$OUT" "${RESUME_FLAG[@]}"
  echo "::: full-scale SmolLM2 comparison took $(( $(date +%s) - start )) s; report in $OUT/"
}

case "$WHAT" in
  minilm) minilm ;;
  smollm) smollm ;;
  both) minilm; smollm ;;
  *) echo "error: WHAT=$WHAT: expected minilm, smollm or both" >&2; exit 2 ;;
esac
