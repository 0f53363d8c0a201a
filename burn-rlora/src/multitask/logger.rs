//! [`CheckedMetricLogger`]: burn-train's metric log files, with write errors
//! that stop the run instead of aborting the process.

use std::collections::{HashMap, HashSet};
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
///
/// A run resumed from checkpoint `n` trains epoch `n + 1` first, but
/// burn-train 0.21 numbers the updates of a split's first epoch 1 whatever
/// the checkpoint, so its file logger writes them over epoch 1's logs. This
/// one numbers that epoch [`starting_epoch`](Self::starting_epoch) (the
/// guard's, with `attach`), and the later ones as burn-train does.
pub struct CheckedMetricLogger {
    directory: PathBuf,
    interrupter: Interrupter,
    names: HashMap<MetricId, String>,
    files: HashMap<PathBuf, File>,
    last_epoch: Option<usize>,
    failed: bool,
    memory: InMemoryMetricLogger,
    starting_epoch: usize,
    summarized: HashSet<Split>,
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
            starting_epoch: 1,
            summarized: HashSet::new(),
        }
    }

    /// Number the first training and validation epoch `epoch` (at least 1),
    /// as for a run resumed from checkpoint `epoch - 1`.
    #[must_use]
    pub fn starting_epoch(mut self, epoch: usize) -> Self {
        self.starting_epoch = epoch.max(1);
        self
    }

    /// The epoch the updates of `split` that burn-train numbers `epoch`
    /// belong to.
    fn epoch_of(&self, epoch: usize, split: &Split) -> usize {
        let counted = matches!(split, Split::Train | Split::Valid);
        if counted && !self.summarized.contains(split) {
            self.starting_epoch
        } else {
            epoch
        }
    }

    /// Whether a write has failed (the run was then stopped).
    pub fn failed(&self) -> bool {
        self.failed
    }

    fn path(&self, name: &str, epoch: usize, split: &Split) -> PathBuf {
        metric_log_path(&self.directory, name, epoch, split)
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
        let epoch = self.epoch_of(epoch, split);
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
        self.summarized.insert(summary.split.clone());
        self.files.clear();
        self.memory.log_epoch_summary(summary);
    }
}

/// The file a metric log of `name` for `epoch` of `split` has under
/// `directory`: `<directory>/<split>/epoch-<epoch>/<name>.log` (spaces in
/// the name become `_`; a test split's tag is a folder of its own), as
/// [`CheckedMetricLogger`] and burn-train's `FileMetricLogger` write it.
pub fn metric_log_path(directory: &Path, name: &str, epoch: usize, split: &Split) -> PathBuf {
    let mut dir = directory.join(split.to_string());
    if let Split::Test(Some(tag)) = split {
        dir = dir.join(tag.trim().replace(' ', "-").to_lowercase());
    }
    dir.join(format!("epoch-{epoch}"))
        .join(format!("{}.log", name.replace(' ', "_")))
}

/// The entries of the metric log of `name` for `epoch` of `split` under
/// `directory` (see [`metric_log_path`]), one per logged update, in order:
/// what a run logged, read back, for example to rebuild the loss curve of
/// the epochs a resumed run trained before it was stopped.
///
/// ```no_run
/// use burn::train::metric::store::Split;
/// use burn_rlora::multitask::read_metric_log;
///
/// let losses = read_metric_log("runs/rlora-seed0".as_ref(), "Loss", 1, &Split::Train)?;
/// println!("{} training iterations logged", losses.len());
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
///
/// The file cannot be read (kind `NotFound` when it is not there), or a
/// line is not a numeric entry (kind `InvalidData`; the message names the
/// file and the line).
pub fn read_metric_log(
    directory: &Path,
    name: &str,
    epoch: usize,
    split: &Split,
) -> std::io::Result<Vec<NumericEntry>> {
    let path = metric_log_path(directory, name, epoch, split);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("reading the metric log {}: {e}", path.display()),
        )
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            NumericEntry::deserialize(line.trim()).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "the metric log {}, line {}: {line:?} is not a numeric entry ({e})",
                        path.display(),
                        i + 1
                    ),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "burn-rlora-metric-log-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn write(dir: &Path, name: &str, epoch: usize, split: &Split, text: &str) {
        let path = metric_log_path(dir, name, epoch, split);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn the_path_is_burn_trains_layout() {
        let dir = Path::new("/run");
        assert_eq!(
            metric_log_path(dir, "Loss", 3, &Split::Train),
            Path::new("/run/train/epoch-3/Loss.log")
        );
        assert_eq!(
            metric_log_path(dir, "Accuracy bbc news", 1, &Split::Valid),
            Path::new("/run/valid/epoch-1/Accuracy_bbc_news.log")
        );
    }

    /// What `logger` writes for `values` logged as burn-train numbers them:
    /// the first epoch 1, then each summarized epoch's number plus one.
    fn log_epochs(logger: &mut CheckedMetricLogger, first: usize, values: &[f64]) {
        use burn::train::metric::store::MetricsUpdate;
        use burn::train::metric::{MetricEntry, SerializedEntry};
        let id = MetricId::new(std::sync::Arc::new("loss".to_string()));
        let metric = super::super::TaskLossMetric::overall();
        logger.log_metric_definition(MetricDefinition::new(id.clone(), &metric));
        let mut store_epoch = 1;
        for (i, v) in values.iter().enumerate() {
            let entry = SerializedEntry::new(format!("{v}"), format!("{v},8"));
            let update = MetricsUpdate::new(vec![MetricEntry::new(id.clone(), entry)], vec![]);
            logger.log(update, store_epoch, &Split::Train);
            logger.log_epoch_summary(EpochSummary::new(first + i, Split::Train));
            store_epoch = first + i + 1;
        }
    }

    #[test]
    fn a_resumed_runs_first_epoch_is_logged_under_its_own_number() {
        let dir = temp("resumed");
        let mut logger = CheckedMetricLogger::new(&dir, Interrupter::new()).starting_epoch(3);
        log_epochs(&mut logger, 3, &[0.5, 0.25]);
        let read = |epoch| read_metric_log(&dir, "Loss", epoch, &Split::Train);
        assert_eq!(read(3).unwrap()[0].current(), 0.5);
        assert_eq!(read(4).unwrap()[0].current(), 0.25);
        assert_eq!(read(1).unwrap_err().kind(), std::io::ErrorKind::NotFound);

        let fresh = temp("fresh");
        let mut logger = CheckedMetricLogger::new(&fresh, Interrupter::new());
        log_epochs(&mut logger, 1, &[2.0, 1.0]);
        let read = |epoch| read_metric_log(&fresh, "Loss", epoch, &Split::Train);
        assert_eq!(read(1).unwrap()[0].current(), 2.0);
        assert_eq!(read(2).unwrap()[0].current(), 1.0);
        std::fs::remove_dir_all(&dir).ok();
        std::fs::remove_dir_all(&fresh).ok();
    }

    #[test]
    fn serialized_entries_read_back_exactly() {
        let dir = temp("roundtrip");
        let entries = [
            NumericEntry::Aggregated {
                aggregated_value: 4.977628012054369,
                count: 28,
            },
            NumericEntry::Value(0.1 + 0.2),
            NumericEntry::Aggregated {
                aggregated_value: -1e-300,
                count: 1,
            },
        ];
        let text: String = entries.iter().map(|e| e.serialize() + "\n").collect();
        write(&dir, "Loss", 2, &Split::Valid, &text);
        let back = read_metric_log(&dir, "Loss", 2, &Split::Valid).unwrap();
        assert_eq!(back.len(), 3);
        for (a, b) in entries.iter().zip(&back) {
            assert_eq!(a.serialize(), b.serialize());
            assert_eq!(a.current().to_bits(), b.current().to_bits());
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_missing_log_is_not_found_and_a_bad_line_is_named() {
        let dir = temp("errors");
        let missing = read_metric_log(&dir, "Loss", 1, &Split::Train).unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
        assert!(missing.to_string().contains("Loss.log"), "{missing}");

        write(&dir, "Loss", 1, &Split::Train, "1.5,8\n2.5,oops\n");
        let bad = read_metric_log(&dir, "Loss", 1, &Split::Train).unwrap_err();
        assert_eq!(bad.kind(), std::io::ErrorKind::InvalidData);
        assert!(bad.to_string().contains("line 2"), "{bad}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
