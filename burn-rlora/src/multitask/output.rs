//! The output of a multi-task step, and its host-side summary for metrics.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use burn::train::metric::{Adaptor, ItemLazy};

use super::task::TaskId;

/// What a [`MultiTaskClassifier`](super::MultiTaskClassifier) step returns.
#[derive(Debug, Clone)]
pub struct MultiTaskOutput<B: Backend> {
    /// The optimized loss: mean cross-entropy plus the weighted balance loss.
    pub loss: Tensor<B, 1>,
    /// The mean cross-entropy over the batch alone.
    pub cross_entropy: Tensor<B, 1>,
    /// Per task present in the batch: the task, its logits and its targets.
    pub per_task: Vec<(TaskId, Tensor<B, 2>, Tensor<B, 1, Int>)>,
}

/// Loss and accuracy figures of one task in one batch.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TaskStats {
    /// Examples of the task in the batch.
    pub count: usize,
    /// Sum of their cross-entropies (nats).
    pub loss_sum: f64,
    /// How many were classified correctly (arg-max).
    pub correct: usize,
}

/// A [`MultiTaskOutput`] read back to the host: what the metrics consume.
#[derive(Debug, Clone, PartialEq)]
pub struct MultiTaskStats {
    /// The optimized loss of the batch.
    pub loss: f64,
    /// Examples in the batch.
    pub batch_size: usize,
    /// Figures per task, indexed by [`TaskId`] (zero counts for absent tasks).
    pub tasks: Vec<TaskStats>,
}

impl MultiTaskStats {
    /// The figures of all tasks together.
    pub fn overall(&self) -> TaskStats {
        self.tasks
            .iter()
            .fold(TaskStats::default(), |acc, t| TaskStats {
                count: acc.count + t.count,
                loss_sum: acc.loss_sum + t.loss_sum,
                correct: acc.correct + t.correct,
            })
    }
}

/// Cross-entropy and correctness of every row of `logits` (`[rows, classes]`, row-major).
pub(crate) fn row_stats(logits: &[f64], classes: usize, targets: &[i64]) -> TaskStats {
    let mut stats = TaskStats::default();
    for (row, &target) in logits.chunks(classes).zip(targets) {
        let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        let target = target as usize;
        let argmax = row
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i);
        stats.count += 1;
        stats.loss_sum += lse - row[target];
        stats.correct += usize::from(argmax == target);
    }
    stats
}

impl<B: Backend> ItemLazy for MultiTaskOutput<B> {
    type ItemSync = MultiTaskStats;

    /// Reads the logits and targets back to the host (one transfer per task).
    fn sync(self) -> MultiTaskStats {
        let loss = self
            .loss
            .into_data()
            .convert::<f64>()
            .to_vec::<f64>()
            .unwrap_or_default();
        let num_tasks = self
            .per_task
            .iter()
            .map(|(t, _, _)| t.0 + 1)
            .max()
            .unwrap_or(0);
        let mut tasks = vec![TaskStats::default(); num_tasks];
        let mut batch_size = 0;
        for (task, logits, targets) in self.per_task {
            let [_, classes] = logits.dims();
            let logits: Vec<f64> = logits
                .into_data()
                .convert::<f64>()
                .to_vec()
                .unwrap_or_default();
            let targets: Vec<i64> = targets
                .into_data()
                .convert::<i64>()
                .to_vec()
                .unwrap_or_default();
            let stats = row_stats(&logits, classes, &targets);
            batch_size += stats.count;
            tasks[task.0] = stats;
        }
        MultiTaskStats {
            loss: loss.first().copied().unwrap_or(f64::NAN),
            batch_size,
            tasks,
        }
    }
}

impl Adaptor<MultiTaskStats> for MultiTaskStats {
    fn adapt(&self) -> MultiTaskStats {
        self.clone()
    }
}
