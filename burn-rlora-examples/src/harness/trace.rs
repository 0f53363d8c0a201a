//! Head similarity over the course of training: a [`SimilarityTrace`] that a
//! model's body carries and feeds from its training forward pass, so that the
//! paper's diversity measure can be followed step by step (does it rise for
//! zero-initialized heads and stay low for random ones?) without touching the
//! Learner.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use burn_rlora::HeadSimilarity;
use serde::{Deserialize, Serialize};

/// The mean pairwise similarity of `sim` where it is defined: `None` for one
/// head, or when a head is all zeros (as every zero-initialized head is
/// before the first step), which the cosine convention would report as 0.
///
/// ```
/// use burn_rlora::HeadSimilarity;
/// use burn_rlora_examples::harness::trace::defined_mean;
///
/// let zero_heads = HeadSimilarity::of_rows(&[0.0; 6], 2);
/// assert_eq!(zero_heads.mean_pairwise, Some(0.0));
/// assert_eq!(defined_mean(&zero_heads), None);
/// let heads = HeadSimilarity::of_rows(&[1.0, 0.0, 0.0, 1.0, 1.0, 0.0], 2);
/// assert_eq!(defined_mean(&heads), heads.mean_pairwise);
/// ```
pub fn defined_mean(sim: &HeadSimilarity) -> Option<f64> {
    let zero_head = (0..sim.num_heads).any(|i| sim.get(i, i) < 0.5);
    sim.mean_pairwise.filter(|_| !zero_head)
}

/// The mean pairwise head cosine similarity of every adapted layer at one
/// training step (`None` for a layer whose heads are all zero or that has one head).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TracePoint {
    /// Optimizer steps taken before the measurement (0: the initial adapter).
    pub step: usize,
    /// `(layer name, mean pairwise similarity)` per adapted layer.
    pub layers: Vec<(String, Option<f64>)>,
}

#[derive(Debug)]
struct TraceState {
    every: usize,
    forwards: usize,
    points: Vec<TracePoint>,
    /// Where each measured point is appended, one JSON line each (see
    /// [`SimilarityTrace::resume`]); dropped after a failed write.
    sink: Option<File>,
}

impl TraceState {
    fn push(&mut self, point: TracePoint) {
        if let Some(file) = &mut self.sink {
            let line = serde_json::to_string(&point).unwrap_or_default();
            if writeln!(file, "{line}").is_err() {
                self.sink = None;
            }
        }
        self.points.push(point);
    }
}

/// A shared, clonable recorder of [`TracePoint`]s, measured every `every`
/// training steps (and before the first).
///
/// It counts the training forward passes a body reports through
/// [`on_training_forward`](Self::on_training_forward): one per optimizer step
/// on one device. Clones share one record, so the copy inside a model that
/// the Learner trains (and the inference copy it returns) report to the
/// handle the caller kept. The default value records nothing.
///
/// ```
/// use burn_rlora_examples::harness::trace::SimilarityTrace;
///
/// let trace = SimilarityTrace::every(2);
/// let in_model = trace.clone();
/// for step in 0..5 {
///     in_model.on_training_forward(|| vec![("L0".into(), Some(step as f64))]);
/// }
/// let steps: Vec<usize> = trace.points().iter().map(|p| p.step).collect();
/// assert_eq!(steps, [0, 2, 4]);
/// ```
#[derive(Debug, Clone, Default)]
pub struct SimilarityTrace {
    state: Option<Arc<Mutex<TraceState>>>,
}

impl SimilarityTrace {
    /// A trace measured before the first step and then every `every` steps
    /// (`every` of 0 records nothing, like [`SimilarityTrace::default`]).
    pub fn every(every: usize) -> Self {
        Self {
            state: (every > 0).then(|| {
                Arc::new(Mutex::new(TraceState {
                    every,
                    forwards: 0,
                    points: Vec::new(),
                    sink: None,
                }))
            }),
        }
    }

    /// Whether this trace records anything.
    pub fn is_on(&self) -> bool {
        self.state.is_some()
    }

    /// Count one training forward pass; when a measurement is due (before the
    /// first step, then every `every` steps), record what `measure` returns.
    /// `measure` is not called otherwise.
    pub fn on_training_forward(&self, measure: impl FnOnce() -> Vec<(String, Option<f64>)>) {
        let Some(state) = &self.state else { return };
        let Ok(mut s) = state.lock() else { return };
        let step = s.forwards;
        s.forwards += 1;
        if step % s.every == 0 {
            let layers = measure();
            s.push(TracePoint { step, layers });
        }
    }

    /// Continue a run at optimizer step `step` (0 for a fresh start),
    /// keeping its points in the file `path`: the points recorded there
    /// before `step` (by an earlier invocation of the run, stopped after its
    /// checkpoint at `step`) are read back, and the file is rewritten with
    /// them; each point measured from now on is appended to it, and steps
    /// count from `step`, so the trace is the one an uninterrupted run
    /// records. Returns whether the earlier points were all there: `false`
    /// (the trace then starts at `step`) when the file is missing, damaged,
    /// or lacks a point that was due. Does nothing for a trace that is off.
    ///
    /// # Errors
    ///
    /// Rewriting the file. A point that later fails to write is kept in
    /// memory; only a later resume loses it (and says so).
    pub fn resume(&self, path: &Path, step: usize) -> std::io::Result<bool> {
        let Some(state) = &self.state else {
            return Ok(true);
        };
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        let due: Vec<usize> = (0..step).step_by(s.every).collect();
        let earlier = earlier_points(path, step);
        let complete = earlier.iter().map(|p| p.step).eq(due.iter().copied());
        let kept = if complete { earlier } else { Vec::new() };
        let mut file = File::create(path)?;
        for point in &kept {
            writeln!(file, "{}", serde_json::to_string(point)?)?;
        }
        s.forwards = step;
        s.points = kept;
        s.sink = Some(file);
        Ok(complete)
    }

    /// Record a measurement taken outside the forward pass (for example of
    /// the trained model, after the last step).
    pub fn record(&self, step: usize, layers: Vec<(String, Option<f64>)>) {
        if let Some(Ok(mut s)) = self.state.as_ref().map(|s| s.lock()) {
            s.points.push(TracePoint { step, layers });
        }
    }

    /// The points recorded so far, in the order they were taken.
    pub fn points(&self) -> Vec<TracePoint> {
        self.state
            .as_ref()
            .and_then(|s| s.lock().ok().map(|s| s.points.clone()))
            .unwrap_or_default()
    }
}

/// The points of the trace file `path` taken before `step`, in order, up
/// to the first line that does not parse (a kill can cut the last one);
/// none when the file cannot be read.
fn earlier_points(path: &Path, step: usize) -> Vec<TracePoint> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .map_while(|line| serde_json::from_str::<TracePoint>(line).ok())
        .filter(|p| p.step < step)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!(
            "burn-rlora-trace-{name}-{}.jsonl",
            std::process::id()
        ))
    }

    /// `steps` training forwards of `trace`, each measuring its step.
    fn train(trace: &SimilarityTrace, steps: std::ops::Range<usize>) {
        for step in steps {
            trace.on_training_forward(|| vec![("L0".into(), Some(step as f64))]);
        }
    }

    #[test]
    fn a_resumed_trace_equals_an_uninterrupted_one() {
        let straight = SimilarityTrace::every(4);
        let file = temp("straight");
        assert!(straight.resume(&file, 0).unwrap());
        train(&straight, 0..20);

        // Stopped in the middle of its second epoch (steps 10..20), after
        // the checkpoint at step 10: the points after 10 are measured again.
        let path = temp("resumed");
        let first = SimilarityTrace::every(4);
        assert!(first.resume(&path, 0).unwrap());
        train(&first, 0..15);
        let resumed = SimilarityTrace::every(4);
        assert!(resumed.resume(&path, 10).unwrap());
        train(&resumed, 10..20);
        assert_eq!(resumed.points(), straight.points());
        let steps: Vec<usize> = resumed.points().iter().map(|p| p.step).collect();
        assert_eq!(steps, [0, 4, 8, 12, 16]);
        // The file holds them too, for a later resume.
        let again = SimilarityTrace::every(4);
        assert!(again.resume(&path, 20).unwrap());
        assert_eq!(again.points(), straight.points());
        for f in [file, path] {
            std::fs::remove_file(f).ok();
        }
    }

    #[test]
    fn points_read_back_from_the_file_are_bit_exact() {
        let path = temp("exact");
        let first = SimilarityTrace::every(1);
        first.resume(&path, 0).unwrap();
        // Values whose shortest decimal form a lossy parser rounds wrongly.
        let mut x = 0.1_f64;
        for step in 0..200 {
            x = (x * 1.000_123_456_789 + 1e-17).fract() - 0.5 * f64::from(step % 2);
            first.on_training_forward(|| vec![("L0".into(), Some(x * 1e-2))]);
        }
        let again = SimilarityTrace::every(1);
        assert!(again.resume(&path, 200).unwrap());
        let bits = |t: &SimilarityTrace| -> Vec<u64> {
            t.points()
                .iter()
                .map(|p| p.layers[0].1.unwrap().to_bits())
                .collect()
        };
        assert_eq!(bits(&again), bits(&first));
        std::fs::remove_file(path).ok();
    }

    #[test]
    fn a_missing_or_damaged_file_starts_the_trace_at_the_checkpoint() {
        let path = temp("damaged");
        let trace = SimilarityTrace::every(4);
        assert!(!trace.resume(&path, 10).unwrap(), "no file");
        assert!(trace.points().is_empty());
        train(&trace, 10..13);
        assert_eq!(trace.points()[0].step, 12);

        let first = SimilarityTrace::every(4);
        first.resume(&path, 0).unwrap();
        train(&first, 0..10);
        let text = std::fs::read_to_string(&path).unwrap();
        let cut: Vec<&str> = text.lines().collect();
        // The point of step 4 lost: the ones before the checkpoint are not all there.
        std::fs::write(&path, format!("{}\n{}\n", cut[0], cut[2])).unwrap();
        let resumed = SimilarityTrace::every(4);
        assert!(!resumed.resume(&path, 10).unwrap());
        assert!(resumed.points().is_empty());
        // A cut last line after the checkpoint costs nothing.
        std::fs::write(&path, format!("{}\n{}\n{}\n{{\"st", cut[0], cut[1], cut[2])).unwrap();
        let resumed = SimilarityTrace::every(4);
        assert!(resumed.resume(&path, 10).unwrap());
        assert_eq!(resumed.points().len(), 3);
        std::fs::remove_file(path).ok();
    }

    #[test]
    fn measures_only_when_due_and_shares_the_record() {
        let trace = SimilarityTrace::every(3);
        let copy = trace.clone();
        let mut measured = 0;
        for _ in 0..7 {
            copy.on_training_forward(|| {
                measured += 1;
                vec![("a".into(), None)]
            });
        }
        assert_eq!(measured, 3);
        let steps: Vec<usize> = trace.points().iter().map(|p| p.step).collect();
        assert_eq!(steps, [0, 3, 6]);
        trace.record(7, vec![("a".into(), Some(0.5))]);
        assert_eq!(copy.points().last().unwrap().layers[0].1, Some(0.5));
    }

    #[test]
    fn off_records_nothing() {
        for trace in [SimilarityTrace::default(), SimilarityTrace::every(0)] {
            assert!(!trace.is_on());
            trace.on_training_forward(|| panic!("measured while off"));
            trace.record(1, vec![]);
            assert!(trace.points().is_empty());
        }
    }
}
