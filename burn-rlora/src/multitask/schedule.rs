//! [`WarmupCosineLr`]: linear warm-up, then cosine decay (the reference's schedule).

use burn::lr_scheduler::LrScheduler;
use burn::optim::LearningRate;
use burn::tensor::backend::Backend;

/// Linear warm-up from 0 to `peak` over `warmup` steps, then cosine decay to
/// `min_lr` at step `total`, and `min_lr` after that.
///
/// The reference trains with `warmup = 3%` of the steps. Step `k` (1-based,
/// the value returned by the `k`-th call of `step`) has
///
/// ```text
/// lr(k) = peak * k / warmup                                      for k <= warmup
/// lr(k) = min + (peak - min) * (1 + cos(pi * (k - warmup) / (total - warmup))) / 2
/// ```
///
/// ```
/// use burn::lr_scheduler::LrScheduler;
/// use burn_rlora::multitask::WarmupCosineLr;
///
/// let mut lr = WarmupCosineLr::new(1e-3, 0.0, 2, 4);
/// let steps: Vec<f64> = (0..5).map(|_| lr.step()).collect();
/// assert_eq!(steps[0], 5e-4);
/// assert_eq!(steps[1], 1e-3);
/// assert!((steps[2] - 5e-4).abs() < 1e-12);
/// assert!(steps[3].abs() < 1e-12);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WarmupCosineLr {
    peak: LearningRate,
    min_lr: LearningRate,
    warmup: usize,
    total: usize,
    step: usize,
}

impl WarmupCosineLr {
    /// A schedule peaking at `peak` after `warmup` steps and ending at `min_lr`
    /// after `total` steps. `warmup` is clamped to `total`.
    pub fn new(peak: LearningRate, min_lr: LearningRate, warmup: usize, total: usize) -> Self {
        Self {
            peak,
            min_lr,
            warmup: warmup.min(total),
            total,
            step: 0,
        }
    }

    /// The rate at step `k` (1-based).
    pub fn at(&self, k: usize) -> LearningRate {
        if k <= self.warmup && self.warmup > 0 {
            return self.peak * k as f64 / self.warmup as f64;
        }
        if k >= self.total {
            return self.min_lr;
        }
        let progress = (k - self.warmup) as f64 / (self.total - self.warmup) as f64;
        self.min_lr
            + (self.peak - self.min_lr) * 0.5 * (1.0 + (core::f64::consts::PI * progress).cos())
    }
}

impl LrScheduler for WarmupCosineLr {
    type Record<B: Backend> = usize;

    fn step(&mut self) -> LearningRate {
        self.step += 1;
        self.at(self.step)
    }

    fn to_record<B: Backend>(&self) -> Self::Record<B> {
        self.step
    }

    fn load_record<B: Backend>(mut self, record: Self::Record<B>) -> Self {
        self.step = record;
        self
    }
}
