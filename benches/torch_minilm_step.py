#!/usr/bin/env python3
"""PyTorch rendering of the MiniLM multi-task training step, for a side-by-side
with the `e2e` bench binary.

Optional to run: needs `pip install torch numpy`. Reads what
`e2e --dump FILE` wrote (the batches, each method's adapter settings and the
Burn encoder's eval-mode features of the first batch) and the pretrained
weights from `data/minilm/model.safetensors`, then:

1. checks that this encoder computes the Burn encoder's features (eval mode,
   mean pooling; exits 1 when the largest difference exceeds --tolerance);
2. times, interleaved round by round like `e2e`, one training step per method
   (forward in train mode with dropout 0.1 on the embeddings, the attention
   probabilities, the block outputs and the adapters; the summed per-task
   cross-entropies over the batch; backward; Adam over the adapters and the
   task heads only) and one evaluation forward (no gradient) per method.

The adapters follow burn-rlora's fused structure (as `torch_reference.py`'s
`Fused`): `A`, the router and the frozen `A0` in one product; the gate-scaled
copies of `z` side by side with `-s A0 x`; one product with the stacked heads
and the frozen `Bbar0`. LoRA and HydraLoRA drop the input (one mask shared by
the heads), R-LoRA drops each head's copy of `z`.

Prints the same table as `e2e` and, with --json, writes the medians.

With --profile METHOD it instead runs torch.profiler over --rounds training
steps of that method (after --warmup; with --profile-eval, evaluation batches)
and prints each operator's self CPU time per step, largest first: the other
side of a per-operation comparison with a `perf` profile of `e2e`.
"""
import argparse
import json
import math
import os
import statistics
import struct
import time

import numpy as np
import torch
import torch.nn.functional as F

DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def load_safetensors(path):
    """The tensors of a safetensors file (F32/F16/I64), without the safetensors package."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        arr = np.frombuffer(data[start:end], dtype=DTYPES[meta["dtype"]]).reshape(meta["shape"])
        out[name] = torch.from_numpy(arr.astype(np.float32 if meta["dtype"] != "I64" else np.int64))
    return out


class Adapted(torch.nn.Module):
    """A frozen linear with burn-rlora's fused multi-head adapter."""

    def __init__(self, base, spec):
        super().__init__()
        self.base = base
        self.base.requires_grad_(False)
        d_out, d_in = base.weight.shape
        r, n = spec["rank"], spec["heads"]
        self.r, self.n, self.s, self.p = r, n, spec["scaling"], spec["dropout"]
        self.router, self.per_head = spec["router"], spec["per_head_dropout"]
        self.compensation = spec["compensation"]
        self.a = torch.nn.Parameter(torch.randn(r, d_in) / math.sqrt(d_in))
        self.heads = torch.nn.Parameter(
            torch.randn(n * r, d_out) * 0.02 if self.compensation else torch.zeros(n * r, d_out)
        )
        self.route = torch.nn.Parameter(torch.randn(n, d_in) * 0.02) if self.router else None
        if self.compensation:
            self.register_buffer("a0", self.a.detach().clone())
            self.register_buffer("b0", self.heads.detach().reshape(n, r, d_out).mean(0))

    def forward(self, x):
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        t = x.shape[0]
        y = self.base(x)
        r, n, s, p = self.r, self.n, self.s, self.p
        drop = self.training and p > 0
        input_drop = drop and not self.per_head
        parts = ([] if input_drop else [self.a]) + ([self.route] if self.router else [])
        parts += [self.a0] if self.compensation else []
        proj = x @ torch.cat(parts).t() if parts else None
        off = 0
        if input_drop:
            z = (x * (torch.rand_like(x) >= p)) @ self.a.t()
        else:
            z, off = proj[:, :r], r
        scale = s / (1 - p) if drop else s
        if self.router:
            g = torch.softmax(proj[:, off : off + n], dim=-1) * scale
            off += n
            act = (z.unsqueeze(1) * g.unsqueeze(2)).reshape(t, n * r)
        else:
            act = (z * (scale / n)).repeat(1, n)
        if drop and self.per_head:
            act = act * (torch.rand_like(act) >= p)
        if self.compensation:
            act = torch.cat([act, proj[:, off : off + r] * -s], dim=1)
            w = torch.cat([self.heads, self.b0])
        else:
            w = self.heads
        return (y + act @ w).reshape(*shape[:-1], -1)


class Bert(torch.nn.Module):
    """A post-LayerNorm BERT encoder with exact GELU, as the Burn one."""

    def __init__(self, weights, heads=12, hidden_p=0.1, attn_p=0.1, eps=1e-12):
        super().__init__()
        w = weights
        self.heads, self.eps, self.hidden_p, self.attn_p = heads, eps, hidden_p, attn_p

        def emb(name):
            e = torch.nn.Embedding(*w[name].shape)
            e.weight.data.copy_(w[name])
            return e

        def lin(prefix):
            wt = w[prefix + ".weight"]
            layer = torch.nn.Linear(wt.shape[1], wt.shape[0])
            layer.weight.data.copy_(wt)
            layer.bias.data.copy_(w[prefix + ".bias"])
            return layer

        def norm(prefix):
            ln = torch.nn.LayerNorm(w[prefix + ".weight"].shape[0], eps=eps)
            ln.weight.data.copy_(w[prefix + ".weight"])
            ln.bias.data.copy_(w[prefix + ".bias"])
            return ln

        self.word = emb("embeddings.word_embeddings.weight")
        self.pos = emb("embeddings.position_embeddings.weight")
        self.typ = emb("embeddings.token_type_embeddings.weight")
        self.emb_norm = norm("embeddings.LayerNorm")
        self.layers = torch.nn.ModuleList()
        i = 0
        while f"encoder.layer.{i}.attention.self.query.weight" in w:
            p = f"encoder.layer.{i}."
            # ModuleDict keys cannot hold dots: Hugging Face's paths with underscores.
            linears = ["attention.self.query", "attention.self.key", "attention.self.value",
                       "attention.output.dense", "intermediate.dense", "output.dense"]
            norms = ["attention.output.LayerNorm", "output.LayerNorm"]
            block = torch.nn.ModuleDict(
                {k.replace(".", "_"): lin(p + k) for k in linears}
                | {k.replace(".", "_"): norm(p + k) for k in norms}
            )
            self.layers.append(block)
            i += 1

    def adapt(self, spec):
        """Freeze everything, then put an adapter on every targeted linear."""
        self.requires_grad_(False)
        if spec is None:
            return self
        for block in self.layers:
            for target in spec["targets"]:
                key = target.replace(".", "_")
                block[key] = Adapted(block[key], spec)
        return self

    def forward(self, ids, mask):
        b, s = ids.shape
        pos = torch.arange(s).unsqueeze(0).expand(b, s)
        x = self.word(ids) + self.pos(pos) + self.typ(torch.zeros_like(ids))
        x = F.dropout(self.emb_norm(x), self.hidden_p, self.training)
        bias = ((mask.float() - 1.0) * 10000.0).reshape(b, 1, 1, s)
        h = self.heads
        d = x.shape[-1] // h
        for blk in self.layers:
            split = lambda t: t.reshape(b, s, h, d).transpose(1, 2)
            q = split(blk["attention_self_query"](x))
            k = split(blk["attention_self_key"](x))
            v = split(blk["attention_self_value"](x))
            probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + bias, dim=-1)
            probs = F.dropout(probs, self.attn_p, self.training)
            a = (probs @ v).transpose(1, 2).reshape(b, s, h * d)
            a = F.dropout(blk["attention_output_dense"](a), self.hidden_p, self.training)
            x = blk["attention_output_LayerNorm"](a + x)
            up = F.gelu(blk["intermediate_dense"](x))
            o = F.dropout(blk["output_dense"](up), self.hidden_p, self.training)
            x = blk["output_LayerNorm"](o + x)
        return x


def mean_pool(hidden, mask):
    m = mask.unsqueeze(-1).float()
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9)


class Classifier(torch.nn.Module):
    def __init__(self, encoder, classes):
        super().__init__()
        self.encoder = encoder
        self.heads = torch.nn.ModuleList(torch.nn.Linear(encoder.word.weight.shape[1], c) for c in classes)

    def loss(self, batch):
        ids, mask, labels, tasks = batch
        features = mean_pool(self.encoder(ids, mask), mask)
        total = 0.0
        for t, head in enumerate(self.heads):
            rows = (tasks == t).nonzero().squeeze(1)
            if rows.numel() == 0:
                continue
            total = total + F.cross_entropy(head(features[rows]), labels[rows], reduction="sum")
        return total / ids.shape[0]


def tensors(b):
    return (
        torch.tensor(b["ids"]),
        torch.tensor(b["mask"]),
        torch.tensor(b["labels"]),
        torch.tensor(b["tasks"]),
    )


def peak_rss_mib():
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def reset_peak_rss():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def profile(job, args):
    """Self CPU time per operator and step over `args.rounds` steps of `job`."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    for _ in range(args.warmup):
        job()
    start = time.perf_counter()
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.rounds):
            job()
    wall = (time.perf_counter() - start) * 1e3 / args.rounds
    rows = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in rows) / 1e3 / args.rounds
    what = "evaluation batch" if args.profile_eval else "training step"
    print(f"{args.profile}, {what}: {wall:.1f} ms per step under the profiler; operators' self time {total:.1f} ms per step")
    print("| operator | calls per step | self ms per step | share |")
    print("|---|---|---|---|")
    for e in rows[:30]:
        ms = e.self_cpu_time_total / 1e3 / args.rounds
        print(f"| {e.key} | {e.count / args.rounds:.0f} | {ms:.2f} | {100 * ms / total:.1f}% |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--inputs", required=True, help="what `e2e --dump` wrote")
    ap.add_argument("--data-dir", default=os.environ.get("BURN_RLORA_DATA", "data"))
    ap.add_argument("--methods", default=None, help="comma-separated; default: all in the dump")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--tolerance", type=float, default=1e-4)
    ap.add_argument("--check-only", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--profile", metavar="METHOD", help="profile METHOD's training step instead of timing")
    ap.add_argument("--profile-eval", action="store_true", help="with --profile: the evaluation batch")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    dump = json.load(open(args.inputs))
    weights = load_safetensors(os.path.join(args.data_dir, "minilm", "model.safetensors"))
    new_encoder = lambda: Bert(weights, hidden_p=dump["hidden_dropout"], attn_p=dump["attention_dropout"])

    # 1. Parity with the Burn encoder.
    ref = torch.tensor(dump["reference_features"])
    plain = new_encoder().eval()
    ids, mask, _, _ = tensors(dump["train_batches"][0])
    with torch.no_grad():
        got = mean_pool(plain(ids, mask), mask)
    diff = (got - ref).abs().max().item()
    print(f"parity: largest difference to the Burn encoder's features {diff:.2e} (tolerance {args.tolerance:.0e})")
    if not diff <= args.tolerance:
        print("error: the PyTorch encoder does not compute the Burn encoder's features")
        raise SystemExit(1)
    if args.check_only:
        return
    del plain

    # 2. Interleaved timing.
    names = args.methods.split(",") if args.methods else list(dump["methods"])
    if args.profile:
        names = [args.profile]
    train = [tensors(b) for b in dump["train_batches"]]
    evals = [tensors(b) for b in dump["eval_batches"]]
    models, optims, peaks = [], [], []
    for name in names:
        model = Classifier(new_encoder().adapt(dump["methods"][name]), dump["classes"]).train()
        params = [p for p in model.parameters() if p.requires_grad]
        models.append(model)
        optims.append(torch.optim.Adam(params, lr=1e-3))

    def train_job(model, optim):
        state = {"k": 0}

        def job():
            model.train()
            loss = model.loss(train[state["k"] % len(train)])
            state["k"] += 1
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            loss.item()

        return job

    def eval_job(model):
        state = {"k": 0}

        def job():
            model.eval()
            with torch.inference_mode():
                model.loss(evals[state["k"] % len(evals)]).item()
            state["k"] += 1

        return job

    for model, optim in zip(models, optims):
        reset_peak_rss()
        job = train_job(model, optim)
        job()
        job()
        peaks.append(peak_rss_mib())
    if args.profile:
        profile(eval_job(models[0]) if args.profile_eval else train_job(models[0], optims[0]), args)
        return
    jobs = [train_job(m, o) for m, o in zip(models, optims)] + [eval_job(m) for m in models]
    for job in jobs:
        for _ in range(args.warmup):
            job()
    times = [[] for _ in jobs]
    for k in range(args.rounds):
        for j in range(len(jobs)):
            i = (j + k) % len(jobs)
            start = time.perf_counter()
            jobs[i]()
            times[i].append((time.perf_counter() - start) * 1e3)
    med = [statistics.median(t) for t in times]
    n = len(names)
    seq, bs, ebs = dump["seq"], dump["batch_size"], dump["eval_batch_size"]
    out = {}
    print(f"| backend | method | train step ms | train tokens/s | eval batch ms | eval tokens/s | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|")
    for i, name in enumerate(names):
        tr, ev = med[i], med[n + i]
        peak = f"{peaks[i]:.0f}" if peaks[i] else "-"
        print(f"| torch {torch.__version__} | {name} | {tr:.1f} | {bs * seq / tr * 1e3:.0f} | {ev:.1f} | {ebs * seq / ev * 1e3:.0f} | {peak} |")
        out[name] = {
            "train_ms": tr,
            "train_tokens_per_s": bs * seq / tr * 1e3,
            "eval_ms": ev,
            "eval_tokens_per_s": ebs * seq / ev * 1e3,
            "peak_rss_mib": peaks[i],
        }
    if args.json:
        json.dump({"torch": out}, open(args.json, "w"), indent=1)


if __name__ == "__main__":
    main()
