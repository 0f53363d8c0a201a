//! `rlora-adapter`: inspect, convert and merge R-LoRA adapter checkpoints.
//!
//! ```sh
//! rlora-adapter inspect DIR
//! rlora-adapter convert --input REFERENCE_DIR --output DIR [--dtype f32]
//! rlora-adapter merge DIR --base model.safetensors --output merged.safetensors [--strip-prefix base_model.model.]
//! ```
//!
//! Errors are printed to stderr with a non-zero exit status (1 for a failed
//! command, 2 for bad arguments).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use burn::tensor::DType;
use burn_rlora::checkpoint::{
    merge_safetensors, read_reference, write_atomically, AdapterFile, CheckpointError,
    REFERENCE_TENSORS_FILE, TENSORS_FILE,
};
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

/// Read our format or the reference's, whichever the directory holds.
fn read_any(dir: &Path, strict: bool) -> Result<AdapterFile, CheckpointError> {
    let reference = dir.join(REFERENCE_TENSORS_FILE).exists() && !dir.join(TENSORS_FILE).exists();
    if reference || !dir.is_dir() {
        return read_reference(dir, strict);
    }
    let file = AdapterFile::read(dir, strict)?;
    Ok(file)
}

fn inspect(dir: &Path, strict: bool) -> Result<(), CheckpointError> {
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
        let sim = m.head_similarity();
        match sim.mean_pairwise {
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

fn run(cli: Cli) -> Result<(), CheckpointError> {
    match cli.command {
        Command::Inspect { dir, lenient } => inspect(&dir, !lenient),
        Command::Convert {
            input,
            output,
            dtype,
            lenient,
        } => {
            let file = read_reference(&input, !lenient)?;
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
            let adapter = read_any(&dir, true)?;
            let bytes = std::fs::read(&base).map_err(|e| CheckpointError::Io {
                path: base.clone(),
                source: e,
            })?;
            let merged = merge_safetensors(&adapter, &bytes, &strip_prefix)?;
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
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
