//! The headline table: each variant's step time over the frozen layer's,
//! measured in the same run with the variants interleaved round by round;
//! a cell is the median over rounds of that round's ratio, so that the load
//! of a shared machine hits both sides of each ratio alike.
//!
//! ```text
//! cargo run --release -p burn-rlora-benches --bin ratios -- --backend flex --samples 15
//! ```

use std::collections::BTreeMap;

use burn::tensor::backend::AutodiffBackend;
use burn_rlora_benches::{input, interleave, prepare, shapes_named, step, Shape, Variant};
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
    /// Leave glibc's allocator at its defaults (return freed memory to the
    /// kernel, so large buffers page-fault on every step).
    #[arg(long)]
    system_malloc: bool,
    /// Also write the results as JSON: backend → shape → variant → median ms,
    /// and `<variant>/frozen` → the paired ratio of the table.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

type Medians = BTreeMap<String, BTreeMap<String, BTreeMap<String, f64>>>;

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
        let mut jobs: Vec<Box<dyn FnMut() + '_>> = layers
            .iter()
            .map(|(_, layer)| Box::new(|| step(layer, &x)) as Box<dyn FnMut() + '_>)
            .collect();
        let timings = interleave(&mut jobs, samples, warmup);
        let ratios: Vec<f64> = timings[1..].iter().map(|t| t.ratio).collect();
        let medians: Vec<f64> = timings.iter().map(|t| t.median_ms).collect();
        let cell = all
            .entry(backend.to_string())
            .or_default()
            .entry(s.name.to_string())
            .or_default();
        for (v, m) in Variant::ALL.iter().zip(&medians) {
            cell.insert(v.name().to_string(), *m);
        }
        for (v, q) in Variant::ALL[1..].iter().zip(&ratios) {
            cell.insert(format!("{}/frozen", v.name()), *q);
        }
        let base = medians[0];
        let ratios: Vec<String> = ratios.iter().map(|q| format!("{q:.2}")).collect();
        println!(
            "| {backend} | {} {}→{} r{} N{} T{} | {:.1} | {} | {:.2} |",
            s.name,
            s.d_in,
            s.d_out,
            s.r,
            s.n,
            s.t,
            base,
            ratios.join(" | "),
            s.rlora_flop_floor()
        );
    }
}

fn main() {
    let args = Args::parse();
    if !args.system_malloc && !burn_rlora_benches::keep_freed_memory() {
        eprintln!("note: could not tune the allocator (not glibc); large buffers may page-fault every step");
    }
    let shapes = shapes_named(&args.shapes).unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(2)
    });
    if args.samples == 0 {
        eprintln!("error: --samples must be at least 1");
        std::process::exit(2);
    }
    let names: Vec<&str> = Variant::ALL[1..].iter().map(|v| v.name()).collect();
    println!(
        "| backend | shape | frozen ms | {} | rlora FLOP floor |",
        names.join(" | ")
    );
    println!("|---|---|---|{}---|", "---|".repeat(names.len()));
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
