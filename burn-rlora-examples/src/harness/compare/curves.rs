//! A run's loss curves, read back from the metric logs its `Learner` wrote,
//! so that a resumed run reports the epochs it trained before it stopped.

use std::io::{Error, ErrorKind, Result};
use std::path::Path;

use burn::train::metric::store::Split;
use burn::train::metric::NumericEntry;
use burn_rlora::multitask::read_metric_log;

/// The name of the overall loss metric, as the logs name it.
const LOSS: &str = "Loss";

/// The training loss per iteration and the validation loss per epoch of
/// epochs `1..=epochs`, from the `Loss` logs under `dir` (the run's
/// directory), with full precision.
///
/// Each epoch's training log must hold `steps_per_epoch` entries. An
/// epoch's validation loss is the mean of its batches weighted by their
/// counts, as burn-train aggregates it; a run without validation logs
/// (an empty validation split) has no validation curve.
///
/// # Errors
///
/// A training log missing, unreadable, or of another length; validation
/// logs for some epochs only.
pub fn logged_loss_curves(
    dir: &Path,
    epochs: usize,
    steps_per_epoch: usize,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let mut train = Vec::with_capacity(epochs * steps_per_epoch);
    let mut valid = Vec::with_capacity(epochs);
    let mut missing_valid = Vec::new();
    for epoch in 1..=epochs {
        let entries = read_metric_log(dir, LOSS, epoch, &Split::Train)?;
        if entries.len() != steps_per_epoch {
            return Err(Error::new(
                ErrorKind::InvalidData,
                format!(
                    "the training loss log of epoch {epoch} holds {} iterations, not {steps_per_epoch}",
                    entries.len()
                ),
            ));
        }
        train.extend(entries.iter().map(NumericEntry::current));
        match read_metric_log(dir, LOSS, epoch, &Split::Valid) {
            Ok(entries) => valid.push(weighted_mean(&entries).ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidData,
                    format!("the validation loss log of epoch {epoch} is empty"),
                )
            })?),
            Err(e) if e.kind() == ErrorKind::NotFound => missing_valid.push(epoch),
            Err(e) => return Err(e),
        }
    }
    if !missing_valid.is_empty() && !valid.is_empty() {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!("no validation loss log for epochs {missing_valid:?}"),
        ));
    }
    Ok((train, valid))
}

/// The mean of `entries` weighted by their counts (a plain value counts
/// once); `None` when they weigh nothing.
fn weighted_mean(entries: &[NumericEntry]) -> Option<f64> {
    let (sum, weight) = entries.iter().fold((0.0, 0.0), |(sum, weight), e| {
        let w = match e {
            NumericEntry::Value(_) => 1.0,
            NumericEntry::Aggregated { count, .. } => *count as f64,
        };
        (sum + w * e.current(), weight + w)
    });
    (weight > 0.0).then(|| sum / weight)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn_rlora::multitask::metric_log_path;
    use std::path::PathBuf;

    fn temp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("burn-rlora-curves-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn write(dir: &Path, epoch: usize, split: &Split, lines: &[&str]) {
        let path = metric_log_path(dir, LOSS, epoch, split);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, lines.join("\n") + "\n").unwrap();
    }

    #[test]
    fn curves_are_every_iteration_and_the_weighted_epoch_means() {
        let dir = temp("ok");
        write(&dir, 1, &Split::Train, &["4.5,28", "1.25,24"]);
        write(&dir, 2, &Split::Train, &["0.5,30", "0.25"]);
        write(&dir, 1, &Split::Valid, &["1.0,31", "2.0,27"]);
        write(&dir, 2, &Split::Valid, &["0.5,10"]);
        let (train, valid) = logged_loss_curves(&dir, 2, 2).unwrap();
        assert_eq!(train, [4.5, 1.25, 0.5, 0.25]);
        // (1.0 * 31 + 2.0 * 27) / 58
        assert!((valid[0] - 85.0 / 58.0).abs() < 1e-15, "{valid:?}");
        assert_eq!(valid[1], 0.5);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn no_validation_logs_mean_no_validation_curve() {
        let dir = temp("novalid");
        write(&dir, 1, &Split::Train, &["2.0,8"]);
        assert_eq!(logged_loss_curves(&dir, 1, 1).unwrap(), (vec![2.0], vec![]));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn missing_short_or_partial_logs_are_errors() {
        let dir = temp("bad");
        let e = logged_loss_curves(&dir, 1, 1).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");

        write(&dir, 1, &Split::Train, &["2.0,8", "1.0,8"]);
        write(&dir, 2, &Split::Train, &["1.5,8"]);
        let e = logged_loss_curves(&dir, 2, 2).unwrap_err();
        assert!(
            e.to_string().contains("epoch 2 holds 1 iterations, not 2"),
            "{e}"
        );

        write(&dir, 2, &Split::Train, &["1.5,8", "1.0,8"]);
        write(&dir, 2, &Split::Valid, &["1.5,8"]);
        let e = logged_loss_curves(&dir, 2, 2).unwrap_err();
        assert!(e.to_string().contains("epochs [1]"), "{e}");

        write(&dir, 1, &Split::Valid, &[""]);
        let e = logged_loss_curves(&dir, 2, 2).unwrap_err();
        assert!(e.to_string().contains("epoch 1 is empty"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
