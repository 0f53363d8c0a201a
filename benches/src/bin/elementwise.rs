//! The MiniLM encoder's GELU and dropout alone, at the training step's sizes
//! (`[1024, 1536]`: 16 × 64 tokens of the feed-forward width), forward and
//! backward on autodiff flex: Burn's `gelu` and `Dropout` against the host
//! kernels of `burn_rlora_llm::host_ops`, interleaved.
//!
//! ```text
//! cargo run --release -p burn-rlora-benches --bin elementwise -- --rounds 21
//! ```

use burn::backend::{Autodiff, Flex};
use burn::nn::DropoutConfig;
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use burn_rlora_benches::{interleave, keep_freed_memory};
use burn_rlora_llm::host_ops;
use clap::Parser;

/// Time GELU and dropout, Burn's against the host kernels.
#[derive(Parser, Debug)]
struct Args {
    /// Rows (tokens).
    #[arg(long, default_value_t = 1024)]
    rows: usize,
    /// Columns (features).
    #[arg(long, default_value_t = 1536)]
    cols: usize,
    /// Timed rounds.
    #[arg(long, default_value_t = 21)]
    rounds: usize,
}

type AD = Autodiff<Flex>;

fn main() {
    let args = Args::parse();
    if args.rounds == 0 || args.rows * args.cols == 0 {
        eprintln!("error: --rounds, --rows and --cols must be at least 1");
        std::process::exit(2);
    }
    keep_freed_memory();
    let device = Default::default();
    AD::seed(&device, 0);
    let x = Tensor::<AD, 2>::random(
        [args.rows, args.cols],
        Distribution::Normal(0.0, 2.0),
        &device,
    )
    .require_grad();
    let plain = x.clone().inner();
    let drop = DropoutConfig::new(0.1).init();
    let step = |y: Tensor<AD, 2>| {
        let _ = y.sum().backward();
    };
    let names = [
        "gelu fwd+bwd, burn",
        "gelu fwd+bwd, host",
        "gelu fwd (eval), burn",
        "gelu fwd (eval), host",
        "dropout fwd+bwd, burn",
        "dropout fwd+bwd, host",
    ];
    let mut jobs: Vec<Box<dyn FnMut() + '_>> = vec![
        Box::new(|| step(burn::tensor::activation::gelu(x.clone()))),
        Box::new(|| step(host_ops::gelu(x.clone()))),
        Box::new(|| {
            let _ = burn::tensor::activation::gelu(plain.clone());
        }),
        Box::new(|| {
            let _ = host_ops::gelu(plain.clone());
        }),
        Box::new(|| step(drop.forward(x.clone()))),
        Box::new(|| step(host_ops::dropout(x.clone(), &drop))),
    ];
    let t = interleave(&mut jobs, args.rounds, 2);
    println!(
        "| [{}, {}] | median ms | paired ratio to Burn's |",
        args.rows, args.cols
    );
    println!("|---|---|---|");
    for (i, name) in names.iter().enumerate() {
        let base = i - i % 2;
        // Both sides' paired ratios to job 0, divided.
        let ratio = t[i].ratio / t[base].ratio;
        println!("| {name} | {:.2} | {ratio:.2} |", t[i].median_ms);
    }
}
