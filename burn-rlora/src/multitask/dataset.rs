//! [`MultiTaskDataset`]: several named datasets as one, mixed by a sampling strategy.

use std::sync::Arc;

use burn::data::dataset::Dataset;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use thiserror::Error;

use super::sampling::SamplingStrategy;
use super::task::{TaskId, TaskItem};

/// Why a [`MultiTaskDataset`] could not be built.
#[derive(Debug, Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum DatasetError {
    /// No task was added.
    #[error("a multi-task dataset needs at least one task")]
    NoTasks,
    /// A task has no examples.
    #[error("task '{0}' is empty")]
    EmptyTask(String),
    /// Two tasks share a name.
    #[error("task name '{0}' is used twice")]
    DuplicateTask(String),
    /// A task was declared with zero classes.
    #[error("task '{0}' must have at least one class")]
    NoClasses(String),
    /// An example's label is not below the task's class count.
    #[error(
        "task '{task}': example {index} has label {label}, but the task has {num_classes} classes"
    )]
    LabelOutOfRange {
        /// The task's name.
        task: String,
        /// The example's index in its own dataset.
        index: usize,
        /// The label found.
        label: usize,
        /// The task's class count.
        num_classes: usize,
    },
    /// The dataset reported a length it could not serve.
    #[error("task '{task}': item {index} is missing although the dataset has length {len}")]
    MissingItem {
        /// The task's name.
        task: String,
        /// The index that returned `None`.
        index: usize,
        /// The reported length.
        len: usize,
    },
    /// The sampling strategy gives the epoch no example at all.
    #[error("the sampling strategy {0:?} gives an epoch with no training example")]
    EmptyEpoch(SamplingStrategy),
    /// The temperature of [`SamplingStrategy::Temperature`] is not a positive finite number.
    #[error("sampling temperature must be a positive finite number, got {0}")]
    InvalidTemperature(f64),
}

struct Task<X> {
    name: String,
    num_classes: usize,
    data: Arc<dyn Dataset<(X, usize)>>,
}

/// Several named classification datasets combined into one [`Dataset`] of
/// [`TaskItem`]s.
///
/// Each task is any Burn `Dataset` of `(input, label)` pairs (wrap other item
/// types with `burn::data::dataset::transform::MapperDataset`). Tasks may
/// differ in size and in class count. The order and mix of one epoch are fixed
/// at build time by the [`SamplingStrategy`] and the seed, so two builds with
/// the same arguments give the same items in the same order; the data
/// loader's shuffle then varies the order between epochs. Down-sampled tasks
/// contribute the same subset every epoch.
///
/// ```
/// use burn::data::dataset::{Dataset, InMemDataset};
/// use burn_rlora::multitask::{MultiTaskDataset, SamplingStrategy, TaskId};
///
/// let big = InMemDataset::new((0..90).map(|i| (vec![i as f32], i % 3)).collect());
/// let small = InMemDataset::new((0..10).map(|i| (vec![i as f32], i % 2)).collect());
/// let data = MultiTaskDataset::builder(SamplingStrategy::Temperature(2.0), 7)
///     .task("big", 3, big)
///     .task("small", 2, small)
///     .build()
///     .unwrap();
/// assert_eq!(data.len(), 100); // the epoch size is the total number of examples
/// // p ∝ sqrt(n): 9.49 : 3.16, so the small task gets 25 of 100 draws instead of 10.
/// assert_eq!(data.task_counts(), &[75, 25]);
/// assert_eq!(data.task_name(TaskId(1)), Some("small"));
/// ```
pub struct MultiTaskDataset<X> {
    tasks: Vec<Task<X>>,
    schedule: Vec<(TaskId, usize)>,
    counts: Vec<usize>,
}

/// Builder of a [`MultiTaskDataset`]; see [`MultiTaskDataset::builder`].
pub struct MultiTaskDatasetBuilder<X> {
    strategy: SamplingStrategy,
    seed: u64,
    epoch_size: Option<usize>,
    tasks: Vec<Task<X>>,
}

impl<X: Send + Sync + 'static> MultiTaskDataset<X> {
    /// Start a dataset mixed by `strategy`, deterministic under `seed`.
    pub fn builder(strategy: SamplingStrategy, seed: u64) -> MultiTaskDatasetBuilder<X> {
        MultiTaskDatasetBuilder {
            strategy,
            seed,
            epoch_size: None,
            tasks: Vec::new(),
        }
    }

    /// The task names, indexed by [`TaskId`].
    pub fn task_names(&self) -> Vec<String> {
        self.tasks.iter().map(|t| t.name.clone()).collect()
    }

    /// The name of one task.
    pub fn task_name(&self, task: TaskId) -> Option<&str> {
        self.tasks.get(task.0).map(|t| t.name.as_str())
    }

    /// The class count of every task, indexed by [`TaskId`].
    pub fn num_classes(&self) -> Vec<usize> {
        self.tasks.iter().map(|t| t.num_classes).collect()
    }

    /// How many items of one epoch come from each task.
    pub fn task_counts(&self) -> &[usize] {
        &self.counts
    }

    /// The size of each task's own dataset.
    pub fn task_sizes(&self) -> Vec<usize> {
        self.tasks.iter().map(|t| t.data.len()).collect()
    }
}

impl<X: Send + Sync + 'static> MultiTaskDatasetBuilder<X> {
    /// Add a task named `name` with `num_classes` classes.
    pub fn task<D>(mut self, name: impl Into<String>, num_classes: usize, data: D) -> Self
    where
        D: Dataset<(X, usize)> + 'static,
    {
        self.tasks.push(Task {
            name: name.into(),
            num_classes,
            data: Arc::new(data),
        });
        self
    }

    /// Make an epoch `size` examples long instead of the total number of
    /// examples (the default): a shorter epoch sees part of each task, a
    /// longer one cycles through them, each task's share set by the strategy
    /// as before. For a training run of a fixed number of steps.
    pub fn epoch_size(mut self, size: usize) -> Self {
        self.epoch_size = Some(size);
        self
    }

    /// Check every task (one pass over the labels) and fix the epoch's schedule.
    ///
    /// # Errors
    ///
    /// [`DatasetError`] for no task, an empty task, a duplicate name, zero
    /// classes, a label out of range, an invalid temperature, or an epoch
    /// without examples.
    pub fn build(self) -> Result<MultiTaskDataset<X>, DatasetError> {
        if self.tasks.is_empty() {
            return Err(DatasetError::NoTasks);
        }
        if let SamplingStrategy::Temperature(t) = self.strategy {
            if !t.is_finite() || t <= 0.0 {
                return Err(DatasetError::InvalidTemperature(t));
            }
        }
        for (i, task) in self.tasks.iter().enumerate() {
            if self.tasks[..i].iter().any(|t| t.name == task.name) {
                return Err(DatasetError::DuplicateTask(task.name.clone()));
            }
            if task.num_classes == 0 {
                return Err(DatasetError::NoClasses(task.name.clone()));
            }
            let len = task.data.len();
            if len == 0 {
                return Err(DatasetError::EmptyTask(task.name.clone()));
            }
            for index in 0..len {
                let (_, label) = task
                    .data
                    .get(index)
                    .ok_or_else(|| DatasetError::MissingItem {
                        task: task.name.clone(),
                        index,
                        len,
                    })?;
                if label >= task.num_classes {
                    return Err(DatasetError::LabelOutOfRange {
                        task: task.name.clone(),
                        index,
                        label,
                        num_classes: task.num_classes,
                    });
                }
            }
        }
        let sizes: Vec<usize> = self.tasks.iter().map(|t| t.data.len()).collect();
        let epoch = self.epoch_size.unwrap_or(sizes.iter().sum());
        let counts = self
            .strategy
            .counts_for(&sizes, epoch)
            .filter(|c| c.iter().sum::<usize>() > 0)
            .ok_or(DatasetError::EmptyEpoch(self.strategy))?;

        // Each task: its first `count` items of a seeded permutation, cycling when
        // up-sampled; tasks interleaved evenly by the key (k + 0.5) / count.
        let mut keyed: Vec<(f64, TaskId, usize)> = Vec::with_capacity(counts.iter().sum());
        for (t, (&n, &count)) in sizes.iter().zip(&counts).enumerate() {
            let mut rng = StdRng::seed_from_u64(
                self.seed ^ (0x9E37_79B9_7F4A_7C15u64.wrapping_mul(t as u64 + 1)),
            );
            let mut order: Vec<usize> = (0..n).collect();
            order.shuffle(&mut rng);
            for k in 0..count {
                keyed.push(((k as f64 + 0.5) / count as f64, TaskId(t), order[k % n]));
            }
        }
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let schedule = keyed.into_iter().map(|(_, t, i)| (t, i)).collect();
        Ok(MultiTaskDataset {
            tasks: self.tasks,
            schedule,
            counts,
        })
    }
}

impl<X: Send + Sync + 'static> Dataset<TaskItem<X>> for MultiTaskDataset<X> {
    fn get(&self, index: usize) -> Option<TaskItem<X>> {
        let &(task, local) = self.schedule.get(index)?;
        let (input, label) = self.tasks[task.0].data.get(local)?;
        Some(TaskItem { task, input, label })
    }

    fn len(&self) -> usize {
        self.schedule.len()
    }
}
