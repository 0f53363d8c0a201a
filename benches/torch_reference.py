#!/usr/bin/env python3
"""PyTorch rendering of the same adapted layer, for a side-by-side with Burn.

Optional to run: needs `pip install torch numpy`. Times one training step
(forward, mean(y^2), backward with the input requiring a gradient) in fp32 on
the CPU, for the frozen layer alone and two renderings of R-LoRA:

* loop:  the reference code's structure: a loop over heads, `A x`
         recomputed and dropped per head, one [T, out] product per head;
* fused: burn-rlora's structure: `A`, the router and the frozen `A0` of the
         compensation pair in one product, the gate-scaled dropped copies of
         `z` side by side with `-s A0 x`, and one [T, (N+1) r] x
         [(N+1) r, out] product with the heads and the frozen `Bbar0`.

The ratios are, as in `ratios`, the median over rounds of each round's
ratio to the frozen layer (the variants run back to back in each round).

Prints the same kind of table as `cargo run -p burn-rlora-benches --bin
ratios` and, with --json, writes the medians (ms) and ratios for
benches/compare.sh.
"""
import argparse
import json
import statistics
import time

import torch

SHAPES = {
    "S1": (896, 4864, 8, 5, 1024),
    "S2": (4864, 896, 8, 5, 1024),
    "S3": (512, 512, 8, 4, 4096),
    "S4": (2048, 2048, 16, 8, 512),
}
P = 0.1
SCALE = 16.0


class Frozen(torch.nn.Module):
    def __init__(self, d_in, d_out, r, n):
        super().__init__()
        self.base = torch.nn.Linear(d_in, d_out)
        self.base.requires_grad_(False)

    def forward(self, x):
        return self.base(x)


class Loop(Frozen):
    def __init__(self, d_in, d_out, r, n):
        super().__init__(d_in, d_out, r, n)
        self.a = torch.nn.Linear(d_in, r, bias=False)
        self.heads = torch.nn.ModuleList(torch.nn.Linear(r, d_out, bias=False) for _ in range(n))
        self.route = torch.nn.Linear(d_in, n, bias=False)
        self.drop = torch.nn.Dropout(P)

    def forward(self, x):
        y = self.base(x)
        g = torch.softmax(self.route(x), dim=-1, dtype=torch.float32)
        for i, head in enumerate(self.heads):
            y = y + g[:, i : i + 1] * head(self.drop(self.a(x))) * SCALE
        return y


class Fused(Frozen):
    def __init__(self, d_in, d_out, r, n):
        super().__init__(d_in, d_out, r, n)
        self.r, self.n = r, n
        self.a_route = torch.nn.Parameter(torch.randn(r + n, d_in) * 0.02)
        self.heads = torch.nn.Parameter(torch.randn(n * r, d_out) * 0.02)
        self.register_buffer("a0", torch.randn(r, d_in) * 0.02)
        self.register_buffer("b0", torch.randn(r, d_out) * 0.02)

    def forward(self, x):
        y = self.base(x)
        proj = x @ torch.cat([self.a_route, self.a0]).t()
        r, n = self.r, self.n
        z, logits, z0 = proj[:, :r], proj[:, r : r + n], proj[:, r + n :]
        g = torch.softmax(logits, dim=-1) * (SCALE / (1 - P))
        act = z.unsqueeze(1) * g.unsqueeze(2)
        act = act * (torch.rand_like(act) > P)
        act = torch.cat([act.reshape(x.shape[0], -1), z0 * -SCALE], dim=1)
        return y + act @ torch.cat([self.heads, self.b0])


def products(d_in, d_out, r, n, t):
    """The products of a step, as in burn_rlora_benches::Shape::{frozen,rlora}_products:
    (name, m, k, n, lhs transposed view, rhs transposed view)."""
    p, pt, k, kt = 2 * r + n, r + n, (n + 1) * r, n * r
    return [
        ("x W", t, d_in, d_out, False, False),
        ("dy W^T", t, d_out, d_in, False, True),
        ("x [A|Wr|A0]", t, d_in, p, False, False),
        ("act [B;B0]", t, k, d_out, False, False),
        ("dy [B;B0]^T", t, d_out, k, False, True),
        ("act^T dy (dB)", kt, t, d_out, True, False),
        ("dproj P^T (dx)", t, p, d_in, False, True),
        ("x^T dproj (dA, dWr)", d_in, t, pt, True, False),
    ]


def gemms(name, rounds):
    """Time each product alone, interleaved over rounds; print the same table
    as `breakdown --gemms`."""
    prods = products(*SHAPES[name])
    operands = []
    for _, m, k, n, lt, rt in prods:
        a = torch.rand(k, m) if lt else torch.rand(m, k)
        b = torch.rand(n, k) if rt else torch.rand(k, n)
        operands.append((a, b))
    jobs = [
        (lambda a=a, b=b, lt=lt, rt=rt: (a.t() if lt else a) @ (b.t() if rt else b))
        for (a, b), (_, _, _, _, lt, rt) in zip(operands, prods)
    ]
    times = [[] for _ in jobs]
    for job in jobs:
        job()
    for k in range(rounds):
        for j in range(len(jobs)):
            i = (j + k) % len(jobs)
            start = time.perf_counter()
            jobs[i]()
            times[i].append((time.perf_counter() - start) * 1e3)
    med = [statistics.median(ts) for ts in times]
    for (label, m, k, n, _, _), ms in zip(prods, med):
        print(f"| {name} | {label} | [{m}, {k}] x [{k}, {n}] | {ms:.2f} | {2 * m * k * n / ms / 1e6:.0f} |")
    frozen, adapter = sum(med[:2]), sum(med[2:])
    print(f"| {name} | **bound** | adapter products {adapter:.2f} ms / frozen products {frozen:.2f} ms | **{1 + adapter / frozen:.3f}** | |")


def step(layer, x):
    x = x.detach().requires_grad_(True)
    loss = layer(x).pow(2).mean()
    loss.backward()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="S1,S2,S3,S4")
    ap.add_argument("--samples", type=int, default=11)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    ap.add_argument("--gemms", action="store_true", help="time the step's products alone")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.gemms:
        print(f"| shape (torch {torch.__version__}) | product | dims | ms | GFLOP/s |")
        print("|---|---|---|---|---|")
        for name in args.shapes.split(","):
            gemms(name, args.samples)
        return
    results = {}
    print(f"| torch {torch.__version__} | shape | frozen ms | loop | fused |")
    print("|---|---|---|---|---|")
    for name in args.shapes.split(","):
        d_in, d_out, r, n, t = SHAPES[name]
        x = torch.randn(t, d_in)
        layers = [cls(d_in, d_out, r, n).train() for cls in (Frozen, Loop, Fused)]
        for layer in layers:
            for _ in range(args.warmup):
                step(layer, x)
        times = [[] for _ in layers]
        for k in range(args.samples):
            for j in range(len(layers)):
                i = (j + k) % len(layers)
                start = time.perf_counter()
                step(layers[i], x)
                times[i].append((time.perf_counter() - start) * 1e3)
        med = [statistics.median(ts) for ts in times]
        paired = [statistics.median(a / f for a, f in zip(ts, times[0])) for ts in times[1:]]
        results[name] = {
            "frozen": med[0],
            "loop": med[1],
            "fused": med[2],
            "loop/frozen": paired[0],
            "fused/frozen": paired[1],
        }
        print(f"| torch | {name} | {med[0]:.1f} | {paired[0]:.2f} | {paired[1]:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
