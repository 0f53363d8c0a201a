//! Where the R-LoRA preset's time goes on flex, beyond the ratio table.
//!
//! Two reports, each interleaved round by round, with the median over rounds
//! of each round's ratio to the frozen layer:
//!
//! - `--gemms`: the matrix products of a step, timed alone. The products the
//!   adapter needs, at this backend's measured speed and with every other
//!   operation free, give a lower bound on the step ratio; next to it, the
//!   FLOP floor (the same products at the frozen product's speed).
//! - `--layouts`: the layout choices of the layer's forward, each timed
//!   against the alternative it replaced (gating, dropout masks, the
//!   orientation of an add).
//! - otherwise: ablations of the preset (no dropout, no compensation pair,
//!   no router, none of the three), to price each part.
//!
//! ```text
//! cargo run --release -p burn-rlora-benches --bin breakdown -- --shapes S3 --gemms
//! cargo run --release -p burn-rlora-benches --bin breakdown -- --shapes S3 --layouts
//! cargo run --release -p burn-rlora-benches --bin breakdown -- --shapes S3
//! ```

use burn::backend::{Autodiff, Flex};
use burn::module::Module;
use burn::nn::LinearConfig;
use burn::tensor::{Device, Distribution, Tensor};
use burn_rlora::{RLoraConfig, RLoraLinear};
use burn_rlora_benches::{
    input, interleave, prepare, shapes_named, step, Prepared, Product, Shape, Variant,
};
use clap::Parser;

type A = Autodiff<Flex>;

/// Price the parts of the R-LoRA preset's step on flex.
#[derive(Parser, Debug)]
struct Args {
    /// Shapes (S1..S4).
    #[arg(long, value_delimiter = ',', default_value = "S1,S2,S3,S4")]
    shapes: Vec<String>,
    /// Time the step's matrix products alone instead of ablations.
    #[arg(long, conflicts_with = "layouts")]
    gemms: bool,
    /// Time the forward's layout choices against their alternatives instead.
    #[arg(long)]
    layouts: bool,
    /// Leave glibc's allocator at its defaults (see `ratios --system-malloc`).
    #[arg(long)]
    system_malloc: bool,
    /// Variants for the ablations, the baseline first: frozen, lora,
    /// hydralora, rlora, naive-loop, or the ablations nodrop, nocomp,
    /// norouter, bare (no router, dropout or compensation).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "frozen,rlora,nodrop,nocomp,norouter,bare"
    )]
    variants: Vec<String>,
    /// Rounds.
    #[arg(long, default_value_t = 15)]
    rounds: usize,
}

fn gemms(s: Shape, rounds: usize) {
    let device = Default::default();
    let frozen = s.frozen_products();
    let adapter = s.rlora_products();
    let all: Vec<Product> = frozen.iter().chain(&adapter).copied().collect();
    let operands: Vec<(Tensor<Flex, 2>, Tensor<Flex, 2>)> = all
        .iter()
        .map(|p| {
            let shape = |rows, cols, t: bool| if t { [cols, rows] } else { [rows, cols] };
            let draw = |dims: [usize; 2]| Tensor::random(dims, Distribution::Default, &device);
            (
                draw(shape(p.m, p.k, p.lhs_t)),
                draw(shape(p.k, p.n, p.rhs_t)),
            )
        })
        .collect();
    let mut jobs: Vec<Box<dyn FnMut() + '_>> = all
        .iter()
        .zip(&operands)
        .map(|(p, (a, b))| {
            let p = *p;
            Box::new(move || {
                let a = if p.lhs_t {
                    a.clone().transpose()
                } else {
                    a.clone()
                };
                let b = if p.rhs_t {
                    b.clone().transpose()
                } else {
                    b.clone()
                };
                let _ = a.matmul(b).into_primitive();
            }) as Box<dyn FnMut() + '_>
        })
        .collect();
    let measured = interleave(&mut jobs, rounds, 1);
    let frozen_ms: f64 = measured[..frozen.len()].iter().map(|t| t.median_ms).sum();
    let adapter_ms: f64 = measured[frozen.len()..].iter().map(|t| t.median_ms).sum();
    for (p, t) in all.iter().zip(&measured) {
        println!(
            "| {} | {} | [{}, {}] x [{}, {}] | {:.2} | {:.0} |",
            s.name,
            p.name,
            p.m,
            p.k,
            p.k,
            p.n,
            t.median_ms,
            p.flops() / t.median_ms / 1e6
        );
    }
    println!(
        "| {} | **bound** | adapter products {:.2} ms / frozen products {:.2} ms | **{:.3}** (FLOP floor {:.3}) | |",
        s.name,
        adapter_ms,
        frozen_ms,
        1.0 + adapter_ms / frozen_ms,
        s.rlora_flop_floor()
    );
}

/// The layer's layout choices against the alternatives they replaced, at the
/// sizes of shape `s` (`T x N x r` activations, `T x d_in` inputs).
fn layouts(s: Shape, rounds: usize) {
    let device = Default::default();
    let draw = |dims: [usize; 2]| Tensor::<Flex, 2>::random(dims, Distribution::Default, &device);
    let (t, n, r) = (s.t, s.n, s.r);
    let (z, g, act) = (draw([t, r]), draw([t, n]), draw([t, n * r]));
    let (x, x_t) = (draw([t, s.d_in]), draw([s.d_in, t]));
    let done = |y: Tensor<Flex, 2>| drop(y.into_primitive());
    let labels = [
        "gating: broadcast [T,1,r] x [T,N,1] (before)",
        "gating: contiguous [T, N r] factors (now)",
        "mask: Bernoulli draw and product (before)",
        "mask: uniform draw, compare, mask_fill (now)",
        "dx add: [T, d_in] + contiguous (now)",
        "dx add: [T, d_in] + transposed view (rejected)",
    ];
    let mut jobs: Vec<Box<dyn FnMut() + '_>> = vec![
        Box::new(|| {
            let y = z.clone().unsqueeze_dim::<3>(1) * g.clone().unsqueeze_dim::<3>(2);
            done(y.reshape([t, n * r]))
        }),
        Box::new(|| {
            let zr = z.clone().unsqueeze_dim::<3>(1).repeat_dim(1, n);
            let gr = g.clone().unsqueeze_dim::<3>(2).expand([t, n, r]);
            done(zr.reshape([t, n * r]) * gr.reshape([t, n * r]))
        }),
        Box::new(|| done(act.clone() * act.random_like(Distribution::Bernoulli(0.9)))),
        Box::new(|| {
            let drop = act
                .random_like(Distribution::Default)
                .greater_equal_elem(0.9);
            done(act.clone().mask_fill(drop, 0.0))
        }),
        Box::new(|| done(x.clone() + x.clone())),
        Box::new(|| done(x.clone() + x_t.clone().transpose())),
    ];
    for (label, t) in labels.iter().zip(interleave(&mut jobs, rounds, 1)) {
        println!("| {} | {label} | {:.3} |", s.name, t.median_ms);
    }
}

fn build(name: &str, s: Shape, device: &Device<A>) -> Prepared<A> {
    let base = || {
        LinearConfig::new(s.d_in, s.d_out)
            .init::<A>(device)
            .no_grad()
    };
    let adapted = |c: RLoraConfig, fold: bool| {
        let layer = RLoraLinear::from_linear(base(), &c).expect("valid shape");
        let layer = if fold {
            layer.fold_compensation()
        } else {
            layer
        };
        Prepared::Adapted(Box::new(layer))
    };
    let preset = RLoraConfig::r_lora(s.r, 16.0, s.n);
    let no_router = RLoraConfig::r_lora_no_router(s.r, 16.0, s.n);
    match name {
        "nodrop" => adapted(preset.with_dropout(0.0), false),
        "nocomp" => adapted(preset, true),
        "norouter" => adapted(no_router, false),
        "bare" => adapted(no_router.with_dropout(0.0), true),
        other => match Variant::ALL.iter().find(|v| v.name() == other) {
            Some(&v) => prepare::<A>(v, s, device),
            None => {
                eprintln!("error: unknown variant '{other}'");
                std::process::exit(2);
            }
        },
    }
}

fn ablations(s: Shape, variants: &[String], rounds: usize) {
    let device = Default::default();
    let x = input::<A>(s, &device);
    let layers: Vec<Prepared<A>> = variants.iter().map(|v| build(v, s, &device)).collect();
    let mut jobs: Vec<Box<dyn FnMut() + '_>> = layers
        .iter()
        .map(|l| Box::new(|| step(l, &x)) as Box<dyn FnMut() + '_>)
        .collect();
    let measured = interleave(&mut jobs, rounds, 1);
    let cells: Vec<String> = measured.iter().map(|t| format!("{:.2}", t.ratio)).collect();
    println!(
        "| {} | {:.1} | {} |",
        s.name,
        measured[0].median_ms,
        cells[1..].join(" | ")
    );
}

fn main() {
    let args = Args::parse();
    if !args.system_malloc && !burn_rlora_benches::keep_freed_memory() {
        eprintln!("note: could not tune the allocator (not glibc)");
    }
    if args.rounds == 0 {
        eprintln!("error: --rounds must be at least 1");
        std::process::exit(2);
    }
    let shapes = shapes_named(&args.shapes).unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(2)
    });
    if args.layouts {
        println!("| shape | operation | ms |");
        println!("|---|---|---|");
        for s in shapes {
            layouts(s, args.rounds);
        }
    } else if args.gemms {
        println!("| shape | product | dims | ms | GFLOP/s |");
        println!("|---|---|---|---|---|");
        for s in shapes {
            gemms(s, args.rounds);
        }
    } else {
        println!(
            "| shape | {} ms | {} |",
            args.variants[0],
            args.variants[1..].join(" | ")
        );
        println!("|---|---|{}", "---|".repeat(args.variants.len() - 1));
        for s in shapes {
            ablations(s, &args.variants, args.rounds);
        }
    }
}
