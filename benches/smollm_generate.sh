#!/usr/bin/env bash
# Greedy generation with SmolLM2-135M-Instruct, Burn (flex) against
# PyTorch/transformers in float32: builds the `smollm_generate` bench
# binary, which starts benches/torch_smollm_generate.py as a child process
# (the same GGUF file; it reports how many of its greedy tokens equal
# Burn's), generates round by round on one side then the other (never at
# once: they would share the cores), measures each side's peak memory in a
# fresh process, and writes one table per prompt length to $OUT (default
# target/smollm_generate.md, with the raw figures beside it as .json files).
#
#   bash benches/smollm_generate.sh              # python3 must import torch, transformers, gguf
#   PYTHON=/path/to/venv/bin/python bash benches/smollm_generate.sh
#   PROMPTS="128 512" NEW=64 ROUNDS=5 bash benches/smollm_generate.sh
#   NO_DEFAULT=1 bash benches/smollm_generate.sh # without flex's AVX-512 GEMM kernels
#   GGUF=gemma3/gemma-3-270m-q4_k_m.gguf bash benches/smollm_generate.sh   # another model under data/
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
PROMPTS=${PROMPTS:-128 512}
NEW=${NEW:-64}
ROUNDS=${ROUNDS:-5}
WARMUP=${WARMUP:-1}
THREADS=${THREADS:-2}
TARGET=${CARGO_TARGET_DIR:-target}
out=${OUT:-$TARGET/smollm_generate.md}

cargo build --release -p burn-rlora-benches ${NO_DEFAULT:+--no-default-features} --bin smollm_generate
bin="$TARGET/release/smollm_generate"
: >"$out"
for p in $PROMPTS; do
  "$bin" --python "$PYTHON" --prompt "$p" --new "$NEW" --rounds "$ROUNDS" --warmup "$WARMUP" ${GGUF:+--gguf "$GGUF"} \
    --threads "$THREADS" --json "${out%.md}-$p.json" | tee -a "$out"
  echo >>"$out"
done
echo "wrote $out"
