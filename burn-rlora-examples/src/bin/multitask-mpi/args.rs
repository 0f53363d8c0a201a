//! The command line.

use std::path::PathBuf;

use clap::Parser;

/// Train one adapter on the embedded multi-task data across MPI ranks.
#[derive(Parser, Debug, Clone)]
#[command(version, about)]
pub(crate) struct Args {
    /// Method: lora, hydralora, hydralora-mt, hydralora-init, rlora, rlora-norouter.
    #[arg(long, default_value = "rlora")]
    pub(crate) method: String,
    /// Training epochs.
    #[arg(long, default_value_t = 4)]
    pub(crate) epochs: usize,
    /// Training seed: weights (rank 0's), shards and shuffling.
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Seed of the data generator.
    #[arg(long, default_value_t = 2025)]
    pub(crate) data_seed: u64,
    /// Multiply the training-set sizes (e.g. 0.1 for a quick run).
    #[arg(long, default_value_t = 1.0)]
    pub(crate) data_scale: f64,
    /// Batch size of each rank (the global batch is this times the ranks).
    #[arg(long, default_value_t = 32)]
    pub(crate) batch_size: usize,
    /// Peak learning rate (3% linear warm-up, cosine decay).
    #[arg(long, default_value_t = 3e-3)]
    pub(crate) lr: f64,
    /// Rank of each head.
    #[arg(long, default_value_t = 4)]
    pub(crate) rank: usize,
    /// Heads per adapted layer.
    #[arg(long, default_value_t = 4)]
    pub(crate) heads: usize,
    /// Scaling numerator (alpha / sqrt(r)).
    #[arg(long, default_value_t = 8.0)]
    pub(crate) alpha: f64,
    /// Adapter dropout (each rank draws its own masks).
    #[arg(long, default_value_t = 0.1)]
    pub(crate) dropout: f64,
    /// Router load-balance loss coefficient (0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub(crate) balance: f64,
    /// Task mixing: proportional, uniform, or a temperature such as 2.
    #[arg(long, default_value = "2")]
    pub(crate) sampling: String,
    /// Output directory (written by rank 0).
    #[arg(long, default_value = "report-mpi")]
    pub(crate) out: PathBuf,
    /// Backend: flex or ndarray (or wgpu, cuda when compiled in).
    #[arg(long)]
    pub(crate) backend: Option<String>,
    /// Run one process without MPI on the combined batches of this many ranks.
    #[arg(long)]
    pub(crate) simulate_ranks: Option<usize>,
    /// Every rank writes its trainable weights before training to
    /// `<out>/params-init-rank<r>.f32` and after it to `<out>/params-rank<r>.f32`
    /// (little-endian f32, module order), for comparing runs bit by bit.
    #[arg(long)]
    pub(crate) dump_params: bool,
    /// Testing the failure path: rank `--exit-rank` exits with status 3 after this many steps.
    #[arg(long, hide = true)]
    pub(crate) exit_after_steps: Option<usize>,
    /// The rank that `--exit-after-steps` stops.
    #[arg(long, hide = true, default_value_t = 1)]
    pub(crate) exit_rank: usize,
}
