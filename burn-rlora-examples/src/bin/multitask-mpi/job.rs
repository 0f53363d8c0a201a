//! The job on one backend: an identical model on every rank, training,
//! then rank 0's scores, adapter and report.

use std::path::Path;

use crate::data::Plan;
use crate::sizes::Sizes;
use crate::training::{artifact_dir, Trained};
use crate::{Classifier, Job};
use anyhow::{Context, Result};
use burn::tensor::backend::AutodiffBackend;
use burn_rlora::distributed::flat::{broadcast_from_root, masked_values, trainable_mask};
use burn_rlora::distributed::Exchange;
use burn_rlora::multitask::{DenseCollate, MultiTaskClassifier, TaskHeads};
use burn_rlora::RLoraConfig;
use burn_rlora_examples::backend::BackendJob;
use burn_rlora_examples::harness::compare::{method_config, test_accuracy};
use burn_rlora_examples::synthetic::{Benchmark, SyntheticBody, D_HIDDEN};
use serde::Serialize;

/// What rank 0 writes to `<out>/report.json`.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) method: String,
    pub(crate) backend: String,
    pub(crate) ranks: usize,
    pub(crate) simulated: bool,
    pub(crate) batch_per_rank: usize,
    pub(crate) global_batch: usize,
    pub(crate) steps: usize,
    pub(crate) examples_per_rank: usize,
    pub(crate) trainable_params: usize,
    pub(crate) total_params: usize,
    pub(crate) bytes_per_step: usize,
    pub(crate) full_finetune_bytes_per_step: usize,
    pub(crate) loss_per_step: Vec<f64>,
    pub(crate) task_names: Vec<String>,
    pub(crate) task_accuracy: Vec<f64>,
    pub(crate) train_seconds: f64,
}

impl<X: Exchange + 'static> BackendJob for Job<X> {
    type Output = Result<()>;

    /// Build the same model on every rank, train this rank's shard together
    /// with the other ranks, then dump the weights, score, save and report
    /// as the options say.
    fn run<B: AutodiffBackend>(self, devices: Vec<B::Device>) -> Result<()> {
        let rank = self.exchange.rank();
        let device = devices[0].clone();
        let (model, config, bench) = self.identical_model::<B>(&device)?;
        let mask = trainable_mask::<B, _>(&model);
        let sizes = Sizes::of(&model, bench.tasks.len());
        let (loaders, plan) = self.rank_data::<B>(&bench)?;
        let artifact_dir = artifact_dir(&self.args.out, rank);
        if rank == 0 {
            self.print_plan(&plan, &sizes);
        }
        if self.args.dump_params {
            let values = masked_values::<B, _>(&model, &mask).map_err(anyhow::Error::msg)?;
            dump_params(&self.args.out, &format!("params-init-rank{rank}"), &values)?;
        }
        let trained = self.train(model, loaders, plan.steps, &device, &artifact_dir)?;
        if self.args.dump_params {
            let values = masked_values::<B::InnerBackend, _>(&trained.model, &mask)
                .map_err(anyhow::Error::msg)?;
            dump_params(&self.args.out, &format!("params-rank{rank}"), &values)?;
        }
        if rank != 0 {
            std::fs::remove_dir_all(&artifact_dir).ok();
            return Ok(());
        }
        self.finish(trained, config, plan, &sizes)
    }
}

impl<X: Exchange + 'static> Job<X> {
    /// Whether one process trains on the combined batches of all ranks.
    pub(crate) fn simulated(&self) -> bool {
        self.args.simulate_ranks.is_some()
    }

    /// Seed this rank's random stream, generate the data, build the model
    /// and give it rank 0's weights, so that every rank starts alike.
    pub(crate) fn identical_model<B: AutodiffBackend>(
        &self,
        device: &B::Device,
    ) -> Result<(Classifier<B>, RLoraConfig, Benchmark)> {
        // Each rank its own random stream (dropout); the weights come from rank 0.
        B::seed(
            device,
            self.args.seed.wrapping_add(self.exchange.rank() as u64),
        );
        let bench = Benchmark::generate(self.args.data_seed, self.args.data_scale)?;
        let (_, config) = method_config(self.method, &self.settings);
        let classes: Vec<usize> = bench.tasks.iter().map(|t| t.num_classes).collect();
        let model = MultiTaskClassifier::new(
            SyntheticBody::<B>::new(&bench.base, &config, device)?,
            TaskHeads::new(D_HIDDEN, &classes, device),
        )
        .with_balance_coef(self.settings.balance);
        // Identical starts: every rank takes rank 0's weights, frozen ones included.
        let model = broadcast_from_root::<B, _, _>(model, self.exchange.as_ref())
            .map_err(anyhow::Error::msg)?;
        Ok((model, config, bench))
    }

    /// Rank 0's line about the run: ranks, examples and steps per rank,
    /// parameters and the bytes a step sends.
    pub(crate) fn print_plan(&self, plan: &Plan, sizes: &Sizes) {
        println!(
            "{} rank(s){}, {} examples and {} steps of batch {} per rank; \
             {} trainable of {} parameters; {} bytes per step (full fine-tuning of the same layers: {})",
            self.data_ranks,
            if self.simulated() { " simulated in one process" } else { "" },
            plan.per_rank,
            plan.steps,
            self.args.batch_size,
            sizes.count.trainable,
            sizes.count.total,
            sizes.bytes_per_step,
            sizes.full_bytes,
        );
    }

    /// Rank 0's end of the run: print and keep the test accuracy of every
    /// task, save the trained adapter to `<out>/adapter` and write the report.
    pub(crate) fn finish<B: AutodiffBackend>(
        &self,
        trained: Trained<B>,
        config: RLoraConfig,
        plan: Plan,
        sizes: &Sizes,
    ) -> Result<()> {
        let (args, data_ranks) = (&self.args, self.data_ranks);
        let loss_per_step = if self.simulated() {
            let history = trained
                .history
                .lock()
                .map(|h| h.clone())
                .unwrap_or_default();
            history
                .train_batches
                .get("Loss")
                .cloned()
                .unwrap_or_default()
        } else {
            trained.losses.values()
        };
        let model = trained.model;
        let task_names = plan.task_names;
        let task_accuracy = test_accuracy(&model, DenseCollate, plan.test, 256, task_names.len());
        for (name, acc) in task_names.iter().zip(&task_accuracy) {
            println!("test accuracy {name}: {acc:.2}%");
        }
        burn_rlora::checkpoint::save_adapter(
            &model.body,
            args.out.join("adapter"),
            &burn_rlora::checkpoint::SaveOptions::new(config),
        )
        .context("saving the trained adapter")?;
        let report = Report {
            method: self.method.name().to_string(),
            backend: self.backend.to_string(),
            ranks: data_ranks,
            simulated: self.simulated(),
            batch_per_rank: args.batch_size,
            global_batch: args.batch_size * data_ranks,
            steps: plan.steps,
            examples_per_rank: plan.per_rank,
            trainable_params: sizes.count.trainable,
            total_params: sizes.count.total,
            bytes_per_step: sizes.bytes_per_step,
            full_finetune_bytes_per_step: sizes.full_bytes,
            loss_per_step,
            task_names,
            task_accuracy,
            train_seconds: trained.train_seconds,
        };
        write_report(&args.out, &report)
    }
}

/// Write trainable weights to `<out>/<stem>.f32` (little-endian `f32`,
/// module order).
pub(crate) fn dump_params(out: &Path, stem: &str, values: &[f32]) -> Result<()> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::create_dir_all(out)?;
    let path = out.join(format!("{stem}.f32"));
    burn_rlora::write_atomically(&path, &bytes)?;
    Ok(())
}

pub(crate) fn write_report(out: &Path, report: &Report) -> Result<()> {
    let path = out.join("report.json");
    burn_rlora::write_atomically(&path, serde_json::to_string_pretty(report)?.as_bytes())?;
    Ok(())
}
