#!/usr/bin/env python3
"""PyTorch rendering of the same adapted layer, for a side-by-side with Burn.

Optional to run: needs `pip install torch numpy`. Times one training step
(forward, mean(y^2), backward with the input requiring a gradient) in fp32 on
the CPU, for the frozen layer alone and two renderings of R-LoRA:

* loop:  the reference code's structure: a loop over heads, `A x`
         recomputed and dropped per head, one [T, out] product per head;
* fused: `A` and the router in one product, the gate-scaled dropped copies of
         `z` side by side, and one [T, N*r] x [N*r, out] product.

Prints the same kind of table as `cargo run -p burn-rlora-benches --bin
ratios` and, with --json, writes the medians (ms) for benches/compare.sh.
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

    def forward(self, x):
        y = self.base(x)
        zr = x @ self.a_route.t()
        z, logits = zr[:, : self.r], zr[:, self.r :]
        g = torch.softmax(logits, dim=-1) * (SCALE / (1 - P))
        act = z.unsqueeze(1) * g.unsqueeze(2)
        act = act * (torch.rand_like(act) > P)
        return y + act.reshape(x.shape[0], -1) @ self.heads


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
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
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
        results[name] = {"frozen": med[0], "loop": med[1], "fused": med[2]}
        print(f"| torch | {name} | {med[0]:.1f} | {med[1] / med[0]:.2f} | {med[2] / med[0]:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
