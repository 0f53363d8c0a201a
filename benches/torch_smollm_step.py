#!/usr/bin/env python3
"""PyTorch rendering of one training step of SmolLM2-135M-Instruct with
adapters on the feed-forward projections, for a side-by-side with the
`smollm_step` bench binary.

Optional to run: needs `pip install torch transformers gguf accelerate`.
Reads what `smollm_step --dump FILE` writes (the token ids, the answer
positions and their targets, each method's adapter settings, the Burn
decoder's loss on the batch) and the model from its GGUF file (transformers
dequantizes it to float32), freezes the model, and puts an adapter of this
file's own on `gate_proj`, `up_proj` and `down_proj` of every block:

* `lora`: `A` `[r, in]` Kaiming-uniform `U(+-1/sqrt(in))`, `B` `[out, r]`
  zero, dropout on the input `x`;
* `hydralora`: the same `A`, `N` zero heads, a softmax router `[N, in]`
  Kaiming-uniform, one dropout mask on `x` shared by the heads;
* `rlora`: `A` `c N(0, 1/in)`, each head its own `c N(0, 1/out)` with the
  stable factor `c = out^(1/4) / sqrt(64)`, a zero router, multi-head dropout
  (every head its own mask on its copy of `z = A x`), and the frozen
  compensation pair `A0 = A`, `Bbar0 = mean_i B_i`, so that the output at
  step 0 is the base's.

All heads go through one product (the gate-scaled copies of `z` side by
side, times the stacked heads), as in burn-rlora. The step: the decoder over
the batch, the final hidden states at the answer positions, the tied head
on those rows, cross entropy, backward (the adapters alone train), Adam.

Modes:

* `--check`: the frozen model's loss on the batch against the Burn decoder's
  (exits 1 beyond `--tolerance`);
* `--serve`: loads once, then answers one line per command on stdin
  (`step METHOD` runs one step and prints `{"ms": ..., "loss": ...}`;
  `quit` ends), which is how `smollm_step` alternates rounds with it;
* `--peak METHOD`: peak RSS (`VmHWM`, reset after loading) over two steps;
* `--profile METHOD`: torch.profiler's self CPU time per operator and step;
* otherwise: times `--rounds` steps per method, interleaved, after
  `--warmup`, and prints a table (and with `--json`, the medians).

The method `frozen` is the frozen model's forward and loss, without
gradients (the baseline).

`--cache DIR` keeps the dequantized model in DIR (`model.pt`), so that
later processes (the `--peak` runs) load in seconds instead of minutes.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def load_model(data_dir, gguf, cache, attn):
    """The model in float32, from `cache` when it holds it, else from the GGUF file."""
    from transformers import AutoConfig, AutoModelForCausalLM

    path = os.path.join(cache, "model.pt") if cache else None
    if path and os.path.exists(path):
        saved = torch.load(path, weights_only=True)
        config = AutoConfig.for_model(**saved["config"])
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation=attn)
        model.load_state_dict(saved["state"])
        model.tie_weights()
        return model
    model = AutoModelForCausalLM.from_pretrained(
        data_dir, gguf_file=gguf, dtype=torch.float32, attn_implementation=attn
    )
    if path:
        # transformers refuses to save a model read from GGUF: keep the
        # config and the dequantized tensors instead.
        os.makedirs(cache, exist_ok=True)
        config = {k: v for k, v in model.config.to_dict().items() if k != "quantization_config"}
        torch.save({"config": config, "state": model.state_dict()}, path + ".tmp")
        os.replace(path + ".tmp", path)
    return model


class AdaptedLinear(torch.nn.Module):
    """A frozen `nn.Linear` plus a LoRA, HydraLoRA or R-LoRA adapter."""

    def __init__(self, base, spec):
        super().__init__()
        self.base = base
        out_f, in_f = base.weight.shape
        self.kind = spec["kind"]
        r, n = spec["rank"], spec["heads"]
        self.r, self.n = r, n
        self.s, self.p = spec["scaling"], spec["dropout"]
        bound = 1.0 / math.sqrt(in_f)
        if self.kind == "rlora":
            c = out_f ** 0.25 / math.sqrt(spec["stable_gamma"])
            a = torch.randn(r, in_f) * (c / math.sqrt(in_f))
            heads = [torch.randn(out_f, r) * (c / math.sqrt(out_f)) for _ in range(n)]
            b = torch.cat(heads, 1)
            route = torch.zeros(n, in_f)
            self.register_buffer("a0", a.clone())
            self.register_buffer("b0", torch.stack(heads).mean(0))
        else:
            a = torch.empty(r, in_f).uniform_(-bound, bound)
            b = torch.zeros(out_f, n * r)
            route = torch.empty(n, in_f).uniform_(-bound, bound) if self.kind == "hydralora" else None
        self.lora_a = torch.nn.Parameter(a)
        # Head i is columns i*r..(i+1)*r.
        self.lora_b = torch.nn.Parameter(b)
        self.route = torch.nn.Parameter(route) if route is not None else None

    def forward(self, x):
        y = self.base(x)
        rows = x.reshape(-1, x.shape[-1])
        t, r, n, s, p = rows.shape[0], self.r, self.n, self.s, self.p
        if self.kind == "rlora":
            # z = A x, the router's logits and z0 = A0 x from one product.
            proj = F.linear(rows, torch.cat([self.lora_a, self.route, self.a0]))
            z, logits, z0 = proj[:, :r], proj[:, r : r + n], proj[:, r + n :]
            g = torch.softmax(logits, dim=-1)
            act = (g.unsqueeze(2) * (z * s).unsqueeze(1)).reshape(t, n * r)
            act = F.dropout(act, p, self.training)  # each head its own mask
            delta = F.linear(torch.cat([act, z0 * -s], 1), torch.cat([self.lora_b, self.b0], 1))
        else:
            z = F.linear(F.dropout(rows, p, self.training), self.lora_a)  # one mask on x
            if self.route is None:
                act = z * s
            else:
                g = torch.softmax(F.linear(rows, self.route), dim=-1)
                act = (g.unsqueeze(2) * (z * s).unsqueeze(1)).reshape(t, n * r)
            delta = F.linear(act, self.lora_b)
        return y + delta.reshape(*x.shape[:-1], -1)


def adapt(model, spec):
    """Freeze the model; an adapter on every targeted projection of every block."""
    model.requires_grad_(False)
    if spec is None:
        return model
    for layer in model.model.layers:
        for name in spec["targets"]:
            setattr(layer.mlp, name, AdaptedLinear(getattr(layer.mlp, name), spec))
    return model


def copy_model(model):
    """A copy of the frozen model sharing its weights (no second 540 MB)."""
    import copy

    memo = {id(p): p for p in model.parameters()}
    memo.update({id(b): b for b in model.buffers()})
    return copy.deepcopy(model, memo)


def answer_loss(model, batch):
    """Cross entropy of the tied head at the answer positions."""
    ids, positions, targets = batch
    hidden = model.model(input_ids=ids, use_cache=False).last_hidden_state
    rows = hidden.reshape(-1, hidden.shape[-1]).index_select(0, positions)
    return F.cross_entropy(model.lm_head(rows), targets)


class Job:
    """One method's model, optimizer and step."""

    def __init__(self, base, name, spec, lr):
        self.name = name
        if name == "frozen":
            self.model = base.eval()
            self.optim = None
        else:
            self.model = adapt(copy_model(base), spec).train()
            params = [p for p in self.model.parameters() if p.requires_grad]
            # Burn's Adam defaults: betas (0.9, 0.999), epsilon 1e-5.
            self.optim = torch.optim.Adam(params, lr=lr, eps=1e-5)

    def step(self, batch):
        if self.optim is None:
            with torch.inference_mode():
                return answer_loss(self.model, batch).item()
        loss = answer_loss(self.model, batch)
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        self.optim.step()
        return loss.item()

    def timed(self, batch):
        start = time.perf_counter()
        loss = self.step(batch)
        return (time.perf_counter() - start) * 1e3, loss


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


def profile(job, batch, rounds, warmup):
    """Self CPU time per operator and step over `rounds` steps of `job`."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    for _ in range(warmup):
        job.step(batch)
    start = time.perf_counter()
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(rounds):
            job.step(batch)
    wall = (time.perf_counter() - start) * 1e3 / rounds
    rows = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in rows) / 1e3 / rounds
    print(f"{job.name}: {wall:.1f} ms per step under the profiler; operators' self time {total:.1f} ms per step")
    print("| operator | calls per step | self ms per step | share |")
    print("|---|---|---|---|")
    for e in rows[:30]:
        ms = e.self_cpu_time_total / 1e3 / rounds
        print(f"| {e.key} | {e.count / rounds:.0f} | {ms:.2f} | {100 * ms / total:.1f}% |")


def serve(jobs, batch):
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "quit":
            return
        if cmd[0] == "step" and len(cmd) == 2 and cmd[1] in jobs:
            ms, loss = jobs[cmd[1]].timed(batch)
            print(json.dumps({"ms": ms, "loss": loss}), flush=True)
        else:
            print(json.dumps({"error": f"unknown command {line.strip()!r}"}), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--inputs", required=True, help="what `smollm_step --dump` wrote")
    ap.add_argument("--data-dir", default=os.environ.get("BURN_RLORA_DATA", "data"))
    ap.add_argument("--gguf", default="smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", help="under --data-dir")
    ap.add_argument("--cache", help="keep the dequantized model here")
    ap.add_argument("--attn", default="sdpa", help="transformers' attn_implementation (sdpa, eager)")
    ap.add_argument("--methods", default=None, help="comma-separated; default: all in the dump")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--tolerance", type=float, default=2e-3)
    ap.add_argument("--check", action="store_true", help="compare the frozen loss with Burn's, then exit")
    ap.add_argument("--serve", action="store_true", help="answer `step METHOD` lines on stdin")
    ap.add_argument("--peak", metavar="METHOD", help="peak RSS of two steps of METHOD")
    ap.add_argument("--profile", metavar="METHOD", help="profile METHOD's step instead of timing")
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    dump = json.load(open(args.inputs))
    d = os.path.dirname(os.path.join(args.data_dir, args.gguf))
    start = time.perf_counter()
    base = load_model(d, os.path.basename(args.gguf), args.cache, args.attn)
    log(f"torch: model loaded in {time.perf_counter() - start:.1f} s")
    batch = (
        torch.tensor(dump["ids"], dtype=torch.long),
        torch.tensor(dump["positions"], dtype=torch.long),
        torch.tensor(dump["targets"], dtype=torch.long),
    )

    names = args.methods.split(",") if args.methods else list(dump["methods"])
    for one in (args.peak, args.profile):
        if one:
            names = [one]
    jobs = {n: Job(base, n, dump["methods"].get(n), dump["lr"]) for n in names}

    if args.check or args.serve:
        plain = Job(base, "frozen", None, dump["lr"])
        loss = plain.step(batch)
        diff = abs(loss - dump["burn_frozen_loss"])
        ok = diff <= args.tolerance
        info = {"ready": ok, "frozen_loss": loss, "difference": diff, "torch": torch.__version__,
                "attn": base.config._attn_implementation, "threads": torch.get_num_threads()}
        print(json.dumps(info), flush=True)
        if not ok:
            log(f"error: the frozen loss {loss:.6f} differs from Burn's {dump['burn_frozen_loss']:.6f} by {diff:.2e}")
            raise SystemExit(1)
        if args.serve:
            serve(jobs, batch)
        return

    if args.peak:
        job = jobs[args.peak]
        reset_peak_rss()
        job.step(batch)
        job.step(batch)
        print(json.dumps({"peak_rss_mib": peak_rss_mib()}), flush=True)
        return

    if args.profile:
        profile(jobs[args.profile], batch, args.rounds, args.warmup)
        return

    order = list(jobs.values())
    for job in order:
        for _ in range(args.warmup):
            job.step(batch)
    times = {j.name: [] for j in order}
    for k in range(args.rounds):
        for i in range(len(order)):
            job = order[(i + k) % len(order)]
            times[job.name].append(job.timed(batch)[0])
    tokens = dump["ids"] and len(dump["ids"]) * len(dump["ids"][0])
    out = {}
    print("| method | torch s/step | tokens/s |")
    print("|---|---|---|")
    for name, t in times.items():
        med = statistics.median(t)
        out[name] = {"step_ms": med, "tokens_per_s": tokens / med * 1e3, "times_ms": t}
        print(f"| {name} | {med / 1e3:.2f} | {tokens / med * 1e3:.0f} |")
    if args.json:
        json.dump({"torch": out}, open(args.json, "w"), indent=1)


if __name__ == "__main__":
    main()
