#!/usr/bin/env bash
# One training step of SmolLM2-135M-Instruct with adapters on the
# feed-forward projections, Burn against PyTorch: builds the `smollm_step`
# bench binary, which starts benches/torch_smollm_step.py as a child process
# (the same GGUF file, checked first: both frozen models' losses on the batch
# must agree), runs every method's step round by round on one side then the
# other (never at once: they would share the cores), measures each method's
# peak memory in fresh processes, and writes the table to $OUT
# (default target/smollm_step.md, with the raw figures beside it as .json).
#
#   bash benches/smollm_step.sh                  # python3 must import torch, transformers, gguf
#   PYTHON=/path/to/venv/bin/python bash benches/smollm_step.sh
#   ROUNDS=5 WARMUP=1 METHODS=rlora,frozen bash benches/smollm_step.sh
#   PROFILE=1 bash benches/smollm_step.sh        # Burn's phases and a perf profile instead
#   NO_DEFAULT=1 bash benches/smollm_step.sh     # without flex's AVX-512 GEMM kernels
#   HOST_KERNELS=1 bash benches/smollm_step.sh   # Burn's SiLU by the host kernels
#   GGUF=gemma3/gemma-3-270m-q4_k_m.gguf bash benches/smollm_step.sh   # another model under data/
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-1}
METHODS=${METHODS:-rlora,lora,hydralora,frozen}
THREADS=${THREADS:-2}
BATCH=${BATCH:-8}
SEQ=${SEQ:-128}
ANSWER=${ANSWER:-8}
FEATURES=${FEATURES:-}
TARGET=${CARGO_TARGET_DIR:-target}
out=${OUT:-$TARGET/smollm_step.md}

cargo build --release -p burn-rlora-benches ${NO_DEFAULT:+--no-default-features} --bin smollm_step ${FEATURES:+--features "$FEATURES"}
bin="$TARGET/release/smollm_step"
shape=(--batch "$BATCH" --seq "$SEQ" --answer "$ANSWER" --threads "$THREADS" ${HOST_KERNELS:+--host-kernels} ${GGUF:+--gguf "$GGUF"})

if [ -n "${PROFILE:-}" ]; then
  # Burn's phases, then where its samples land, grouped by kind of operation.
  "$bin" "${shape[@]}" --no-torch --profile --methods "${METHODS/,frozen/}" --rounds "$ROUNDS" --warmup "$WARMUP"
  command -v perf >/dev/null || { echo "perf not found (apt-get install linux-perf)" >&2; exit 0; }
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  first=${METHODS%%,*}
  perf record -q -F 499 -o "$tmp/perf.data" "$bin" "${shape[@]}" --no-torch --profile \
    --methods "$first" --rounds "$ROUNDS" --warmup 0 >/dev/null
  perf report -i "$tmp/perf.data" --no-children --sort sym --stdio 2>/dev/null | "$PYTHON" -c '
import re, sys
kinds = [
    ("GEMM (gemm crate)", r"gemm"),
    ("strided copies (StridedIter, to_contiguous, memmove)", r"StridedIter|to_contiguous|memmove|memcpy|num_dims|copy_2d|from_iter|extend"),
    ("exp (libm expf: softmax, sigmoid)", r"expf"),
    ("zero fill, allocation, page faults", r"memset|malloc|_int_free|cfree|unlink_chunk|page|clear_page|memcg|pte|alloc"),
    ("flex elementwise and reductions", r"macerator|binary|unary|scalar_op|broadcast|reduce|sum_|filled|mask|softmax"),
    ("thread wake-ups and waits", r"sched|futex|spin|rayon|crossbeam|task_switch|syscall|yield|wake|scope|LocalKey|irq|softirq"),
    ("model loading (not the step)", r"smollm::load|gguf"),
]
tot = {}
for line in sys.stdin:
    m = re.match(r"\s*([\d.]+)%\s+\[.\]\s+(.*)", line)
    if not m:
        continue
    pct, sym = float(m.group(1)), m.group(2)
    k = next((n for n, rx in kinds if re.search(rx, sym)), "other")
    tot[k] = tot.get(k, 0.0) + pct
print("| kind of work | share of samples |")
print("|---|---|")
for k, v in sorted(tot.items(), key=lambda kv: -kv[1]):
    print(f"| {k} | {v:.1f}% |")
'
  exit 0
fi

"$PYTHON" -c 'import torch, transformers, gguf' 2>/dev/null || {
  echo "error: $PYTHON cannot import torch, transformers and gguf; pip install torch transformers gguf accelerate (or set PYTHON)" >&2
  exit 1
}
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(grep -o -w 'avx512f\|avx2' /proc/cpuinfo | sort -u | xargs)"
echo "load before: $(uptime)"
"$bin" "${shape[@]}" --methods "$METHODS" --rounds "$ROUNDS" --warmup "$WARMUP" \
  --python "$PYTHON" --json "${out%.md}.json" | tee "$out"
echo "load after: $(uptime)"
echo "wrote $out"
