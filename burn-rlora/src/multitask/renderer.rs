//! [`PlainRenderer`]: one line per epoch and split, for logs and CI.

use std::collections::BTreeMap;

use burn::train::metric::{MetricDefinition, MetricEntry};
use burn::train::renderer::{
    EvaluationName, EvaluationProgress, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining, ProgressType, TrainingProgress,
};

/// A non-interactive renderer: prints the epoch-level value of every numeric
/// metric once per epoch and split, e.g.
/// `epoch 2/5 train | Accuracy 81.250 % | Loss 0.412 | Loss task-a 0.390`.
///
/// burn-train's own fallback prints every iteration; this one suits logs and CI.
#[derive(Debug, Default)]
pub struct PlainRenderer {
    names: BTreeMap<String, String>,
    train: BTreeMap<String, f64>,
    valid: BTreeMap<String, f64>,
    printed: [Option<usize>; 2],
}

impl PlainRenderer {
    /// A new renderer.
    pub fn new() -> Self {
        Self::default()
    }

    fn record(&mut self, valid: bool, state: MetricState) {
        let entry: MetricEntry = match state {
            MetricState::Numeric(entry, _) => entry,
            MetricState::Generic(_) => return,
        };
        let id = format!("{:?}", entry.metric_id);
        let name = self.names.get(&id).cloned().unwrap_or(id);
        // The serialized entry holds the current batch only; the epoch figure
        // is the first number of the formatted "epoch X - batch Y".
        if let Some(epoch_value) = entry
            .serialized_entry
            .formatted
            .strip_prefix("epoch ")
            .and_then(|s| s.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
        {
            let map = if valid {
                &mut self.valid
            } else {
                &mut self.train
            };
            map.insert(name, epoch_value);
        }
    }

    fn print(&mut self, valid: bool, epoch: (usize, usize)) {
        let map = if valid { &self.valid } else { &self.train };
        if map.is_empty() {
            return;
        }
        let figures: Vec<String> = map.iter().map(|(k, v)| format!("{k} {v:.3}")).collect();
        println!(
            "epoch {}/{} {} | {}",
            epoch.0,
            epoch.1,
            if valid { "valid" } else { "train" },
            figures.join(" | ")
        );
    }

    fn progress(&mut self, valid: bool, item: &TrainingProgress) {
        let epoch = (
            item.global_progress.items_processed,
            item.global_progress.items_total,
        );
        let slot = usize::from(valid);
        if epoch_done(item) && self.printed[slot] != Some(epoch.0) {
            self.printed[slot] = Some(epoch.0);
            self.print(valid, epoch);
        }
    }
}

/// True on the last batch of an epoch's split.
fn epoch_done(item: &TrainingProgress) -> bool {
    item.progress
        .as_ref()
        .is_some_and(|p| p.items_total > 0 && p.items_processed >= p.items_total)
}

impl MetricsRendererTraining for PlainRenderer {
    fn update_train(&mut self, state: MetricState) {
        self.record(false, state);
    }

    fn update_valid(&mut self, state: MetricState) {
        self.record(true, state);
    }

    fn render_train(&mut self, item: TrainingProgress, _progress: Vec<ProgressType>) {
        self.progress(false, &item);
    }

    fn render_valid(&mut self, item: TrainingProgress, _progress: Vec<ProgressType>) {
        self.progress(true, &item);
    }
}

impl MetricsRendererEvaluation for PlainRenderer {
    fn update_test(&mut self, _name: EvaluationName, _state: MetricState) {}

    fn render_test(&mut self, _item: EvaluationProgress, _progress: Vec<ProgressType>) {}
}

impl MetricsRenderer for PlainRenderer {
    fn manual_close(&mut self) {}

    fn register_metric(&mut self, definition: MetricDefinition) {
        self.names
            .insert(format!("{:?}", definition.metric_id), definition.name);
    }
}

/// Metric values recorded by a [`RecordingRenderer`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricHistory {
    /// Per training iteration: metric name → the batch value, in order.
    pub train_batches: BTreeMap<String, Vec<f64>>,
    /// Per epoch: metric name → the epoch value on the validation split.
    pub valid_epochs: BTreeMap<String, Vec<f64>>,
}

/// A shared handle to the history a [`RecordingRenderer`] fills.
pub type HistoryHandle = std::sync::Arc<std::sync::Mutex<MetricHistory>>;

/// Wraps any renderer (the TUI, a [`PlainRenderer`]) and records the numeric
/// metrics it is shown, so that a program can plot loss curves after
/// `launch` without parsing burn-train's log files.
pub struct RecordingRenderer {
    inner: Box<dyn MetricsRenderer>,
    names: BTreeMap<String, String>,
    history: HistoryHandle,
    pending_train: BTreeMap<String, f64>,
    pending_valid: BTreeMap<String, f64>,
}

impl RecordingRenderer {
    /// Wrap `inner`; returns the renderer and the handle to its history.
    pub fn new(inner: Box<dyn MetricsRenderer>) -> (Self, HistoryHandle) {
        let history = HistoryHandle::default();
        let renderer = Self {
            inner,
            names: BTreeMap::new(),
            history: history.clone(),
            pending_train: BTreeMap::new(),
            pending_valid: BTreeMap::new(),
        };
        (renderer, history)
    }

    fn name_and_entry(&self, state: &MetricState) -> Option<(String, String)> {
        let MetricState::Numeric(entry, _) = state else {
            return None;
        };
        let id = format!("{:?}", entry.metric_id);
        let name = self.names.get(&id).cloned().unwrap_or(id);
        Some((name, entry.serialized_entry.formatted.clone()))
    }

    /// Commit the epoch values once the validation epoch's last batch is in.
    fn commit_valid(&mut self) {
        let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        for (name, value) in std::mem::take(&mut self.pending_valid) {
            history.valid_epochs.entry(name).or_default().push(value);
        }
    }
}

/// `"epoch X - batch Y"` → `(X, Y)`.
fn epoch_and_batch(formatted: &str) -> Option<(f64, f64)> {
    let rest = formatted.strip_prefix("epoch ")?;
    let mut words = rest.split_whitespace();
    let epoch = words.next()?.parse().ok()?;
    let batch = words.skip_while(|w| *w != "batch").nth(1)?.parse().ok()?;
    Some((epoch, batch))
}

impl MetricsRendererTraining for RecordingRenderer {
    fn update_train(&mut self, state: MetricState) {
        if let Some((name, formatted)) = self.name_and_entry(&state) {
            if let Some((_, batch)) = epoch_and_batch(&formatted) {
                self.pending_train.insert(name, batch);
            }
        }
        self.inner.update_train(state);
    }

    fn update_valid(&mut self, state: MetricState) {
        if let Some((name, formatted)) = self.name_and_entry(&state) {
            if let Some((epoch, _)) = epoch_and_batch(&formatted) {
                self.pending_valid.insert(name, epoch);
            }
        }
        self.inner.update_valid(state);
    }

    fn render_train(&mut self, item: TrainingProgress, progress: Vec<ProgressType>) {
        // One value per metric and iteration, whatever the number of updates.
        if !self.pending_train.is_empty() {
            let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
            for (name, value) in std::mem::take(&mut self.pending_train) {
                history.train_batches.entry(name).or_default().push(value);
            }
        }
        self.inner.render_train(item, progress);
    }

    fn render_valid(&mut self, item: TrainingProgress, progress: Vec<ProgressType>) {
        // A batch's metric updates arrive before its render; training of the
        // next epoch may interleave, so commit only on the epoch's last batch.
        if epoch_done(&item) {
            self.commit_valid();
        }
        self.inner.render_valid(item, progress);
    }
}

impl MetricsRendererEvaluation for RecordingRenderer {
    fn update_test(&mut self, name: EvaluationName, state: MetricState) {
        self.inner.update_test(name, state);
    }

    fn render_test(&mut self, item: EvaluationProgress, progress: Vec<ProgressType>) {
        self.inner.render_test(item, progress);
    }
}

impl MetricsRenderer for RecordingRenderer {
    fn manual_close(&mut self) {
        self.inner.manual_close();
    }

    fn register_metric(&mut self, definition: MetricDefinition) {
        self.names.insert(
            format!("{:?}", definition.metric_id),
            definition.name.clone(),
        );
        self.inner.register_metric(definition);
    }
}
