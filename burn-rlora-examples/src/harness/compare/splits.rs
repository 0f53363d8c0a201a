//! The tasks of a comparison and their train, validation and test splits.

use anyhow::{Context, Result};
use burn::data::dataset::InMemDataset;
use burn_rlora::multitask::{MultiTaskDataset, SamplingStrategy};

/// One task of a comparison as the dataset builders read it: the built-in
/// tasks ([`crate::synthetic::TaskData`]) and the pretrained models' (in
/// `burn-rlora-pretrained`) both are.
pub trait ComparisonTask {
    /// One example's input.
    type Input: Clone + Send + Sync + 'static;
    /// The task's name.
    fn name(&self) -> &str;
    /// Its number of classes.
    fn num_classes(&self) -> usize;
    /// Training examples (the last 10% of them validate in [`Splits::of`]).
    fn train(&self) -> &[(Self::Input, usize)];
    /// Held-out test examples.
    fn test(&self) -> &[(Self::Input, usize)];
}

/// A multi-task dataset of the examples that `pick` selects from each of
/// `tasks` (its train, validation or test split, or a shard of one), mixed
/// by `sampling` under `seed`.
///
/// # Errors
///
/// When the dataset cannot be built (for example, no task has an example).
pub fn task_dataset<T: ComparisonTask>(
    tasks: &[T],
    pick: impl Fn(&T) -> Vec<(T::Input, usize)>,
    sampling: SamplingStrategy,
    seed: u64,
) -> Result<MultiTaskDataset<T::Input>> {
    let mut builder = MultiTaskDataset::builder(sampling, seed);
    for task in tasks {
        builder = builder.task(
            task.name().to_string(),
            task.num_classes(),
            InMemDataset::new(pick(task)),
        );
    }
    builder.build().context("building the multi-task dataset")
}

/// How many of a task's `n` training examples train; the rest (10%, at
/// least one) validate.
pub fn training_part(n: usize) -> usize {
    n - (n / 10).max(1)
}

/// The three splits of a multi-task comparison.
pub struct Splits<X> {
    /// Mixed by the training sampling strategy.
    pub train: MultiTaskDataset<X>,
    /// Scored after every epoch (the Learner's validation).
    pub valid: MultiTaskDataset<X>,
    /// Scored once, task by task, after training.
    pub test: MultiTaskDataset<X>,
}

impl<X: Clone + Send + Sync + 'static> Splits<X> {
    /// The splits of `tasks`: the first 90% of each task's training
    /// examples train (mixed by `sampling` under `seed`), the rest validate,
    /// and the test examples are scored at the end (both mixed
    /// proportionally).
    ///
    /// # Errors
    ///
    /// As [`task_dataset`].
    pub fn of<T: ComparisonTask<Input = X>>(
        tasks: &[T],
        sampling: SamplingStrategy,
        seed: u64,
    ) -> Result<Self> {
        let part = |t: &T| training_part(t.train().len());
        let proportional = SamplingStrategy::Proportional;
        Ok(Self {
            train: task_dataset(tasks, |t| t.train()[..part(t)].to_vec(), sampling, seed)?,
            valid: task_dataset(tasks, |t| t.train()[part(t)..].to_vec(), proportional, seed)?,
            test: task_dataset(tasks, |t| t.test().to_vec(), proportional, seed)?,
        })
    }
}
