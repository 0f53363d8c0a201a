#!/usr/bin/env bash
# Prepared GPU benchmark: builds with `cuda` and prints the ratio table for
# the same shapes in f32 and bf16 (the peak-memory bench counts host
# allocations and is CPU-only). Run on a machine with an NVIDIA GPU:
#
#   bash benches/gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || {
  echo "error: no NVIDIA GPU visible (nvidia-smi failed)" >&2
  exit 1
}
start=$SECONDS
cargo build --release -p burn-rlora-benches --features cuda --bin ratios
echo "build took $((SECONDS - start)) s"
./target/release/ratios --backend cuda,cuda-bf16 --samples "${SAMPLES:-21}" --warmup 5
