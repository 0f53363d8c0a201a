//! The headline table: each variant's median step time over the frozen
//! layer's, measured in the same run with the variants interleaved, so that
//! the load of a shared machine hits all of them alike.
//!
//! ```text
//! cargo run --release -p burn-rlora-benches --bin ratios -- --backend flex --samples 15
//! ```

use std::collections::BTreeMap;
use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;
use burn_rlora_benches::{input, prepare, step, Shape, Variant, SHAPES};
use clap::Parser;

/// Time the adapter variants against the frozen layer.
#[derive(Parser, Debug)]
struct Args {
    /// Backends: flex, ndarray (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "flex,ndarray")]
    backend: Vec<String>,
    /// Shapes to run (S1..S4).
    #[arg(long, value_delimiter = ',', default_value = "S1,S2,S3,S4")]
    shapes: Vec<String>,
    /// Timed steps per variant.
    #[arg(long, default_value_t = 11)]
    samples: usize,
    /// Untimed steps per variant first.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Also write the medians (ms) as JSON: backend → shape → variant → ms.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

type Medians = BTreeMap<String, BTreeMap<String, BTreeMap<String, f64>>>;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn run<B: AutodiffBackend>(
    backend: &str,
    shapes: &[Shape],
    samples: usize,
    warmup: usize,
    all: &mut Medians,
) {
    let device = B::Device::default();
    B::seed(&device, 0);
    for &s in shapes {
        let x = input::<B>(s, &device);
        let layers: Vec<_> = Variant::ALL
            .iter()
            .map(|&v| (v, prepare::<B>(v, s, &device)))
            .collect();
        for (_, layer) in &layers {
            for _ in 0..warmup {
                step(layer, &x);
            }
        }
        let mut times = vec![Vec::with_capacity(samples); layers.len()];
        for k in 0..samples {
            // Rotate the order so that no variant always runs first.
            for j in 0..layers.len() {
                let i = (j + k) % layers.len();
                let start = Instant::now();
                step(&layers[i].1, &x);
                times[i].push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
        let medians: Vec<f64> = times.into_iter().map(median).collect();
        let cell = all
            .entry(backend.to_string())
            .or_default()
            .entry(s.name.to_string())
            .or_default();
        for (v, m) in Variant::ALL.iter().zip(&medians) {
            cell.insert(v.name().to_string(), *m);
        }
        let base = medians[0];
        let ratios: Vec<String> = medians[1..]
            .iter()
            .map(|m| format!("{:.2}", m / base))
            .collect();
        println!(
            "| {backend} | {} {}→{} r{} N{} T{} | {:.1} | {} |",
            s.name,
            s.d_in,
            s.d_out,
            s.r,
            s.n,
            s.t,
            base,
            ratios.join(" | ")
        );
    }
}

fn main() {
    let args = Args::parse();
    let shapes: Vec<Shape> = args
        .shapes
        .iter()
        .map(|n| {
            SHAPES
                .iter()
                .copied()
                .find(|s| s.name.eq_ignore_ascii_case(n))
                .unwrap_or_else(|| {
                    eprintln!("error: unknown shape '{n}' (expected S1..S4)");
                    std::process::exit(2)
                })
        })
        .collect();
    if args.samples == 0 {
        eprintln!("error: --samples must be at least 1");
        std::process::exit(2);
    }
    let names: Vec<&str> = Variant::ALL[1..].iter().map(|v| v.name()).collect();
    println!("| backend | shape | frozen ms | {} |", names.join(" | "));
    println!("|---|---|---|{}", "---|".repeat(names.len()));
    let mut all = Medians::new();
    for b in &args.backend {
        match b.as_str() {
            "flex" => run::<burn::backend::Autodiff<burn::backend::Flex>>(
                b,
                &shapes,
                args.samples,
                args.warmup,
                &mut all,
            ),
            "ndarray" => run::<burn::backend::Autodiff<burn::backend::NdArray>>(
                b,
                &shapes,
                args.samples,
                args.warmup,
                &mut all,
            ),
            #[cfg(feature = "cuda")]
            "cuda" => run::<burn::backend::Autodiff<burn::backend::Cuda>>(
                b,
                &shapes,
                args.samples,
                args.warmup,
                &mut all,
            ),
            #[cfg(feature = "cuda")]
            "cuda-bf16" => run::<burn::backend::Autodiff<burn::backend::Cuda<burn::tensor::bf16>>>(
                b,
                &shapes,
                args.samples,
                args.warmup,
                &mut all,
            ),
            other => {
                eprintln!("error: unknown or not compiled backend '{other}' (flex, ndarray; cuda, cuda-bf16 with --features cuda)");
                std::process::exit(2);
            }
        }
    }
    if let Some(path) = args.json {
        let text = serde_json::to_string_pretty(&all).expect("medians serialize");
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("error: cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
    }
}
