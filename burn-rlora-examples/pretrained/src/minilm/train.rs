//! Multi-task fine-tuning of the pretrained MiniLM encoder on the four text
//! tasks: data preparation (seeded stratified splits, subsampling,
//! tokenization once), the encoder as a [`MultiTaskBody`] (mean-pooled
//! features, router weights for the optional balance loss), the token
//! [`Collate`], and one training run of one method through burn-train's
//! `Learner` ([`run_minilm`]).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, Result};
use burn::module::Module;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use burn_rlora::method::Method;
use burn_rlora::multitask::{BodyOutput, Collate, MultiTaskBody, MultiTaskClassifier, TaskHeads};
use burn_rlora::HeadSimilarity;
use serde::Serialize;

use super::config::BertConfig;
use super::encoder::{mean_pool, BertInput, BertModel};
use super::error::MiniLmError;
use super::load::{MiniLmPaths, PretrainedMiniLm};
use super::targets::EncoderAdapterConfig;
use super::tokenize::MiniLmTokenizer;
use crate::datasets::{stratified_subsample, train_test_split, Task, TextExample};
use burn_rlora_examples::harness::compare::{
    fit_and_test, method_config_over, RunRecord, RunResult, RunSpec, Splits, TrainSettings,
};

/// The id of BERT's `[PAD]` token, used to pad batches (masked out anyway).
pub const PAD_ID: u32 = 0;

/// What [`run_minilm`] trains: the frozen encoder with heads only, or an adapter method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MiniLmMethod {
    /// Linear probe: the encoder stays frozen, only the task heads train.
    Probe,
    /// Adapters of one [`Method`] on the targeted linears, plus the task heads.
    Adapter(Method),
}

impl MiniLmMethod {
    /// The short name used on command lines and in reports (`probe`, `lora`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Probe => "probe",
            Self::Adapter(m) => m.name(),
        }
    }
}

impl fmt::Display for MiniLmMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for MiniLmMethod {
    type Err = MiniLmError;

    /// `probe` (or `linear-probe`), or any [`Method`] name.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let key = s.trim().to_ascii_lowercase().replace('_', "-");
        if key == "probe" || key == "linear-probe" {
            return Ok(Self::Probe);
        }
        key.parse::<Method>().map(Self::Adapter).map_err(|_| {
            MiniLmError::InvalidArgument(format!(
                "unknown method {s:?}; expected probe, lora, hydralora, hydralora-mt, \
                 hydralora-init, rlora or rlora-norouter"
            ))
        })
    }
}

/// How the task data is split and cut down.
#[derive(Debug, Clone, Serialize)]
pub struct SplitSettings {
    /// The share of each task held out for testing before subsampling (stratified).
    pub test_fraction: f64,
    /// Training examples per task at most (stratified subsample of the training split).
    pub train_per_task: usize,
    /// Test examples per task at most (stratified subsample of the test split).
    pub test_per_task: usize,
    /// Seed of the splits and subsamples: fixed across methods and training seeds.
    pub split_seed: u64,
}

/// One task's tokenized examples, split.
#[derive(Debug, Clone, Serialize)]
pub struct PreparedTask {
    /// The task's name.
    pub name: String,
    /// The class names.
    pub labels: Vec<String>,
    /// Training examples: token ids (unpadded) and label.
    #[serde(skip)]
    pub train: Vec<(Vec<u32>, usize)>,
    /// Test examples.
    #[serde(skip)]
    pub test: Vec<(Vec<u32>, usize)>,
    /// Records the reader skipped as corrupt.
    pub skipped: usize,
    /// Examples the reader kept, before splitting.
    pub total: usize,
}

/// Token ids of `texts`, truncated to the tokenizer's maximum length, unpadded.
///
/// # Errors
///
/// Any tokenizer error.
pub fn tokenize_all(
    tokenizer: &MiniLmTokenizer,
    texts: &[&str],
) -> Result<Vec<Vec<u32>>, MiniLmError> {
    let mut out = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(256) {
        let batch = tokenizer.encode_batch(chunk)?;
        for i in 0..batch.batch {
            let row = &batch.input_ids[i * batch.seq_len..(i + 1) * batch.seq_len];
            out.push(row[..batch.len_of(i)].iter().map(|&v| v as u32).collect());
        }
    }
    Ok(out)
}

/// Read the four tasks from `data_dir`, split each one (stratified, `split.split_seed`),
/// subsample, and tokenize (truncated to the tokenizer's maximum length).
///
/// # Errors
///
/// [`DataError::DataMissing`](crate::datasets::DataError::DataMissing) when the data has not been fetched, any
/// reader error (corrupt files, empty tasks), and tokenizer errors.
pub fn prepare_tasks(
    data_dir: &Path,
    tokenizer: &MiniLmTokenizer,
    split: &SplitSettings,
) -> Result<Vec<PreparedTask>, MiniLmError> {
    Task::ALL
        .iter()
        .map(|&task| {
            let data = task.load(data_dir)?;
            let (train, test) =
                train_test_split(&data.examples, split.test_fraction, split.split_seed)?;
            let train = stratified_subsample(&train, split.train_per_task, split.split_seed);
            let test = stratified_subsample(&test, split.test_per_task, split.split_seed + 1);
            if train.len() < 2 || test.is_empty() {
                return Err(MiniLmError::InvalidArgument(format!(
                    "task {}: {} training and {} test examples after splitting; need at least \
                     2 training examples (one validates) and 1 test example",
                    data.name,
                    train.len(),
                    test.len()
                )));
            }
            let encode = |xs: &[TextExample]| -> Result<Vec<(Vec<u32>, usize)>, MiniLmError> {
                let texts: Vec<&str> = xs.iter().map(|e| e.text.as_str()).collect();
                Ok(tokenize_all(tokenizer, &texts)?
                    .into_iter()
                    .zip(xs.iter().map(|e| e.label))
                    .collect())
            };
            Ok(PreparedTask {
                name: data.name.clone(),
                labels: data.labels.clone(),
                train: encode(&train)?,
                test: encode(&test)?,
                skipped: data.skipped.len(),
                total: data.examples.len(),
            })
        })
        .collect()
}

/// Pads token-id sequences to the longest of the batch into a [`BertInput`].
#[derive(Debug, Clone, Copy, Default)]
pub struct TokenCollate;

impl<B: Backend> Collate<B, Vec<u32>> for TokenCollate {
    type Output = BertInput<B>;

    fn collate(&self, inputs: Vec<Vec<u32>>, device: &B::Device) -> BertInput<B> {
        let batch = inputs.len();
        let seq = inputs.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let mut ids = Vec::with_capacity(batch * seq);
        let mut mask = Vec::with_capacity(batch * seq);
        for row in &inputs {
            ids.extend(row.iter().map(|&v| v as i64));
            ids.extend(std::iter::repeat_n(PAD_ID as i64, seq - row.len()));
            mask.extend(std::iter::repeat_n(1i64, row.len()));
            mask.extend(std::iter::repeat_n(0i64, seq - row.len()));
        }
        let t =
            |v: Vec<i64>| Tensor::<B, 2, Int>::from_data(TensorData::new(v, [batch, seq]), device);
        BertInput {
            input_ids: t(ids),
            token_type_ids: t(vec![0; batch * seq]),
            attention_mask: t(mask),
        }
    }
}

impl<B: Backend> MultiTaskBody<B> for BertModel<B> {
    type Input = BertInput<B>;

    /// Mean-pooled last hidden states (sentence-transformers' pooling, not
    /// normalized) and the router weights of every adapted linear, `[tokens, N]`.
    fn forward(&self, input: BertInput<B>) -> BodyOutput<B> {
        if B::ad_enabled(&input.input_ids.device()) {
            self.trace()
                .on_training_forward(|| self.mean_head_similarities());
        }
        let out = self.forward_with_gates(&input);
        let features = mean_pool(out.hidden, input.attention_mask);
        let gates = out
            .gates
            .into_iter()
            .map(|g| {
                let [b, s, n] = g.gates.dims();
                g.gates.reshape([b * s, n])
            })
            .collect();
        BodyOutput { features, gates }
    }
}

/// The `(d_in, d_out)` of every linear the adapters target, for matching LoRA's rank.
pub fn adapted_shapes(config: &BertConfig, adapters: &EncoderAdapterConfig) -> Vec<(usize, usize)> {
    use super::targets::TargetModule as T;
    let (h, f) = (config.hidden_size, config.intermediate_size);
    let per_layer: Vec<(usize, usize)> = adapters
        .targets
        .iter()
        .map(|t| match t {
            T::Intermediate => (h, f),
            T::Output => (f, h),
            _ => (h, h),
        })
        .collect();
    (0..config.num_hidden_layers)
        .flat_map(|_| per_layer.clone())
        .collect()
}

/// The adapter rank and encoder adapter config of `method` (LoRA's rank
/// matched to the multi-head methods' parameter count); `None` for the probe.
pub fn minilm_adapter(
    method: MiniLmMethod,
    settings: &TrainSettings,
    config: &BertConfig,
) -> Option<(usize, EncoderAdapterConfig)> {
    match method {
        MiniLmMethod::Probe => None,
        MiniLmMethod::Adapter(m) => {
            let template = EncoderAdapterConfig::new(burn_rlora::RLoraConfig::lora(1, 1.0));
            let shapes = adapted_shapes(config, &template);
            let (rank, adapter) = method_config_over(m, settings, &shapes);
            Some((rank, EncoderAdapterConfig::new(adapter)))
        }
    }
}

impl burn_rlora_examples::harness::compare::ComparisonTask for PreparedTask {
    type Input = Vec<u32>;

    fn name(&self) -> &str {
        &self.name
    }

    fn num_classes(&self) -> usize {
        self.labels.len()
    }

    fn train(&self) -> &[(Vec<u32>, usize)] {
        &self.train
    }

    fn test(&self) -> &[(Vec<u32>, usize)] {
        &self.test
    }
}

/// The model [`run_minilm`] trains: the pretrained encoder from `data_dir`
/// (adapted for `method` and frozen elsewhere, or entirely frozen for the
/// probe) with one fresh linear head per task, and the adapter rank (0 for the probe).
///
/// # Errors
///
/// Loading the model ([`DataError::DataMissing`](crate::datasets::DataError::DataMissing) without the fetched data)
/// or building the adapters.
pub fn build_classifier<B: Backend>(
    data_dir: &Path,
    method: MiniLmMethod,
    settings: &TrainSettings,
    max_len: usize,
    tasks: &[PreparedTask],
    device: &B::Device,
) -> Result<(usize, MultiTaskClassifier<B, BertModel<B>>), MiniLmError> {
    let pretrained = PretrainedMiniLm::<B>::load(data_dir, max_len, device)?;
    let (rank, encoder) = match minilm_adapter(method, settings, &pretrained.config) {
        None => (0, pretrained.model.no_grad()),
        Some((rank, adapters)) => (rank, pretrained.model.adapt(&adapters)?),
    };
    let classes: Vec<usize> = tasks.iter().map(|t| t.labels.len()).collect();
    let heads = TaskHeads::new(pretrained.config.hidden_size, &classes, device);
    Ok((
        rank,
        MultiTaskClassifier::new(encoder, heads).with_balance_coef(settings.balance),
    ))
}

/// Where a MiniLM run finds its model, and how it computes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MiniLmSource {
    /// The data directory written by `scripts/fetch-data.sh`.
    pub data_dir: PathBuf,
    /// Longest token sequence, the CLS and SEP markers included.
    pub max_len: usize,
    /// Compute GELU and the dropout masks with the host kernels of
    /// [`host_ops`](burn_rlora_llm::host_ops) (flex and ndarray only; off by default).
    pub host_kernels: bool,
}

/// Train `method` as `run` says on the prepared `tasks` (the pretrained
/// encoder loaded as `source` says) and score it on the test splits.
///
/// 10% of each task's training examples validate after every epoch; the test
/// split is scored once at the end. Head similarity is reported per adapted
/// linear, named `L<block>.<module>`. An adapter method's trained adapters
/// are saved to `<run.dir>/adapter/` (`save_adapter`'s format).
///
/// # Errors
///
/// Loading the model, building the adapters or the datasets.
pub fn run_minilm<B: AutodiffBackend>(
    tasks: &[PreparedTask],
    source: &MiniLmSource,
    method: MiniLmMethod,
    run: RunSpec<'_, B>,
) -> Result<RunResult> {
    let (start, device) = run.begin();
    let settings = run.settings;
    let data_dir = source.data_dir.as_path();
    let (rank, mut model) =
        build_classifier::<B>(data_dir, method, settings, source.max_len, tasks, &device)?;
    model.body = model.body.with_host_ops(source.host_kernels);
    // The probe has no adapters, so no head similarity to trace.
    let run = if method == MiniLmMethod::Probe {
        run.without_trace()
    } else {
        run
    };
    let trace = run.trace.clone();
    model.body = model.body.with_trace(trace.clone());
    let record = RunRecord::new(method.name(), run.seed, rank, &model, trace, start);

    let splits = Splits::of(tasks, settings.sampling, run.seed)?;
    let adapter_dir = run.dir.join("adapter");
    let fitted = fit_and_test(model, TokenCollate, splits, run)?;
    // The trained adapters alone (no frozen encoder, no heads), in the reference's format.
    if let MiniLmMethod::Adapter(_) = method {
        let config = BertConfig::from_json_file(&MiniLmPaths::in_data_dir(data_dir)?.config)?;
        if let Some((_, adapters)) = minilm_adapter(method, settings, &config) {
            burn_rlora::checkpoint::save_adapter(
                &fitted.model.body,
                &adapter_dir,
                &burn_rlora::checkpoint::SaveOptions::new(adapters.adapter),
            )
            .context("saving the trained adapter")?;
        }
    }
    let similarity_matrices: Vec<(String, HeadSimilarity)> = fitted
        .model
        .body
        .head_similarities()
        .into_iter()
        .map(|s| (format!("L{}.{}", s.layer, s.module), s.similarity))
        .collect();
    let last = fitted.model.body.mean_head_similarities();
    Ok(RunResult::new(record, fitted, similarity_matrices, last))
}
