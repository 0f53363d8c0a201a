//! The command-line options the comparison binaries share, as one
//! `clap::Args` struct that each binary flattens into its own parser and
//! gives its own defaults ([`CompareDefaults`]), and the binaries' shared
//! `main` ([`exit_on_error`]).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use burn_rlora::multitask::SamplingStrategy;
use clap::builder::IntoResettable;
use clap::{CommandFactory, FromArgMatches};

use crate::harness::compare::{
    parse_dropout, parse_non_negative, parse_positive, parse_sampling, TrainSettings,
};

/// Options of a comparison: training budget, seeds, adapter shape, backend,
/// output and resuming. Options whose default differs between binaries have
/// none here; [`CompareArgs::with_defaults`] sets them.
#[derive(clap::Args, Debug, Clone)]
pub struct CompareArgs {
    /// Training epochs per run (1 to 10000).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub epochs: u64,
    /// First training seed; runs use seed, seed+1, ... for every method
    /// (paired: seed k is the same data, draws and order for all).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Number of seeds per method (mean ± std and paired intervals are
    /// reported; 1 to 1000).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub seeds: u64,
    /// Output directory for the report.
    #[arg(long)]
    pub out: PathBuf,
    /// Backend: flex, ndarray, wgpu or cuda (each only when compiled in with its feature).
    #[arg(long)]
    pub backend: Option<String>,
    /// Devices for data-parallel training (Learner multi-device strategy). On a
    /// CPU backend this runs that many workers on copies of the one CPU device.
    /// (1 to 64.)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub devices: u64,
    /// Rank of each head (LoRA's rank is matched to the multi-head parameter count).
    #[arg(long)]
    pub rank: u64,
    /// Heads per adapted layer (1 to 64).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub heads: u64,
    /// Scaling numerator (alpha / sqrt(r) for every method; above 0).
    #[arg(long, value_parser = parse_positive)]
    pub alpha: f64,
    /// Adapter dropout, in [0, 1).
    #[arg(long, default_value_t = 0.1, value_parser = parse_dropout)]
    pub dropout: f64,
    /// Peak learning rate (adapters and heads; 3% warm-up, cosine decay; above 0).
    #[arg(long, value_parser = parse_positive)]
    pub lr: f64,
    /// Batch size (1 to 65536).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub batch_size: u64,
    /// Router load-balance loss coefficient (0 = off).
    #[arg(long, default_value_t = 0.0, value_parser = parse_non_negative)]
    pub balance: f64,
    /// Task mixing: proportional, uniform, or a temperature from 0.1 to 100 such as 2.
    #[arg(long, default_value = "2", value_parser = parse_sampling)]
    pub sampling: SamplingStrategy,
    /// Record every adapted layer's head similarity every this many training
    /// steps (0 = off; one device only), for `head_similarity_trace.svg`.
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub trace_every: u64,
    /// Print one line per epoch instead of the terminal dashboard.
    #[arg(long)]
    pub plain: bool,
    /// Continue the comparison in --out: finished runs are read back, an
    /// unfinished run resumes after its last complete epoch (same settings only).
    #[arg(long)]
    pub resume: bool,
}

/// A binary's defaults for the [`CompareArgs`] that have none of their own.
#[derive(Debug, Clone, Copy)]
pub struct CompareDefaults {
    /// `--epochs`.
    pub epochs: &'static str,
    /// `--seeds`.
    pub seeds: &'static str,
    /// `--out`.
    pub out: &'static str,
    /// `--rank`.
    pub rank: &'static str,
    /// The largest `--rank` (the narrowest adapted layer's width).
    pub max_rank: u64,
    /// `--alpha`.
    pub alpha: &'static str,
    /// `--lr`.
    pub lr: &'static str,
    /// `--batch-size`.
    pub batch_size: &'static str,
    /// `--trace-every`.
    pub trace_every: &'static str,
}

impl CompareArgs {
    /// `command` (a parser that flattens [`CompareArgs`]) with `defaults`
    /// for the options that have none here, and `--rank` limited to
    /// `1..=defaults.max_rank`.
    ///
    /// ```
    /// use burn_rlora_examples::options::{CompareArgs, CompareDefaults};
    /// use clap::{CommandFactory, FromArgMatches, Parser};
    ///
    /// #[derive(Parser)]
    /// struct Cli {
    ///     #[command(flatten)]
    ///     common: CompareArgs,
    /// }
    /// let defaults = CompareDefaults {
    ///     epochs: "2", out: "report", rank: "4", max_rank: 16, alpha: "8",
    ///     seeds: "3",
    ///     lr: "1e-3", batch_size: "8", trace_every: "0",
    /// };
    /// let cmd = CompareArgs::with_defaults(Cli::command(), &defaults);
    /// let matches = cmd.clone().try_get_matches_from(["cli", "--lr", "0.01"]).unwrap();
    /// let cli = Cli::from_arg_matches(&matches).unwrap();
    /// assert_eq!((cli.common.epochs, cli.common.lr, cli.common.seeds), (2, 0.01, 3));
    /// assert!(cmd.try_get_matches_from(["cli", "--rank", "17"]).is_err());
    /// ```
    pub fn with_defaults(command: clap::Command, defaults: &CompareDefaults) -> clap::Command {
        let set = |command: clap::Command, id: &'static str, value: &'static str| {
            command.mut_arg(id, |a| a.required(false).default_value(value))
        };
        let command = set(command, "epochs", defaults.epochs);
        let command = set(command, "seeds", defaults.seeds);
        let command = set(command, "out", defaults.out);
        let command = set(command, "alpha", defaults.alpha);
        let command = set(command, "lr", defaults.lr);
        let command = set(command, "batch_size", defaults.batch_size);
        let command = set(command, "trace_every", defaults.trace_every);
        let max_rank = defaults.max_rank;
        set(command, "rank", defaults.rank).mut_arg("rank", |a| {
            a.value_parser(clap::value_parser!(u64).range(1..=max_rank))
                .help(
                    format!(
                        "Rank of each head (1 to {max_rank}; LoRA's rank is matched to the \
                         multi-head parameter count)"
                    )
                    .into_resettable(),
                )
        })
    }

    /// The training settings these options give.
    pub fn settings(&self) -> TrainSettings {
        TrainSettings {
            rank: self.rank as usize,
            heads: self.heads as usize,
            alpha: self.alpha,
            dropout: self.dropout,
            epochs: self.epochs as usize,
            batch_size: self.batch_size as usize,
            lr: self.lr,
            balance: self.balance,
            sampling: self.sampling,
            devices: self.devices as usize,
            trace_every: self.trace_every as usize,
            plain: self.plain,
            resume: self.resume,
            steps: Default::default(),
        }
    }

    /// The training part of a report's header, the same words for every
    /// comparison: backend and devices, seeds, epochs, batch, learning rate,
    /// adapter shape, dropout and task sampling.
    pub fn training_line(&self, backend: impl fmt::Display) -> String {
        format!(
            "backend {backend}, {} device(s); {} seed(s) from {}; {} epoch(s); batch {}; lr {} \
             (3% warm-up, cosine); rank {} x {} heads, alpha {} (alpha/sqrt(r) for every method); \
             dropout {}; sampling {:?}",
            self.devices,
            self.seeds,
            self.seed,
            self.epochs,
            self.batch_size,
            self.lr,
            self.rank,
            self.heads,
            self.alpha,
            self.dropout,
            self.sampling,
        )
    }
}

impl CompareDefaults {
    /// The parser of `A` (a `clap::Parser` that flattens [`CompareArgs`])
    /// with these defaults ([`CompareArgs::with_defaults`]).
    pub fn command<A: CommandFactory>(&self) -> clap::Command {
        CompareArgs::with_defaults(A::command(), self)
    }

    /// `A` from the command line, with these defaults. A bad command line
    /// ends the process as clap does: usage error, exit status 2.
    pub fn parse<A: CommandFactory + FromArgMatches>(&self) -> A {
        A::from_arg_matches(&self.command::<A>().get_matches()).unwrap_or_else(|e| e.exit())
    }

    /// A bad argument found after parsing: `message` as clap's usage error
    /// of `A`'s parser, exit status 2.
    pub fn usage_error<A: CommandFactory>(&self, message: impl fmt::Display) -> ! {
        self.command::<A>()
            .error(clap::error::ErrorKind::ValueValidation, message)
            .exit()
    }
}

/// The methods named by `--methods`, parsed as `M`.
///
/// # Errors
///
/// A name that does not parse, or no name at all.
pub fn parse_methods<M>(names: &[String]) -> anyhow::Result<Vec<M>>
where
    M: FromStr,
    M::Err: std::error::Error + Send + Sync + 'static,
{
    let methods = names
        .iter()
        .map(|m| m.parse::<M>())
        .collect::<Result<Vec<_>, _>>()?;
    if methods.is_empty() {
        anyhow::bail!("--methods is empty");
    }
    Ok(methods)
}

/// A binary's `main`: `run`, and on an error print it with its causes
/// (`error: ...` on stderr) and exit with status 1.
pub fn exit_on_error(run: impl FnOnce() -> anyhow::Result<()>) {
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
