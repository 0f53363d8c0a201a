#!/usr/bin/env bash
# Prepared GPU benchmark: builds with `cuda` and prints the ratio table for
# the same shapes in f32 and bf16 (the peak-memory bench counts host
# allocations and is CPU-only), then the end-to-end MiniLM training step and
# evaluation (`e2e`) in f32 and bf16: with the pretrained weights when
# `data/` has been fetched, else with random weights and tokens (--synthetic;
# the speed does not depend on the values). Run on a machine with an NVIDIA GPU:
#
#   bash benches/gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || {
  echo "error: no NVIDIA GPU visible (nvidia-smi failed)" >&2
  exit 1
}
start=$SECONDS
cargo build --release -p burn-rlora-benches --features cuda --bin ratios --bin e2e
echo "build took $((SECONDS - start)) s"
./target/release/ratios --backend cuda,cuda-bf16 --samples "${SAMPLES:-21}" --warmup 5
e2e_data=()
[ -f data/minilm/model.safetensors ] || e2e_data=(--synthetic)
for backend in cuda cuda-bf16; do
  ./target/release/e2e --backend "$backend" "${e2e_data[@]}" --rounds "${ROUNDS:-11}" --warmup 3
done
