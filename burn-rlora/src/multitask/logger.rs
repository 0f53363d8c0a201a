//! [`CheckedMetricLogger`]: burn-train's metric log files, with write errors
//! that stop the run instead of aborting the process.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::train::logger::{InMemoryMetricLogger, MetricLogger};
use burn::train::metric::store::{EpochSummary, MetricsUpdate, Split};
use burn::train::metric::{MetricDefinition, MetricId, NumericEntry};
use burn::train::Interrupter;

/// A metric logger that writes the files burn-train's `FileMetricLogger`
/// writes (`<dir>/<split>/epoch-<n>/<Metric>.log`, one serialized entry per
/// line) and turns a failed write into a stopped run.
///
/// burn-train's own file logger `expect`s every write, so a full disk panics
/// its logger thread and aborts the process in the middle of a run. This one
/// writes without buffering (nothing is left to fail silently when a file is
/// dropped), and on the first error — creating a directory or a file, or
/// writing a line — stops the run through `interrupter` with a message that
/// names the file, then writes nothing more. With the interrupter of a
/// [`DivergenceGuard`](super::DivergenceGuard),
/// [`check`](super::DivergenceGuard::check) reports it as
/// [`RunStopped::Interrupted`](super::RunStopped::Interrupted).
///
/// Numbers read back by burn-train (early stopping, metric-based
/// checkpointing) come from a copy kept in memory, so they do not depend on
/// the files. [`DivergenceGuard::attach`](super::DivergenceGuard::attach)
/// registers one.
pub struct CheckedMetricLogger {
    directory: PathBuf,
    interrupter: Interrupter,
    names: HashMap<MetricId, String>,
    files: HashMap<PathBuf, File>,
    last_epoch: Option<usize>,
    failed: bool,
    memory: InMemoryMetricLogger,
}

impl CheckedMetricLogger {
    /// A logger writing under `directory` that stops runs through `interrupter`.
    pub fn new(directory: impl AsRef<Path>, interrupter: Interrupter) -> Self {
        Self {
            directory: directory.as_ref().to_path_buf(),
            interrupter,
            names: HashMap::new(),
            files: HashMap::new(),
            last_epoch: None,
            failed: false,
            memory: InMemoryMetricLogger::new(),
        }
    }

    /// Whether a write has failed (the run was then stopped).
    pub fn failed(&self) -> bool {
        self.failed
    }

    fn path(&self, name: &str, epoch: usize, split: &Split) -> PathBuf {
        let mut dir = self.directory.join(split.to_string());
        if let Split::Test(Some(tag)) = split {
            dir = dir.join(tag.trim().replace(' ', "-").to_lowercase());
        }
        dir.join(format!("epoch-{epoch}"))
            .join(format!("{}.log", name.replace(' ', "_")))
    }

    fn write_line(&mut self, path: PathBuf, line: &str) {
        let result = match self.files.get_mut(&path) {
            Some(file) => writeln!(file, "{line}"),
            None => path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| File::create(&path))
                .and_then(|mut file| {
                    writeln!(file, "{line}")?;
                    self.files.insert(path.clone(), file);
                    Ok(())
                }),
        };
        if let Err(e) = result {
            self.failed = true;
            self.files.clear();
            if !self.interrupter.should_stop() {
                self.interrupter.stop(Some(&format!(
                    "writing the metric log {}: {e}",
                    path.display()
                )));
            }
        }
    }
}

impl MetricLogger for CheckedMetricLogger {
    fn log(&mut self, update: MetricsUpdate, epoch: usize, split: &Split) {
        if self.last_epoch != Some(epoch) {
            self.files.clear();
            self.last_epoch = Some(epoch);
        }
        if !self.failed {
            let entries = update
                .entries
                .iter()
                .chain(update.entries_numeric.iter().map(|u| &u.entry));
            let lines: Vec<(PathBuf, String)> = entries
                .filter_map(|entry| {
                    let name = self.names.get(&entry.metric_id)?;
                    Some((
                        self.path(name, epoch, split),
                        entry.serialized_entry.serialized.clone(),
                    ))
                })
                .collect();
            for (path, line) in lines {
                if self.failed {
                    break;
                }
                self.write_line(path, &line);
            }
        }
        self.memory.log(update, epoch, split);
    }

    fn read_numeric(
        &mut self,
        name: &str,
        epoch: usize,
        split: &Split,
    ) -> Result<Vec<NumericEntry>, String> {
        self.memory.read_numeric(name, epoch, split)
    }

    fn log_metric_definition(&mut self, definition: MetricDefinition) {
        self.names
            .insert(definition.metric_id.clone(), definition.name.clone());
        self.memory.log_metric_definition(definition);
    }

    fn log_epoch_summary(&mut self, summary: EpochSummary) {
        self.files.clear();
        self.memory.log_epoch_summary(summary);
    }
}
