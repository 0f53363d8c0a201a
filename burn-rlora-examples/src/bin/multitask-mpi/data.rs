//! This rank's data: the splits, its shard and its loaders.

use std::sync::Arc;

use crate::{Batch, Job};
use anyhow::{Context, Result};
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::data::dataset::Dataset;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn_rlora::distributed::shard::{shard_indices, GroupBatcher, GroupedDataset, ShardDataset};
use burn_rlora::distributed::Exchange;
use burn_rlora::multitask::{DenseCollate, MultiTaskBatcher, MultiTaskDataset, TaskItem};
use burn_rlora_examples::harness::compare::Splits;
use burn_rlora_examples::synthetic::Benchmark;

/// A loader of `data` in batches of `batch_size`, shuffled under `shuffle`'s seed if any.
pub(crate) fn loader<B: Backend, I, T>(
    batcher: T,
    data: impl Dataset<I> + 'static,
    batch_size: usize,
    shuffle: Option<u64>,
) -> Arc<dyn DataLoader<B, Batch<B>>>
where
    I: Send + Sync + Clone + std::fmt::Debug + 'static,
    T: Batcher<B, I, Batch<B>> + 'static,
{
    let builder = DataLoaderBuilder::new(batcher).batch_size(batch_size);
    match shuffle {
        Some(seed) => builder.shuffle(seed).build(data),
        None => builder.build(data),
    }
}

/// This rank's loaders.
pub(crate) struct Loaders<B: AutodiffBackend> {
    pub(crate) train: Arc<dyn DataLoader<B, Batch<B>>>,
    pub(crate) valid: Arc<dyn DataLoader<B::InnerBackend, Batch<B::InnerBackend>>>,
}

/// What the run scores and reports besides the model.
pub(crate) struct Plan {
    /// Scored task by task after training.
    pub(crate) test: MultiTaskDataset<Vec<f32>>,
    pub(crate) task_names: Vec<String>,
    /// Training examples of each rank's shard.
    pub(crate) per_rank: usize,
    /// Optimizer steps of the whole run.
    pub(crate) steps: usize,
}

impl<X: Exchange + 'static> Job<X> {
    /// Split the data, shard the training set over the ranks and build this
    /// rank's loaders (of every shard, step by step, when simulated).
    pub(crate) fn rank_data<B: AutodiffBackend>(
        &self,
        bench: &Benchmark,
    ) -> Result<(Loaders<B>, Plan)> {
        let (args, data_ranks) = (&self.args, self.data_ranks);
        // 10% of each task's training examples validate, as in `multitask`.
        let Splits { train, valid, test } =
            Splits::of(&bench.tasks, self.settings.sampling, args.seed)?;
        let train = Arc::new(train);
        let task_names = train.task_names();
        let shards = (0..data_ranks)
            .map(|r| shard_indices(train.len(), data_ranks, r, args.seed))
            .collect::<Result<Vec<_>, _>>()?;
        let per_rank = shards[0].len();
        let steps = per_rank.div_ceil(args.batch_size) * args.epochs;
        let batcher = MultiTaskBatcher::new(DenseCollate);
        let train_loader: Arc<dyn DataLoader<B, Batch<B>>> = if self.simulated() {
            loader::<B, Vec<TaskItem<Vec<f32>>>, _>(
                GroupBatcher(batcher.clone()),
                GroupedDataset::new(train, shards),
                args.batch_size,
                Some(args.seed),
            )
        } else {
            let shard = shards
                .into_iter()
                .nth(self.exchange.rank())
                .context("no shard for this rank")?;
            loader::<B, TaskItem<Vec<f32>>, _>(
                batcher.clone(),
                ShardDataset::new(train, shard),
                args.batch_size,
                Some(args.seed),
            )
        };
        let valid_loader = loader::<B::InnerBackend, TaskItem<Vec<f32>>, _>(
            batcher.clone(),
            valid,
            args.batch_size,
            None,
        );
        let loaders = Loaders {
            train: train_loader,
            valid: valid_loader,
        };
        let plan = Plan {
            test,
            task_names,
            per_rank,
            steps,
        };
        Ok((loaders, plan))
    }
}
