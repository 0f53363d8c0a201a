#!/usr/bin/env bash
# Burn and PyTorch side by side: runs the Burn ratio bench and the PyTorch
# reference one after the other (never at once: they would share the cores)
# and writes one table to benches/compare.md.
#
#   bash benches/compare.sh                 # python3 must import torch
#   PYTHON=/path/to/venv/bin/python bash benches/compare.sh
#   SAMPLES=15 SHAPES=S1,S3 bash benches/compare.sh
#   NO_DEFAULT=1 bash benches/compare.sh  # without flex's AVX-512 GEMM kernels (on by default)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
SAMPLES=${SAMPLES:-11}
SHAPES=${SHAPES:-S1,S2,S3,S4}
FEATURES=${FEATURES:-}
TARGET=${CARGO_TARGET_DIR:-target}
out=benches/compare.md
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$PYTHON" -c 'import torch' 2>/dev/null || {
  echo "error: $PYTHON cannot import torch; pip install torch numpy (or set PYTHON)" >&2
  exit 1
}
cargo build --release -p burn-rlora-benches ${NO_DEFAULT:+--no-default-features} --bin ratios ${FEATURES:+--features "$FEATURES"}
"$TARGET/release/ratios" --backend flex --shapes "$SHAPES" --samples "$SAMPLES" --json "$tmp/burn.json" | tee "$tmp/burn.md"
# The same allocator settings as the Burn bench applies to itself
# (burn_rlora_benches::keep_freed_memory): freed memory stays with the process.
MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=2147483647 MALLOC_TOP_PAD_=67108864 \
  "$PYTHON" benches/torch_reference.py --shapes "$SHAPES" --samples "$SAMPLES" --json "$tmp/torch.json" | tee "$tmp/torch.md"

"$PYTHON" - "$tmp/burn.json" "$tmp/torch.json" "$out" <<'PY'
import json, sys
burn, torch, out = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3]
rows = ["| shape | burn frozen ms | torch frozen ms | burn rlora ms | torch loop ms | torch fused ms | burn rlora / frozen | torch loop / frozen | torch fused / frozen | burn rlora / torch loop | burn rlora / torch fused |",
        "|---|---|---|---|---|---|---|---|---|---|---|"]
for shape, b in burn["flex"].items():
    t = torch[shape]
    rows.append(f"| {shape} | {b['frozen']:.1f} | {t['frozen']:.1f} | {b['rlora']:.1f} | {t['loop']:.1f} | {t['fused']:.1f} | "
                f"{b['rlora/frozen']:.2f} | {t['loop/frozen']:.2f} | {t['fused/frozen']:.2f} | "
                f"{b['rlora']/t['loop']:.2f} | {b['rlora']/t['fused']:.2f} |")
open(out, "w").write("\n".join(rows) + "\n")
print("\n".join(rows))
PY
echo "wrote $out"
