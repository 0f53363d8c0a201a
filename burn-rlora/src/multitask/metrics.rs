//! Per-task metrics for the Learner's dashboard and logs.

use std::sync::Arc;

use burn::train::metric::state::{FormatOptions, NumericMetricState};
use burn::train::metric::{
    Metric, MetricAttributes, MetricMetadata, MetricName, Numeric, NumericAttributes, NumericEntry,
    SerializedEntry,
};

use super::output::{MultiTaskStats, TaskStats};
use super::task::TaskId;

fn stats_of(input: &MultiTaskStats, task: Option<TaskId>) -> TaskStats {
    match task {
        Some(t) => input.tasks.get(t.0).copied().unwrap_or_default(),
        None => input.overall(),
    }
}

macro_rules! task_metric {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $value:expr, $unit:expr, $higher:expr) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name {
            name: MetricName,
            task: Option<TaskId>,
            state: NumericMetricState,
        }

        impl $name {
            /// The metric of one task, shown as `"<metric> <task name>"`.
            pub fn task(task: TaskId, task_name: &str) -> Self {
                Self {
                    name: Arc::new(format!("{} {task_name}", $prefix)),
                    task: Some(task),
                    state: NumericMetricState::default(),
                }
            }

            /// The metric over all tasks, shown as `"<metric>"`.
            pub fn overall() -> Self {
                Self { name: Arc::new($prefix.to_string()), task: None, state: NumericMetricState::default() }
            }
        }

        impl Metric for $name {
            type Input = MultiTaskStats;

            fn update(&mut self, input: &MultiTaskStats, _metadata: &MetricMetadata) -> SerializedEntry {
                let stats = stats_of(input, self.task);
                let value: fn(&TaskStats) -> f64 = $value;
                // A task absent from the batch adds nothing (weight 0) to the epoch figure.
                let v = if stats.count == 0 { 0.0 } else { value(&stats) };
                let mut format = FormatOptions::new(self.name.clone()).precision(3);
                if let Some(unit) = $unit {
                    format = format.unit(unit);
                }
                self.state.update(v, stats.count, format)
            }

            fn clear(&mut self) {
                self.state.reset();
            }

            fn name(&self) -> MetricName {
                self.name.clone()
            }

            fn attributes(&self) -> MetricAttributes {
                NumericAttributes { unit: $unit.map(str::to_string), higher_is_better: $higher }.into()
            }
        }

        impl Numeric for $name {
            fn value(&self) -> NumericEntry {
                self.state.current_value()
            }

            fn running_value(&self) -> NumericEntry {
                self.state.running_value()
            }
        }
    };
}

task_metric!(
    /// Mean cross-entropy of one task (or of all tasks: named `Loss`, which is
    /// what burn-train's default best-checkpoint strategy looks for).
    TaskLossMetric,
    "Loss",
    |s| s.loss_sum / s.count as f64,
    None::<&str>,
    false
);

task_metric!(
    /// Accuracy (arg-max) of one task, or of all tasks, in percent.
    TaskAccuracyMetric,
    "Accuracy",
    |s| 100.0 * s.correct as f64 / s.count as f64,
    Some("%"),
    true
);
