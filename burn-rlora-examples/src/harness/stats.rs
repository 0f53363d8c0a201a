//! Paired comparisons of two methods over seeds: the mean difference and its
//! 95% confidence interval by the paired t distribution.
//!
//! Within a comparison every method is trained with the same seeds on the
//! same data, so run `k` of method `a` and run `k` of method `b` share their
//! data, initial draw of everything but the adapter's own layout, batch order
//! and task mix. The differences `a_k - b_k` are then independent draws, and
//! the interval `mean ± t(0.975, n-1) · sd / sqrt(n)` holds the true mean
//! difference with 95% probability (assuming roughly normal differences;
//! with 20 or more pairs the t interval is robust to moderate skew).

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, StudentsT};

/// The mean paired difference of one method against a baseline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PairedDifference {
    /// Number of pairs (seeds both methods ran).
    pub pairs: usize,
    /// Mean of `method - baseline` over the pairs.
    pub mean: f64,
    /// Sample standard deviation of the differences (0 for one pair).
    pub std: f64,
    /// 95% confidence interval of the mean difference, paired t; `None`
    /// with fewer than two pairs.
    pub ci95: Option<(f64, f64)>,
}

impl PairedDifference {
    /// The paired difference of `method` against `baseline`, both given as
    /// `(seed, value)`; pairs are matched by seed and unmatched seeds are
    /// left out. `None` when no seed is shared or a value is not finite.
    ///
    /// ```
    /// use burn_rlora_examples::harness::stats::PairedDifference;
    ///
    /// let a = [(0, 71.0), (1, 73.0), (2, 72.0)];
    /// let b = [(0, 70.0), (1, 71.0), (2, 70.5), (3, 99.0)];
    /// let d = PairedDifference::of(&a, &b).unwrap();
    /// assert_eq!(d.pairs, 3);
    /// assert!((d.mean - 1.5).abs() < 1e-12);
    /// let (lo, hi) = d.ci95.unwrap();
    /// // sd 0.5, t(0.975, 2) = 4.303: 1.5 ± 1.242
    /// assert!((lo - 0.2579).abs() < 1e-3 && (hi - 2.7421).abs() < 1e-3);
    /// ```
    pub fn of(method: &[(u64, f64)], baseline: &[(u64, f64)]) -> Option<Self> {
        let diffs: Vec<f64> = method
            .iter()
            .filter_map(|(seed, a)| baseline.iter().find(|(s, _)| s == seed).map(|(_, b)| a - b))
            .collect();
        if diffs.is_empty() || diffs.iter().any(|d| !d.is_finite()) {
            return None;
        }
        let n = diffs.len();
        let mean = diffs.iter().sum::<f64>() / n as f64;
        let std = if n > 1 {
            (diffs.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        let ci95 = (n > 1).then(|| {
            let half = t_quantile_975(n - 1) * std / (n as f64).sqrt();
            (mean - half, mean + half)
        });
        Some(Self {
            pairs: n,
            mean,
            std,
            ci95,
        })
    }

    /// Whether the interval excludes zero (the difference is significant at 5%).
    pub fn excludes_zero(&self) -> bool {
        self.ci95.is_some_and(|(lo, hi)| lo > 0.0 || hi < 0.0)
    }

    /// `+1.50 [+0.26, +2.74]`, or `+1.50 (1 pair)` without an interval.
    pub fn show(&self) -> String {
        match self.ci95 {
            Some((lo, hi)) => format!("{:+.2} [{lo:+.2}, {hi:+.2}]", self.mean),
            None => format!("{:+.2} (1 pair)", self.mean),
        }
    }
}

/// The 0.975 quantile of Student's t with `df` degrees of freedom (`df >= 1`).
pub fn t_quantile_975(df: usize) -> f64 {
    StudentsT::new(0.0, 1.0, df.max(1) as f64)
        .map(|t| t.inverse_cdf(0.975))
        .unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_match_the_tables() {
        // Two-sided 95% critical values from standard t tables.
        for (df, want) in [
            (1, 12.706),
            (2, 4.303),
            (5, 2.571),
            (19, 2.093),
            (100, 1.984),
        ] {
            assert!((t_quantile_975(df) - want).abs() < 1e-3, "df {df}");
        }
    }

    #[test]
    fn pairs_by_seed_and_handles_edge_cases() {
        // Same differences whatever the order of the runs.
        let a = [(2, 5.0), (0, 3.0), (1, 4.0)];
        let b = [(0, 1.0), (1, 1.0), (2, 1.0)];
        let d = PairedDifference::of(&a, &b).unwrap();
        assert_eq!(d.pairs, 3);
        assert!((d.mean - 3.0).abs() < 1e-12);
        assert!((d.std - 1.0).abs() < 1e-12);
        assert!(d.excludes_zero());
        // Identical differences: a zero-width interval.
        let c = [(0, 2.0), (1, 2.0)];
        let d = PairedDifference::of(&c, &b).unwrap();
        assert_eq!(d.ci95, Some((1.0, 1.0)));
        // One pair: no interval; no shared seed or a NaN: nothing.
        let one = PairedDifference::of(&[(7, 1.0)], &[(7, 0.5)]).unwrap();
        assert_eq!(one.ci95, None);
        assert!(!one.excludes_zero());
        assert_eq!(one.show(), "+0.50 (1 pair)");
        assert!(PairedDifference::of(&[(9, 1.0)], &b).is_none());
        assert!(PairedDifference::of(&[(0, f64::NAN)], &b).is_none());
    }

    #[test]
    fn a_difference_of_noise_usually_covers_zero() {
        // Deterministic pseudo-noise with mean 0: the interval covers 0.
        let a: Vec<(u64, f64)> = (0..20).map(|k| (k, ((k * 37 % 11) as f64) - 5.0)).collect();
        let b: Vec<(u64, f64)> = (0..20).map(|k| (k, 0.0)).collect();
        let d = PairedDifference::of(&a, &b).unwrap();
        let (lo, hi) = d.ci95.unwrap();
        assert!(lo < 0.0 && hi > 0.0, "{d:?}");
        assert!(!d.excludes_zero());
    }
}
