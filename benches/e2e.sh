#!/usr/bin/env bash
# The MiniLM multi-task training step and evaluation, Burn against PyTorch:
# checks the PyTorch rendering against the Burn encoder first, then runs the
# `e2e` bench binary and benches/torch_minilm_step.py alternately REPEATS
# times (never at once: they would share the cores) and writes one table of
# paired ratios (the median over repeats of each repeat's Burn/PyTorch time)
# to benches/e2e.md.
#
#   bash benches/e2e.sh                    # python3 must import torch and numpy
#   PYTHON=/path/to/venv/bin/python bash benches/e2e.sh
#   REPEATS=5 ROUNDS=7 METHODS=rlora,probe bash benches/e2e.sh
#   NO_DEFAULT=1 bash benches/e2e.sh  # without flex's AVX-512 GEMM kernels (on by default)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
REPEATS=${REPEATS:-3}
ROUNDS=${ROUNDS:-5}
METHODS=${METHODS:-rlora,lora,hydralora,probe}
THREADS=${THREADS:-2}
FEATURES=${FEATURES:-}
TARGET=${CARGO_TARGET_DIR:-target}
out=benches/e2e.md
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$PYTHON" -c 'import torch, numpy' 2>/dev/null || {
  echo "error: $PYTHON cannot import torch and numpy; pip install torch numpy (or set PYTHON)" >&2
  exit 1
}
cargo build --release -p burn-rlora-benches ${NO_DEFAULT:+--no-default-features} --bin e2e ${FEATURES:+--features "$FEATURES"}
e2e="$TARGET/release/e2e"
"$e2e" --methods "$METHODS" --dump "$tmp/inputs.json"
# The same allocator settings as the Burn bench applies to itself
# (burn_rlora_benches::keep_freed_memory): freed memory stays with the process.
torch() {
  MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=2147483647 MALLOC_TOP_PAD_=67108864 \
    "$PYTHON" benches/torch_minilm_step.py --inputs "$tmp/inputs.json" --threads "$THREADS" "$@"
}
torch --check-only
for i in $(seq "$REPEATS"); do
  "$e2e" --methods "$METHODS" --rounds "$ROUNDS" --json "$tmp/burn$i.json"
  torch --methods "$METHODS" --rounds "$ROUNDS" --json "$tmp/torch$i.json"
done

"$PYTHON" - "$tmp" "$REPEATS" "$out" <<'PY'
import json, statistics, sys
tmp, repeats, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
burn = [json.load(open(f"{tmp}/burn{i}.json"))["flex"] for i in range(1, repeats + 1)]
torch = [json.load(open(f"{tmp}/torch{i}.json"))["torch"] for i in range(1, repeats + 1)]
med = statistics.median
rows = ["| method | burn train tokens/s | torch train tokens/s | train time burn/torch | burn eval tokens/s | torch eval tokens/s | eval time burn/torch | burn peak RSS MiB | torch peak RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|"]
for m in burn[0]:
    b = lambda k: med([r[m][k] for r in burn])
    t = lambda k: med([r[m][k] for r in torch])
    tr = med([bb[m]["train_ms"] / tt[m]["train_ms"] for bb, tt in zip(burn, torch)])
    ev = med([bb[m]["eval_ms"] / tt[m]["eval_ms"] for bb, tt in zip(burn, torch)])
    rss = lambda v: f"{v:.0f}" if v else "-"
    rows.append(f"| {m} | {b('train_tokens_per_s'):.0f} | {t('train_tokens_per_s'):.0f} | {tr:.2f} | "
                f"{b('eval_tokens_per_s'):.0f} | {t('eval_tokens_per_s'):.0f} | {ev:.2f} | "
                f"{rss(b('peak_rss_mib'))} | {rss(t('peak_rss_mib'))} |")
open(out, "w").write("\n".join(rows) + "\n")
print("\n".join(rows))
PY
echo "wrote $out"
