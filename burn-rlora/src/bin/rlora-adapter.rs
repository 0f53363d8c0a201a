//! `rlora-adapter`: inspect, convert and merge R-LoRA adapter checkpoints.
//!
//! ```sh
//! rlora-adapter inspect DIR
//! rlora-adapter convert --input REFERENCE_DIR --output DIR [--dtype f32]
//! rlora-adapter merge DIR --base model.safetensors --output merged.safetensors [--strip-prefix base_model.model.]
//! ```
//!
//! A directory holding both `adapter_model.safetensors` and
//! `adapter_model.bin` is read from `adapter_model.safetensors` by every
//! command (PEFT's precedence; `burn_rlora::checkpoint::tensor_file_in`).
//!
//! Errors are printed to stderr with a non-zero exit status (1 for a failed
//! command, 2 for bad arguments). A command whose output would overwrite one
//! of its inputs (`merge --output` equal to `--base` or to a file of the
//! adapter, `convert --output` equal to the input) fails before reading
//! anything, as does a merge in which two modules map to the same base weight.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use burn::tensor::DType;
use burn_rlora::checkpoint::reference::tensor_file_in;
use burn_rlora::checkpoint::{
    merge_safetensors, read_reference, read_regular_file, AdapterFile, CheckpointError,
    LoadOptions, CONFIG_FILE,
};
use burn_rlora::write_atomically;
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "rlora-adapter",
    version,
    about = "Inspect, convert and merge R-LoRA adapter checkpoints"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the config, each module's shapes, trainable parameter counts and head cosine similarity.
    Inspect {
        /// An adapter directory (ours, or the reference's with adapter_model.bin).
        dir: PathBuf,
        /// Skip tensors that are no adapter tensor instead of failing.
        #[arg(long)]
        lenient: bool,
    },
    /// Convert a reference adapter (adapter_model.bin, or the same layout as safetensors) to this crate's format.
    Convert {
        /// The reference adapter directory (or its tensor file, with adapter_config.json next to it).
        #[arg(long)]
        input: PathBuf,
        /// The output adapter directory.
        #[arg(long)]
        output: PathBuf,
        /// The dtype to store the tensors in.
        #[arg(long, value_enum, default_value_t = Precision::F32)]
        dtype: Precision,
        /// Skip tensors that are no adapter tensor instead of failing.
        #[arg(long)]
        lenient: bool,
    },
    /// Merge an adapter into a base model's safetensors (PyTorch names and layout), where exact.
    Merge {
        /// The adapter directory.
        dir: PathBuf,
        /// The base model's safetensors file.
        #[arg(long)]
        base: PathBuf,
        /// Where to write the merged model.
        #[arg(long)]
        output: PathBuf,
        /// Removed from the adapter's module names to find `<module>.weight` in the base
        /// (PEFT files use `base_model.model.`).
        #[arg(long, default_value = "")]
        strip_prefix: String,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Precision {
    F32,
    F64,
    F16,
    Bf16,
}

impl From<Precision> for DType {
    fn from(p: Precision) -> Self {
        match p {
            Precision::F32 => DType::F32,
            Precision::F64 => DType::F64,
            Precision::F16 => DType::F16,
            Precision::Bf16 => DType::BF16,
        }
    }
}

/// Heads beyond which `inspect` summarises the head similarity instead of
/// computing it over all pairs (its cost is quadratic in the heads).
const MAX_SIMILARITY_HEADS: usize = 64;

/// Read our format or the reference's, whichever the directory holds
/// (`adapter_model.safetensors` first, see `tensor_file_in`).
fn read_any(dir: &Path, strict: bool) -> anyhow::Result<AdapterFile> {
    read_reference(dir, &LoadOptions::new().with_strict(strict))
        .with_context(|| format!("reading the adapter {}", dir.display()))
}

/// The absolute, symlink-free form of `path`, also for a path that does not exist yet.
fn canonical(path: &Path) -> Option<PathBuf> {
    if let Ok(p) = path.canonicalize() {
        return Some(p);
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Some(canonical(parent)?.join(path.file_name()?))
}

fn same_path(a: &Path, b: &Path) -> bool {
    matches!((canonical(a), canonical(b)), (Some(x), Some(y)) if x == y)
}

fn refuse(action: &str, reason: String) -> anyhow::Error {
    anyhow::Error::new(CheckpointError::WouldLoseData {
        action: action.to_string(),
        reason,
    })
}

/// The files an adapter path (directory or tensor file) consists of.
fn adapter_files(input: &Path) -> Vec<PathBuf> {
    if input.is_dir() {
        vec![
            input.join(CONFIG_FILE),
            tensor_file_in(input),
            input.to_path_buf(),
        ]
    } else {
        let dir = input.parent().unwrap_or(Path::new("."));
        vec![
            dir.join(CONFIG_FILE),
            input.to_path_buf(),
            dir.to_path_buf(),
        ]
    }
}

fn inspect(dir: &Path, strict: bool) -> anyhow::Result<()> {
    let file = read_any(dir, strict)?;
    let config = &file.config;
    println!(
        "config ({}):",
        if config.is_reference() {
            "reference adapter"
        } else {
            "burn-rlora adapter"
        }
    );
    println!("{}", config.to_json());
    let layer = config.rlora_config();
    println!(
        "layers: rank {}, {} heads, scaling {:.4}, router {:?}, compensation pair: {}",
        layer.rank,
        layer.num_heads,
        layer.scaling(),
        layer.router,
        file.modules.values().any(|m| m.compensation.is_some())
    );
    let mut total = 0usize;
    for (name, m) in &file.modules {
        let (d_in, d_out) = m.dims();
        let trainable = m.num_trainable();
        total += trainable;
        println!("\n{name}: {d_in} -> {d_out}, trainable {trainable}");
        println!("  lora_A        {:?}", m.a.shape);
        println!(
            "  lora_B0..B{}   {} x {:?}",
            m.heads.len() - 1,
            m.heads.len(),
            m.heads[0].shape
        );
        if let Some(r) = &m.route {
            println!("  lora_route    {:?}", r.shape);
        }
        if let Some((a0, b0)) = &m.compensation {
            println!("  rlora_A0/B0   {:?} / {:?} (frozen)", a0.shape, b0.shape);
        }
        let n = m.heads.len();
        let shown = n.min(MAX_SIMILARITY_HEADS);
        let flat: Vec<f64> = m.heads[..shown]
            .iter()
            .flat_map(|h| h.data.iter().copied())
            .collect();
        let sim = burn_rlora::HeadSimilarity::of_rows(&flat, shown);
        match sim.mean_pairwise {
            Some(mean) if shown < n => println!(
                "  head cosine similarity: mean pairwise {mean:.4} over the first {shown} of {n} \
                 heads (not computed for more than {MAX_SIMILARITY_HEADS})"
            ),
            Some(mean) => println!("  head cosine similarity: mean pairwise {mean:.4}"),
            None => println!("  head cosine similarity: single head"),
        }
    }
    println!(
        "\n{} modules, {total} trainable parameters",
        file.modules.len()
    );
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Inspect { dir, lenient } => inspect(&dir, !lenient),
        Command::Convert {
            input,
            output,
            dtype,
            lenient,
        } => {
            if let Some(hit) = adapter_files(&input).iter().find(|f| same_path(f, &output)) {
                return Err(refuse(
                    "convert",
                    format!(
                        "--output {} is the input ({}): writing it would replace the input \
                         adapter's {CONFIG_FILE} and tensor file; choose another directory",
                        output.display(),
                        hit.display()
                    ),
                ));
            }
            let file = read_any(&input, !lenient)?;
            let written = file.save(&output, dtype.into())?;
            println!(
                "wrote {} ({} modules, rank {}, {} heads)",
                output.display(),
                written.target_module_paths.len(),
                written.r,
                written.lora_nums
            );
            Ok(())
        }
        Command::Merge {
            dir,
            base,
            output,
            strip_prefix,
        } => {
            if same_path(&output, &base) {
                return Err(refuse(
                    "merge",
                    format!(
                        "--output {} is the base model {}: it would be overwritten by the \
                         merged model; write the merged model to another file",
                        output.display(),
                        base.display()
                    ),
                ));
            }
            if let Some(hit) = adapter_files(&dir).iter().find(|f| same_path(f, &output)) {
                return Err(refuse(
                    "merge",
                    format!(
                        "--output {} is a file of the adapter ({}): it would be overwritten",
                        output.display(),
                        hit.display()
                    ),
                ));
            }
            let adapter = read_any(&dir, true)?;
            // The base model is the user's own file, of any size: no cap.
            let bytes = read_regular_file(&base, u64::MAX)
                .with_context(|| format!("reading the base model {}", base.display()))?;
            let merged = merge_safetensors(&adapter, &bytes, &strip_prefix)
                .with_context(|| format!("merging into the base model {}", base.display()))?;
            write_atomically(&output, &merged)?;
            println!(
                "wrote {} ({} modules merged)",
                output.display(),
                adapter.modules.len()
            );
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
