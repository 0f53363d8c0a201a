//! One run of the instruction-tuning comparison on the decoder: adapt,
//! train through burn-train's `Learner` on the answers, score by likelihood
//! and by generation, save the adapter.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{Context, Result};
use burn::data::dataset::InMemDataset;
use burn::module::{AutodiffModule, Module};
use burn::tensor::backend::AutodiffBackend;
use burn_rlora::method::Method;
use burn_rlora::multitask::{MultiTaskDataset, SamplingStrategy};
use burn_rlora::{AdaptConfig, HeadSimilarity, RLoraConfig, TargetModules};
use serde::Serialize;

use burn_rlora_llm::{
    save_decoder_adapter, AnswerSequence, CausalLm, ChatTemplate, ChatTemplateChoice,
    DecoderConfig, Llm, LoadOptions,
};

use super::evaluate::{evaluate, EvalTask, Sample, Scores};
use super::tasks::{InstructionEncoder, InstructionTask, TaskError};
use super::train::{short_layer_name, AnswerCollate, MultiTaskLm};
use burn_rlora_examples::harness::compare::{
    fit, method_config_over, training_part, ComparisonTask, Fitted, RunRecord, RunResult, RunSpec,
    TrainSettings,
};
use burn_rlora_examples::harness::trace::defined_mean;

/// The projections the paper adapts: the feed-forward block of every layer.
pub const PAPER_TARGETS: [&str; 3] = ["gate_proj", "up_proj", "down_proj"];

/// What one run of the comparison trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmolLmMethod {
    /// The pretrained model, untrained: zero-shot with the same prompts.
    Base,
    /// LoRA at the multi-head methods' rank per head (`--rank`).
    LoraSameRank,
    /// An adapter method; `lora` is LoRA at the rank matching the
    /// multi-head adapters' parameter count.
    Adapter(Method),
}

impl SmolLmMethod {
    /// The name used on command lines and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Base => "base",
            Self::LoraSameRank => "lora-r",
            Self::Adapter(m) => m.name(),
        }
    }
}

impl fmt::Display for SmolLmMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A method name that [`SmolLmMethod`] does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnknownSmolLmMethod(String);

impl FromStr for SmolLmMethod {
    type Err = UnknownSmolLmMethod;

    /// `base`, `lora-r`, or any [`Method`] name.
    fn from_str(s: &str) -> Result<Self, UnknownSmolLmMethod> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "base" | "zero-shot" => Ok(Self::Base),
            "lora-r" => Ok(Self::LoraSameRank),
            key => key.parse::<Method>().map(Self::Adapter).map_err(|_| {
                UnknownSmolLmMethod(format!(
                    "unknown method {s:?}; expected base, lora-r, lora, hydralora, \
                     hydralora-mt, hydralora-init, rlora or rlora-norouter"
                ))
            }),
        }
    }
}

/// The shapes `(d_in, d_out)` of the layers `targets` (PEFT's projection
/// names) adapt in a decoder of shape `lm`; unknown names adapt nothing.
pub fn target_shapes<S: AsRef<str>>(lm: &DecoderConfig, targets: &[S]) -> Vec<(usize, usize)> {
    let (d, ff) = (lm.hidden_size, lm.intermediate_size);
    let (q, kv) = (
        lm.num_attention_heads * lm.head_dim(),
        lm.num_key_value_heads * lm.head_dim(),
    );
    let shape = |name: &str| match name {
        "q_proj" => Some((d, q)),
        "k_proj" | "v_proj" => Some((d, kv)),
        "o_proj" => Some((q, d)),
        "gate_proj" | "up_proj" => Some((d, ff)),
        "down_proj" => Some((ff, d)),
        _ => None,
    };
    (0..lm.num_hidden_layers)
        .flat_map(|_| targets.iter().filter_map(|t| shape(t.as_ref())))
        .collect()
}

/// The rank and adapter config of `method` on the layers `targets` adapts
/// (none for the base model); `lora` gets the rank that matches the
/// multi-head methods' parameter count over those layers.
pub fn smollm_adapter<S: AsRef<str>>(
    method: SmolLmMethod,
    settings: &TrainSettings,
    lm: &DecoderConfig,
    targets: &[S],
) -> Option<(usize, RLoraConfig)> {
    match method {
        SmolLmMethod::Base => None,
        SmolLmMethod::LoraSameRank => Some((
            settings.rank,
            RLoraConfig::lora(settings.rank, settings.alpha)
                .with_rank_stabilized(true)
                .with_dropout(settings.dropout),
        )),
        SmolLmMethod::Adapter(m) => {
            Some(method_config_over(m, settings, &target_shapes(lm, targets)))
        }
    }
}

/// A task encoded for training and evaluation.
#[derive(Debug, Clone)]
pub struct PreparedTask {
    /// The task's name.
    pub name: String,
    /// Training sequences with their labels (0 for free text).
    pub train: Vec<(AnswerSequence, usize)>,
    /// Test sequences as trained on (only their count is used).
    pub test: Vec<(AnswerSequence, usize)>,
    /// Validation sequences; `None` to validate on the last 10% of `train`
    /// (then trained on the rest).
    pub valid: Option<Vec<(AnswerSequence, usize)>>,
    /// Test examples as scored.
    pub eval: EvalTask,
    /// Tokens in the training sequences.
    pub train_tokens: usize,
}

impl PreparedTask {
    /// Mean tokens per training sequence (0 without any).
    pub fn mean_tokens(&self) -> usize {
        self.train_tokens / self.train.len().max(1)
    }
}

impl ComparisonTask for PreparedTask {
    type Input = AnswerSequence;

    fn name(&self) -> &str {
        &self.name
    }

    fn num_classes(&self) -> usize {
        self.eval.labels.as_ref().map_or(1, Vec::len)
    }

    fn train(&self) -> &[(AnswerSequence, usize)] {
        &self.train
    }

    fn test(&self) -> &[(AnswerSequence, usize)] {
        &self.test
    }
}

/// `tasks` encoded with `encoder`, sequences of at most `max_len` tokens;
/// free-text answers are generated with `answer_room` tokens at most.
///
/// # Errors
///
/// As [`InstructionEncoder::encode_example`].
pub fn prepare_tasks(
    tasks: &[InstructionTask],
    encoder: &InstructionEncoder<'_>,
    max_len: usize,
    answer_room: usize,
) -> Result<Vec<PreparedTask>, TaskError> {
    let sequences = |examples, t| -> Result<Vec<(AnswerSequence, usize)>, TaskError> {
        Ok(encoder
            .encode_all(examples, t, max_len)?
            .into_iter()
            .map(|e| {
                let label = e.label.unwrap_or(0);
                let s = AnswerSequence::new(e.ids, e.answer_start, t);
                (s, label)
            })
            .collect())
    };
    tasks
        .iter()
        .enumerate()
        .map(|(t, task)| {
            let train = sequences(&task.train, t)?;
            let train_tokens = train.iter().map(|(s, _)| s.ids.len()).sum();
            Ok(PreparedTask {
                name: task.name.clone(),
                valid: None,
                test: sequences(&task.test, t)?,
                eval: EvalTask::of(task, encoder, max_len, answer_room)?,
                train,
                train_tokens,
            })
        })
        .collect()
}

/// Where a run finds its model and how it scores.
#[derive(Debug, Clone)]
pub struct SmolLmSource {
    /// The GGUF file.
    pub model: PathBuf,
    /// Tokens generated at most for a free-text answer.
    pub max_new_tokens: usize,
    /// Generations kept per task for the report.
    pub samples: usize,
    /// Compute SiLU with the host kernels
    /// ([`CausalLm::with_host_ops`](burn_rlora_llm::CausalLm::with_host_ops)).
    pub host_kernels: bool,
    /// The chat template to use instead of the file's (see
    /// [`choose_template`](super::template::choose_template)); `None` for the file's.
    pub chat_template: Option<ChatTemplate>,
    /// The projections adapted, by PEFT's names ([`PAPER_TARGETS`] in the
    /// experiment).
    pub targets: Vec<String>,
    /// Examples per training epoch; `None` for all of them once (see
    /// [`MultiTaskDatasetBuilder::epoch_size`](burn_rlora::multitask::MultiTaskDatasetBuilder::epoch_size)).
    pub epoch_size: Option<usize>,
}

/// What a run writes besides `result.json`: its scores by column, sample
/// generations and throughput.
#[derive(Debug, Clone, Serialize)]
pub struct RunExtras {
    /// The method.
    pub method: String,
    /// The seed.
    pub seed: u64,
    /// The scores.
    pub scores: Scores,
    /// Training tokens per second of the Learner's wall time (validation
    /// and checkpoints included) over the epochs the last invocation
    /// trained (a resumed run's later ones); `None` for the base model and
    /// where that invocation trained no epoch.
    pub train_tokens_per_second: Option<f64>,
}

/// Train `method` as `run` says on `tasks`, score it, save its adapter to
/// `<run.dir>/adapter/` (PEFT's names) and its extras to
/// `<run.dir>/extras.json`.
///
/// # Errors
///
/// Loading the model, adapting, training ([`RunStoppedEarly`](burn_rlora_examples::harness::compare::RunStoppedEarly)),
/// scoring, or writing the files.
pub fn run_smollm<B: AutodiffBackend>(
    tasks: &[PreparedTask],
    source: &SmolLmSource,
    method: SmolLmMethod,
    run: RunSpec<'_, B>,
) -> Result<RunResult> {
    let (start, device) = run.begin();
    let settings = run.settings;
    let options = LoadOptions::default().with_chat_template(match &source.chat_template {
        Some(template) => ChatTemplateChoice::Given(template.clone()),
        None => ChatTemplateChoice::FromFile,
    });
    let lm = Llm::<B>::load_with(&source.model, &options, &device)?;
    let adapter = smollm_adapter(method, settings, &lm.config, &source.targets);
    let base = lm.model.with_host_ops(source.host_kernels);
    let (rank, decoder) = adapted(base, adapter.as_ref(), &source.targets)?;
    let trace = match adapter {
        Some(_) => run.trace.clone(),
        None => Default::default(),
    };
    let model = MultiTaskLm::new(decoder).with_trace(trace.clone());
    let record = RunRecord::new(method.name(), run.seed, rank, &model, trace, start);
    let (dir, seed) = (run.dir.clone(), run.seed);
    let mut fitted = match adapter {
        None => untrained(model.valid()),
        Some(_) => {
            let (train, valid) = training_splits(tasks, settings, run.seed, source.epoch_size)?;
            let collate = AnswerCollate {
                pad: lm.tokenizer.eos(),
            };
            fit(model, collate, (train, valid), run)?
        }
    };
    if let Some((_, config)) = &adapter {
        save_decoder_adapter(
            &fitted.model.lm,
            dir.join("adapter"),
            config,
            &base_name(source),
        )
        .context("saving the trained adapter")?;
    }
    let eval: Vec<EvalTask> = tasks.iter().map(|t| t.eval.clone()).collect();
    let (max_new, samples) = (source.max_new_tokens, source.samples);
    let scores = evaluate(&fitted.model.lm, &lm.tokenizer, &eval, max_new, samples)?;
    fitted.task_accuracy = scores.columns.iter().map(|(_, v)| *v).collect();
    let train_tokens: usize = tasks
        .iter()
        .map(|t| training_part(t.train.len()) * t.mean_tokens())
        .sum();
    let epochs_trained = settings.epochs.saturating_sub(fitted.epochs_before);
    let train_tokens_per_second =
        (adapter.is_some() && epochs_trained > 0 && fitted.train_seconds > 0.0)
            .then(|| (train_tokens * epochs_trained) as f64 / fitted.train_seconds);
    let extras = RunExtras {
        method: method.name().to_string(),
        seed,
        train_tokens_per_second,
        scores: scores.clone(),
    };
    let json = serde_json::to_string_pretty(&extras)?;
    burn_rlora::write_atomically(dir.join("extras.json"), json.as_bytes())?;
    let (similarity, last) = similarities(&fitted.model.lm)?;
    let mut result = RunResult::new(record, fitted, similarity, last);
    result.mean_accuracy = scores.primary;
    result.train_tokens_per_second = train_tokens_per_second;
    Ok(result)
}

/// The name a saved adapter records as its base model: the model file's
/// name without its extension.
fn base_name(source: &SmolLmSource) -> String {
    source
        .model
        .file_stem()
        .map_or_else(|| "model".to_string(), |s| s.to_string_lossy().into_owned())
}

/// The training and validation datasets of `tasks`: each task's own
/// validation examples where it has them (all its training examples then
/// train), else the last 10% of its training examples; the training set
/// `epoch_size` examples long when given.
fn training_splits(
    tasks: &[PreparedTask],
    settings: &TrainSettings,
    seed: u64,
    epoch_size: Option<usize>,
) -> Result<(
    MultiTaskDataset<AnswerSequence>,
    MultiTaskDataset<AnswerSequence>,
)> {
    let part = |t: &PreparedTask| match t.valid {
        Some(_) => t.train.len(),
        None => training_part(t.train.len()),
    };
    let mut train = MultiTaskDataset::builder(settings.sampling, seed);
    let mut valid = MultiTaskDataset::builder(SamplingStrategy::Proportional, seed);
    if let Some(size) = epoch_size {
        train = train.epoch_size(size);
    }
    for task in tasks {
        let classes = task.num_classes();
        let held_out = match &task.valid {
            Some(v) => v.clone(),
            None => task.train[part(task)..].to_vec(),
        };
        train = train.task(
            &task.name,
            classes,
            InMemDataset::new(task.train[..part(task)].to_vec()),
        );
        valid = valid.task(&task.name, classes, InMemDataset::new(held_out));
    }
    Ok((
        train.build().context("building the training set")?,
        valid.build().context("building the validation set")?,
    ))
}

/// `decoder` with `adapter` on `targets` (frozen elsewhere), or entirely
/// frozen without one; and the adapter's rank (0 without).
fn adapted<B: AutodiffBackend>(
    decoder: CausalLm<B>,
    adapter: Option<&(usize, RLoraConfig)>,
    targets: &[String],
) -> Result<(usize, CausalLm<B>)> {
    Ok(match adapter {
        None => (0, decoder.no_grad()),
        Some((rank, config)) => {
            let targets = TargetModules::names(targets.iter().cloned());
            (
                *rank,
                AdaptConfig::new(config.clone(), targets).adapt(decoder)?,
            )
        }
    })
}

/// The head similarity of every adapted layer of `lm` (none when nothing
/// is adapted), by short layer name, with each layer's mean.
#[allow(clippy::type_complexity)]
fn similarities<B: burn::tensor::backend::Backend>(
    lm: &CausalLm<B>,
) -> Result<(Vec<(String, HeadSimilarity)>, Vec<(String, Option<f64>)>)> {
    if burn_rlora::adapt::adapted_paths(lm).is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let similarity: Vec<(String, HeadSimilarity)> = burn_rlora::head_similarities(lm)?
        .into_iter()
        .map(|(name, s)| (short_layer_name(&name), s))
        .collect();
    let last = similarity
        .iter()
        .map(|(name, s)| (name.clone(), defined_mean(s)))
        .collect();
    Ok((similarity, last))
}

/// The base model as a run that trained for no step.
fn untrained<M>(model: M) -> Fitted<M> {
    Fitted {
        model,
        task_accuracy: Vec::new(),
        train_loss: Vec::new(),
        valid_loss: Vec::new(),
        train_seconds: 0.0,
        steps_before: 0,
        epochs_before: 0,
        total_steps: 0,
    }
}

/// The samples of every run, as Markdown: per task, the reference and each
/// method's generation.
pub fn samples_markdown(runs: &[(String, Vec<Sample>)]) -> String {
    let mut out = String::from("# Sample generations (greedy, first seed)\n");
    let Some((_, first)) = runs.first() else {
        return out;
    };
    for (i, sample) in first.iter().enumerate() {
        out.push_str(&format!(
            "\n## {} #{}\n\n> {}\n\nreference: `{}`\n\n",
            sample.task,
            i,
            sample.prompt.replace('\n', " "),
            sample.reference.replace('`', "'")
        ));
        for (method, samples) in runs {
            if let Some(s) = samples.get(i) {
                out.push_str(&format!(
                    "- {method}: `{}`\n",
                    s.generated.replace('`', "'").replace('\n', " ")
                ));
            }
        }
    }
    out
}
