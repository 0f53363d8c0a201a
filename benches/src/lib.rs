//! Shared pieces of the benchmarks: the shapes, the variants, and a
//! deliberately naive per-head-loop layer to show what fusing buys.
//!
//! Every variant is timed as one training step of `mean(y^2)`: forward, then
//! backward with the input requiring a gradient (as inside a network).
//! [`child`] holds what the side-by-sides with a PyTorch child process share.

pub mod child;

use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::softmax;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Distribution, Tensor};
use burn_rlora::{RLoraConfig, RLoraLinear};

/// One benchmark shape: a layer `d_in -> d_out` with rank `r`, `n` heads and `t` tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Name in the tables (S1..S4).
    pub name: &'static str,
    /// Input features.
    pub d_in: usize,
    /// Output features.
    pub d_out: usize,
    /// Rank per head.
    pub r: usize,
    /// Heads.
    pub n: usize,
    /// Tokens per step.
    pub t: usize,
}

/// The four benchmark shapes: two projections of a 0.5B-parameter LLM's MLP
/// (S1, S2), a small square layer over many tokens (S3) and a larger square
/// layer with more heads (S4).
pub const SHAPES: [Shape; 4] = [
    Shape {
        name: "S1",
        d_in: 896,
        d_out: 4864,
        r: 8,
        n: 5,
        t: 1024,
    },
    Shape {
        name: "S2",
        d_in: 4864,
        d_out: 896,
        r: 8,
        n: 5,
        t: 1024,
    },
    Shape {
        name: "S3",
        d_in: 512,
        d_out: 512,
        r: 8,
        n: 4,
        t: 4096,
    },
    Shape {
        name: "S4",
        d_in: 2048,
        d_out: 2048,
        r: 16,
        n: 8,
        t: 512,
    },
];

/// The shapes named in `names` (S1..S4, any case), or an error naming the
/// unknown one.
pub fn shapes_named(names: &[String]) -> Result<Vec<Shape>, String> {
    names
        .iter()
        .map(|n| {
            SHAPES
                .iter()
                .copied()
                .find(|s| s.name.eq_ignore_ascii_case(n))
                .ok_or_else(|| format!("unknown shape '{n}' (expected S1..S4)"))
        })
        .collect()
}

/// The median of `v` (the upper one for an even length); `NaN` for none.
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One timing per job: the median time and the paired ratio to job 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// Median wall time of one run, in milliseconds.
    pub median_ms: f64,
    /// Median over rounds of this job's time over job 0's in the same round.
    pub ratio: f64,
}

/// Run each job `warmup` times, then once per round for `rounds` rounds,
/// rotating the order so that no job always runs first. Each round's jobs
/// run back to back and share the machine's state, so the median over rounds
/// of the paired ratios is steadier on a shared machine than a ratio of
/// medians.
pub fn interleave(jobs: &mut [Box<dyn FnMut() + '_>], rounds: usize, warmup: usize) -> Vec<Timing> {
    for job in jobs.iter_mut() {
        for _ in 0..warmup {
            job();
        }
    }
    let mut times = vec![Vec::with_capacity(rounds); jobs.len()];
    for k in 0..rounds {
        for j in 0..jobs.len() {
            let i = (j + k) % jobs.len();
            let start = std::time::Instant::now();
            jobs[i]();
            times[i].push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    (0..jobs.len())
        .map(|i| Timing {
            median_ms: median(times[i].clone()),
            ratio: median((0..rounds).map(|k| times[i][k] / times[0][k]).collect()),
        })
        .collect()
}

/// One matrix product `[m, k] x [k, n]` of a training step. `lhs_t`/`rhs_t`:
/// the operand is a transposed view, as autodiff's backward passes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Product {
    /// What it computes.
    pub name: &'static str,
    /// Rows of the result.
    pub m: usize,
    /// Inner dimension.
    pub k: usize,
    /// Columns of the result.
    pub n: usize,
    /// The left operand is a transposed view.
    pub lhs_t: bool,
    /// The right operand is a transposed view.
    pub rhs_t: bool,
}

impl Product {
    /// Floating-point operations, `2 m k n`.
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.k as f64 * self.n as f64
    }
}

impl Shape {
    /// The frozen layer's products in a step: `x W` and, for `dL/dx`, `dy W^T`.
    pub fn frozen_products(&self) -> Vec<Product> {
        let (t, i, o) = (self.t, self.d_in, self.d_out);
        vec![
            prod("x W", t, i, o, false, false),
            prod("dy W^T", t, o, i, false, true),
        ]
    }

    /// The products the R-LoRA preset adds to a step, at the widths any
    /// implementation needs: the projection `[A | W_r | A0]` is `2r + N`
    /// wide (`r + N` of it trainable), the head product `[B_1..B_N; Bbar0]`
    /// has `(N + 1) r` rows (`N r` trainable). Gradients are needed for `x`,
    /// `A`, `W_r` and the heads, not for the frozen `W`, `A0`, `Bbar0`.
    pub fn rlora_products(&self) -> Vec<Product> {
        let (t, i, o, r, n) = (self.t, self.d_in, self.d_out, self.r, self.n);
        let (p, pt, k, kt) = (2 * r + n, r + n, (n + 1) * r, n * r);
        vec![
            prod("x [A|Wr|A0]", t, i, p, false, false),
            prod("act [B;B0]", t, k, o, false, false),
            prod("dy [B;B0]^T", t, o, k, false, true),
            prod("act^T dy (dB)", kt, t, o, true, false),
            prod("dproj P^T (dx)", t, p, i, false, true),
            prod("x^T dproj (dA, dWr)", i, t, pt, true, false),
        ]
    }

    /// The FLOP floor of the R-LoRA preset's step over the frozen layer's:
    /// `1 + adapter FLOPs / frozen FLOPs`, counting forward and backward.
    pub fn rlora_flop_floor(&self) -> f64 {
        let sum = |ps: Vec<Product>| ps.iter().map(Product::flops).sum::<f64>();
        1.0 + sum(self.rlora_products()) / sum(self.frozen_products())
    }
}

fn prod(name: &'static str, m: usize, k: usize, n: usize, lhs_t: bool, rhs_t: bool) -> Product {
    Product {
        name,
        m,
        k,
        n,
        lhs_t,
        rhs_t,
    }
}

/// What is timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// The frozen `Linear` alone.
    Frozen,
    /// `RLoraConfig::lora` with rank `r`.
    Lora,
    /// `RLoraConfig::hydra_lora`.
    HydraLora,
    /// `RLoraConfig::r_lora`.
    RLora,
    /// [`NaiveMultiHead`]: a loop over heads, reference style.
    NaiveLoop,
}

impl Variant {
    /// All variants, the baseline first.
    pub const ALL: [Variant; 5] = [
        Self::Frozen,
        Self::Lora,
        Self::HydraLora,
        Self::RLora,
        Self::NaiveLoop,
    ];

    /// Name in the tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::Frozen => "frozen",
            Self::Lora => "lora",
            Self::HydraLora => "hydralora",
            Self::RLora => "rlora",
            Self::NaiveLoop => "naive-loop",
        }
    }
}

/// The reference code's structure, written naively on purpose: `A x` is
/// recomputed for every head, each head has its own dropout and its own
/// `[T, d_out]` product, and the gated outputs are summed.
#[derive(Module, Debug)]
pub struct NaiveMultiHead<B: Backend> {
    /// Frozen base.
    pub base: Linear<B>,
    /// `A`, `[d_in, r]`.
    pub a: Param<Tensor<B, 2>>,
    /// The heads, each `[r, d_out]`.
    pub heads: Vec<Param<Tensor<B, 2>>>,
    /// Router `[d_in, n]`.
    pub route: Param<Tensor<B, 2>>,
}

impl<B: Backend> NaiveMultiHead<B> {
    /// Random adapter over a frozen base.
    pub fn new(base: Linear<B>, s: Shape, device: &B::Device) -> Self {
        let rand = |rows, cols| {
            Param::from_tensor(Tensor::random(
                [rows, cols],
                Distribution::Normal(0.0, 0.02),
                device,
            ))
        };
        Self {
            base: base.no_grad(),
            a: rand(s.d_in, s.r),
            heads: (0..s.n).map(|_| rand(s.r, s.d_out)).collect(),
            route: rand(s.d_in, s.n),
        }
    }

    /// The forward, one head at a time.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let training = B::ad_enabled(&x.device());
        let gates = softmax(x.clone().matmul(self.route.val()), 1);
        let mut y = self.base.forward(x.clone());
        for (i, head) in self.heads.iter().enumerate() {
            let mut z = x.clone().matmul(self.a.val());
            if training {
                z = z.clone() * z.random_like(Distribution::Bernoulli(0.9)) / 0.9;
            }
            let out = z.matmul(head.val()) * gates.clone().narrow(1, i, 1);
            y = y + out.mul_scalar(2.0);
        }
        y
    }
}

/// A prepared variant: the layer and an input.
pub enum Prepared<B: Backend> {
    /// The frozen base.
    Frozen(Box<Linear<B>>),
    /// An adapted layer.
    Adapted(Box<RLoraLinear<B>>),
    /// The naive loop.
    Naive(Box<NaiveMultiHead<B>>),
}

/// Build `variant` at shape `s` on `device`.
pub fn prepare<B: Backend>(variant: Variant, s: Shape, device: &B::Device) -> Prepared<B> {
    let base = LinearConfig::new(s.d_in, s.d_out)
        .init::<B>(device)
        .no_grad();
    let _ = base.weight.val(); // materialize the lazy init outside the timing
    let adapted = |c: RLoraConfig| {
        Prepared::Adapted(Box::new(
            RLoraLinear::from_linear(base.clone(), &c).expect("valid shape"),
        ))
    };
    match variant {
        Variant::Frozen => Prepared::Frozen(Box::new(base)),
        Variant::Lora => adapted(RLoraConfig::lora(s.r, 16.0)),
        Variant::HydraLora => adapted(RLoraConfig::hydra_lora(s.r, 16.0, s.n)),
        Variant::RLora => adapted(RLoraConfig::r_lora(s.r, 16.0, s.n)),
        Variant::NaiveLoop => Prepared::Naive(Box::new(NaiveMultiHead::new(base, s, device))),
    }
}

impl<B: Backend> Prepared<B> {
    /// The layer's forward.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        match self {
            Prepared::Frozen(l) => l.forward(x),
            Prepared::Adapted(l) => l.forward(x),
            Prepared::Naive(l) => l.forward(x),
        }
    }
}

/// A random input `[t, d_in]`.
pub fn input<B: Backend>(s: Shape, device: &B::Device) -> Tensor<B, 2> {
    Tensor::random([s.t, s.d_in], Distribution::Normal(0.0, 1.0), device)
}

/// One training step: forward, `mean(y^2)`, backward with `x` requiring a
/// gradient; waits for the device so that the time is the work's.
pub fn step<B: AutodiffBackend>(layer: &Prepared<B>, x: &Tensor<B, 2>) {
    let x = x.clone().detach().require_grad();
    let loss = layer.forward(x).powi_scalar(2).mean();
    let grads = loss.backward();
    drop(grads);
    let _ = B::sync(&loss_device::<B>());
}

fn loss_device<B: Backend>() -> B::Device {
    Default::default()
}

/// Make glibc's allocator keep freed memory instead of handing it back to
/// the kernel, so that a step's large buffers do not page-fault anew on every
/// step. With the defaults, the zero-filling of fresh pages costs more than
/// the adapter's arithmetic (S1: 90 ms for `x W` against 61 ms with this,
/// benches/RESULTS.md), and it hits the variants unevenly. Returns `false`
/// where it does not apply (not glibc) or was refused.
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; it is called
        // before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX) == 1
                && libc::mallopt(libc::M_TOP_PAD, 64 << 20) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_found_by_name_and_unknown_ones_named() {
        let got = shapes_named(&["s3".into(), "S1".into()]).unwrap();
        assert_eq!((got[0].name, got[1].name), ("S3", "S1"));
        let err = shapes_named(&["S9".into()]).unwrap_err();
        assert!(err.contains("'S9'"), "{err}");
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert!(median(Vec::new()).is_nan());
    }

    #[test]
    fn interleave_runs_every_job_each_round_and_pairs_the_ratios() {
        use std::cell::Cell;
        let runs = [Cell::new(0), Cell::new(0)];
        let sleep = |ms: u64| std::thread::sleep(std::time::Duration::from_millis(ms));
        let mut jobs: Vec<Box<dyn FnMut() + '_>> = vec![
            Box::new(|| {
                runs[0].set(runs[0].get() + 1);
                sleep(2)
            }),
            Box::new(|| {
                runs[1].set(runs[1].get() + 1);
                sleep(8)
            }),
        ];
        let t = interleave(&mut jobs, 5, 1);
        assert_eq!((runs[0].get(), runs[1].get()), (6, 6));
        assert_eq!(t[0].ratio, 1.0);
        // A sleep never ends early, so each median is at least its sleep;
        // nothing here depends on how loaded the machine is.
        assert!(t[0].median_ms >= 2.0 && t[1].median_ms >= 8.0, "{t:?}");
        assert!(t[1].ratio.is_finite() && t[1].ratio > 0.0, "{t:?}");
    }

    #[test]
    fn flop_floor_counts_forward_and_backward_by_hand() {
        // S3: frozen 4 T in out; adapter 2 T [in (2p + pt) + out (2k + kt)]
        // with p = 20, pt = 12, k = 40, kt = 32.
        let s3 = SHAPES[2];
        let frozen = 4.0 * 4096.0 * 512.0 * 512.0;
        let adapter = 2.0 * 4096.0 * (512.0 * 52.0 + 512.0 * 112.0);
        assert_eq!(adapter, 687_865_856.0);
        assert!((s3.rlora_flop_floor() - (1.0 + adapter / frozen)).abs() < 1e-12);
        assert!((s3.rlora_flop_floor() - 1.160_156_25).abs() < 1e-9);
        // S2 is the cheapest shape: d_out small, so the head product is thin.
        let floors: Vec<f64> = SHAPES.iter().map(Shape::rlora_flop_floor).collect();
        assert!(floors[1] < floors[0] && floors[0] < floors[3] && floors[3] < floors[2]);
    }
}
