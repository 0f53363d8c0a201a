//! How many examples each task contributes to an epoch.

use serde::{Deserialize, Serialize};

/// How tasks are mixed in a [`MultiTaskDataset`](super::MultiTaskDataset).
///
/// Every strategy has the same epoch size, the total number of examples
/// `sum_t n_t` (rounded down to a multiple of the task count for
/// [`Uniform`](Self::Uniform)); they differ in how that budget is split:
/// task `t` contributes `round(p_t * epoch)` examples (largest-remainder
/// rounding), drawn without replacement from a seeded permutation of the
/// task and wrapping around when a small task is up-sampled.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum SamplingStrategy {
    /// `p_t = n_t / sum n`: every example exactly once per epoch.
    Proportional,
    /// `p_t ∝ n_t^(1/T)`: `T = 1` is proportional, larger `T` up-samples small tasks.
    Temperature(f64),
    /// `p_t = 1/K`, interleaved round-robin over the tasks.
    Uniform,
}

impl SamplingStrategy {
    /// The probability of each task, from the task sizes.
    ///
    /// Tasks of size 0 get probability 0. Returns `None` when every task is
    /// empty or the temperature is not a positive finite number.
    pub fn probabilities(&self, sizes: &[usize]) -> Option<Vec<f64>> {
        let weights: Vec<f64> = match *self {
            SamplingStrategy::Proportional => sizes.iter().map(|&n| n as f64).collect(),
            SamplingStrategy::Temperature(t) => {
                if !t.is_finite() || t <= 0.0 {
                    return None;
                }
                temperature_weights(sizes, t)
            }
            SamplingStrategy::Uniform => sizes
                .iter()
                .map(|&n| if n == 0 { 0.0 } else { 1.0 })
                .collect(),
        };
        let total: f64 = weights.iter().sum();
        (total > 0.0 && total.is_finite()).then(|| weights.iter().map(|w| w / total).collect())
    }

    /// The number of examples each task contributes to one epoch.
    pub fn counts(&self, sizes: &[usize]) -> Option<Vec<usize>> {
        self.counts_for(sizes, sizes.iter().sum())
    }

    /// The number of examples each task contributes to an epoch of `epoch`
    /// examples (for [`Uniform`](Self::Uniform), rounded down to a multiple
    /// of the number of non-empty tasks).
    pub fn counts_for(&self, sizes: &[usize], epoch: usize) -> Option<Vec<usize>> {
        let probs = self.probabilities(sizes)?;
        let live = sizes.iter().filter(|&&n| n > 0).count();
        let mut epoch = epoch;
        if matches!(self, SamplingStrategy::Uniform) {
            epoch -= epoch % live.max(1);
        }
        Some(largest_remainder(&probs, epoch))
    }
}

/// `n_t^(1/T)` scaled by the largest, computed in log space so that no
/// temperature overflows: as `T -> 0` the weight goes to the largest tasks
/// alone, as `T -> inf` it is uniform over the non-empty tasks.
fn temperature_weights(sizes: &[usize], t: f64) -> Vec<f64> {
    let logs: Vec<Option<f64>> = sizes
        .iter()
        .map(|&n| (n > 0).then(|| (n as f64).ln() / t))
        .collect();
    let max = logs
        .iter()
        .flatten()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    if max.is_infinite() && max > 0.0 {
        // ln(n) / T overflowed: the limit T -> 0, the largest tasks only.
        let largest = sizes.iter().copied().max().unwrap_or(0);
        return sizes
            .iter()
            .map(|&n| if n == largest { 1.0 } else { 0.0 })
            .collect();
    }
    logs.iter()
        .map(|l| l.map_or(0.0, |l| (l - max).exp()))
        .collect()
}

/// Split `total` into integers proportional to `probs`, summing exactly to
/// `total` (largest-remainder rounding).
///
/// Every entry first gets `floor(p_i * total)`; the units still missing go,
/// one each, to the entries with the largest fractional parts `p_i * total -
/// floor(p_i * total)`, ties to the lower index. An entry with `p_i <= 0`
/// never gets a rounding unit. `probs` should sum to 1 (as from
/// [`SamplingStrategy::probabilities`]); the result sums to `total` when it does.
///
/// ```
/// use burn_rlora::multitask::largest_remainder;
///
/// // 10 * [0.45, 0.35, 0.2] = [4.5, 3.5, 2]: the two halves tie, the first wins.
/// assert_eq!(largest_remainder(&[0.45, 0.35, 0.2], 10), vec![5, 3, 2]);
/// assert_eq!(largest_remainder(&[0.5, 0.0, 0.5], 3), vec![2, 0, 1]);
/// ```
pub fn largest_remainder(probs: &[f64], total: usize) -> Vec<usize> {
    let exact: Vec<f64> = probs.iter().map(|p| p * total as f64).collect();
    let mut counts: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| {
        let (ra, rb) = (exact[a] - exact[a].floor(), exact[b] - exact[b].floor());
        rb.partial_cmp(&ra)
            .unwrap_or(core::cmp::Ordering::Equal)
            .then(a.cmp(&b))
    });
    let missing = total.saturating_sub(counts.iter().sum());
    for &i in order.iter().filter(|&&i| probs[i] > 0.0).take(missing) {
        counts[i] += 1;
    }
    counts
}
