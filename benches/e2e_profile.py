#!/usr/bin/env python3
"""Where the Burn training step (or evaluation batch) of `e2e` spends its time,
per thread and per kind of backend operation, in milliseconds per step.

Runs `perf record` (software clock, 999 Hz, frame-pointer call graphs off)
over the `e2e` bench binary with one method, after a start-up delay that skips
model loading, then sorts every sample by thread and by the symbol it landed
in. `--mode train` times the training step at the job's batch (the evaluation
batch shrunk to 1 row); `--mode eval` the evaluation batch (the training batch
shrunk to 1 row). Milliseconds per step are the samples of the window divided
by the number of rounds that fit in it (the window over the sum of the run's
median train and eval times).

    python3 benches/e2e_profile.py --mode train --method rlora
    python3 benches/e2e_profile.py --mode eval --method rlora --rounds 10

Needs `perf` (Debian's linux-perf) and a release build of `e2e`.
"""
import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile

# Symbol patterns, first match wins: what each kind of work looks like in flex,
# gemm and the host kernels of `minilm::host_ops`.
KINDS = [
    ("GEMM (gemm crate microkernels and packing)", r"gemm_|matmul_batched|gemm_common"),
    ("strided copy to contiguous (flex reshape/to_contiguous, memmove)", r"StridedIter|to_contiguous|memmove|memcpy"),
    ("zero fill and allocation", r"memset|malloc|_int_free|alloc_zeroed|calloc|cfree|unlink_chunk"),
    ("GELU (host kernel)", r"gelu"),
    ("dropout mask (host kernel)", r"dropout"),
    ("softmax exp (libm expf)", r"expf|exp_fma|with_errnof|xflowf"),
    ("flex attention (evaluation)", r"attention"),
    ("flex elementwise and reductions", r"macerator|binary|unary|scalar_op|broadcast|reduce|sum_|filled_typed"),
    ("thread wake-ups and waits", r"sched|futex|spin|rayon|crossbeam|task_switch|syscall|yield|wake|scope|LocalKey"),
]


def kind(sym):
    for name, rx in KINDS:
        if re.search(rx, sym):
            return name
    return "other"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--e2e", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "e2e"))
    ap.add_argument("--mode", choices=["train", "eval"], default="train")
    ap.add_argument("--method", default="rlora")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--delay-ms", type=int, default=9000, help="start-up time not recorded")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp()
    data, js = os.path.join(tmp, "perf.data"), os.path.join(tmp, "e2e.json")
    shrink = ["--eval-batch-size", "1"] if args.mode == "train" else ["--batch-size", "1"]
    cmd = ["perf", "record", "-q", "-F", "999", "-D", str(args.delay_ms), "-o", data, args.e2e,
           "--methods", args.method, "--rounds", str(args.rounds), "--warmup", "2", "--batches", "2",
           "--json", js] + shrink
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    timing = next(iter(json.load(open(js)).values()))[args.method]
    step_ms = timing["train_ms" if args.mode == "train" else "eval_ms"]
    round_ms = timing["train_ms"] + timing["eval_ms"]

    out = subprocess.run(["perf", "script", "-i", data, "-F", "tid,time,ip,sym", "-G"],
                         capture_output=True, text=True, check=True).stdout
    per_thread = collections.defaultdict(collections.Counter)
    times = []
    for line in out.splitlines():
        parts = line.split(None, 3)  # tid, time, address, symbol
        if len(parts) < 3:
            continue
        tid, t = parts[0], float(parts[1].rstrip(":"))
        times.append(t)
        per_thread[tid][kind(parts[3] if len(parts) > 3 else "")] += 1
    window_ms = (max(times) - min(times)) * 1e3
    steps = window_ms / round_ms
    ms = lambda n: n / 0.999 / steps  # 999 samples per CPU second
    busiest = sorted(per_thread, key=lambda t: -sum(per_thread[t].values()))
    main_tid, workers = busiest[0], busiest[1:3]
    short = collections.Counter()
    for t in busiest[3:]:
        short.update(per_thread[t])
    cpu = sum(sum(c.values()) for c in per_thread.values())

    print(f"{args.method}, {args.mode}: {step_ms:.1f} ms per step (median of this run); "
          f"{steps:.1f} rounds in the {window_ms / 1e3:.1f} s window; "
          f"{ms(cpu):.0f} CPU ms per round, "
          f"{ms(cpu) / round_ms:.2f} cores busy on average")
    print()
    cols = [("main thread", per_thread[main_tid])] + [
        (f"pool thread {i + 1}", per_thread[t]) for i, t in enumerate(workers)] + [
        (f"{len(busiest) - 3} short-lived threads", short)]
    print("| ms per step | " + " | ".join(c for c, _ in cols) + " |")
    print("|---|" + "---|" * len(cols))
    for name, _ in KINDS + [("other", None)]:
        cells = [ms(c[name]) for _, c in cols]
        if max(cells) >= 1.0:
            print(f"| {name} | " + " | ".join(f"{v:.0f}" for v in cells) + " |")
    print("| **all** | " + " | ".join(f"{ms(sum(c.values())):.0f}" for _, c in cols) + " |")


if __name__ == "__main__":
    sys.exit(main())
