//! `rlora-llm`: tools for decoder adapters.
//!
//! ```sh
//! rlora-llm export-gguf --adapter DIR --base MODEL.gguf --out FILE.gguf [--type f32|f16|q8_0] [--name NAME]
//! ```
//!
//! `export-gguf` writes an adapter saved by this crate (or the reference's
//! `adapter_model.bin`) as the GGUF LoRA adapter llama.cpp loads on top of
//! `MODEL.gguf` (`llama-server -m MODEL.gguf --lora FILE.gguf`, ollama's
//! `ADAPTER`): see `burn_rlora_llm::export` for what exports exactly and
//! what is refused. Errors go to stderr with exit status 1 (2 for bad
//! options); paths that are not what they must be (a FIFO, a directory
//! where a file belongs) are refused before anything is read from them.

use std::path::PathBuf;
use std::process::ExitCode;

use burn_rlora_gguf::GgmlType;
use burn_rlora_llm::export::{export_lora_gguf, GgufExportOptions};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "rlora-llm",
    version,
    about = "Tools for decoder adapters of burn-rlora-llm"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write an adapter as a llama.cpp LoRA adapter (GGUF) for its base model's GGUF file.
    ExportGguf {
        /// The adapter directory (adapter_config.json and adapter_model.safetensors).
        #[arg(long)]
        adapter: PathBuf,
        /// The base model's GGUF file, the one the adapter was trained on.
        #[arg(long)]
        base: PathBuf,
        /// Where to write the GGUF adapter (written atomically).
        #[arg(long)]
        out: PathBuf,
        /// The type of the lora_a and lora_b tensors (q8_0: tensors whose rows are not
        /// whole 32-value blocks are written as f16, as llama.cpp's converter does).
        #[arg(long = "type", value_enum, default_value_t = TensorType::F32)]
        tensor_type: TensorType,
        /// general.name (default: the adapter directory's name).
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum TensorType {
    F32,
    F16,
    #[value(name = "q8_0")]
    Q8_0,
}

impl From<TensorType> for GgmlType {
    fn from(t: TensorType) -> Self {
        match t {
            TensorType::F32 => GgmlType::F32,
            TensorType::F16 => GgmlType::F16,
            TensorType::Q8_0 => GgmlType::Q8_0,
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::ExportGguf {
            adapter,
            base,
            out,
            tensor_type,
            name,
        } => {
            let mut options = GgufExportOptions::new().with_tensor_type(tensor_type.into());
            options.name = name;
            let report = export_lora_gguf(&adapter, &base, &out, &options)?;
            let folded = report.modules.iter().filter(|m| m.compensation).count();
            let permuted = report.modules.iter().filter(|m| m.permuted).count();
            let mut types: Vec<String> = report
                .modules
                .iter()
                .flat_map(|m| [m.lora_a_type.to_string(), m.lora_b_type.to_string()])
                .collect();
            types.sort();
            types.dedup();
            println!(
                "wrote {} ({} architecture, {} modules, rank {}, adapter.lora.alpha {} \
                 (scaling {}), tensors {}; compensation folded into {} modules, rows \
                 reordered for llama.cpp in {})",
                out.display(),
                report.architecture,
                report.modules.len(),
                report.rank,
                report.alpha,
                report.scaling,
                types.join(", "),
                folded,
                permuted
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
