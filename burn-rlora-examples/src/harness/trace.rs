//! Head similarity over the course of training: a [`SimilarityTrace`] that a
//! model's body carries and feeds from its training forward pass, so that the
//! paper's diversity measure can be followed step by step (does it rise for
//! zero-initialized heads and stay low for random ones?) without touching the
//! Learner.

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
            s.points.push(TracePoint { step, layers });
        }
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

#[cfg(test)]
mod tests {
    use super::*;

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
