//! Embedded multi-task data: a fixed "pretrained" network and tasks that each
//! need their own low-rank change of it, in four [`Setting`]s.
//!
//! # The generator
//!
//! All of it is drawn on the host from one seeded RNG (`data_seed`), so it is
//! the same on every backend and machine:
//!
//! * **The pretrained base**: a two-layer network
//!   `h(x) = gelu(W2 gelu(W1 x + b1) + b2)` with `x ∈ R^32`, hidden and
//!   feature width 64, Kaiming-style random weights. The student's body starts
//!   from exactly these frozen weights.
//! * **Tasks.** Task `t` has its own *teacher* — the base with rank-2 changes
//!   `W1 + U1_t V1_t^T` and `W2 + U2_t V2_t^T` (`U` on the input side, `V` on
//!   the output side) — and its own read-out `R_t` (64 x C_t). The label is
//!   `argmax(h_t(x) R_t)`, after centring each class's logit over the task's
//!   examples so the classes are balanced.
//! * **The student** sees only `x`, the task id (to pick its own linear head)
//!   and the label. Its adapters sit on both base layers; the router of a
//!   multi-head method sees only what reaches its layer, never the task id.
//!
//! # The settings
//!
//! * **`clusters`** (the default of the `multitask` binary). Task `t` draws
//!   `x ~ N(mu_t, I)` (`|mu_t| = 1.5`, a random direction per task), so the
//!   input region hints at the task. Tasks `pos` and `neg` need opposite
//!   changes (`Delta_neg = -Delta_pos`) and share a read-out; `wide`
//!   (5 classes) and `small` (2 classes, few examples) have independent
//!   changes. Train sizes 6400 / 4800 / 3200 / 1200.
//! * **`conflict`**, the controlled test. Four 4-class tasks of 2400 training
//!   examples, all drawing `x ~ N(0, I)`: no input region identifies a task.
//!   They share the input side of their changes (`U1`, `U2`: what to read)
//!   and each has its own output side (`V1_t`, `V2_t`: what to write), the
//!   structure multi-head LoRA assumes (a shared `A`, a `B` per kind of
//!   knowledge). One shared adapter has to write one compromise of four
//!   different changes for every example.
//! * **`conflict-cued`**: `conflict` plus a task cue: the last
//!   [`CUE_DIMS`] coordinates of `x` are a one-hot code of the task (value
//!   3), the same for all of its examples, as the instruction in a language
//!   model's prompt says which task a token belongs to. The cue is part of
//!   the teachers' input too, but by itself says nothing about the label.
//! * **`agree`**, the control: as `conflict-cued`, but all four tasks need
//!   the same change (one `U`, one `V`); only their read-outs differ.
//!
//! The held-out split is 400 examples per task from the same generator, and
//! 10% of each training set validates.
//!
//! # Expected outcomes, written before any run of these settings
//!
//! The paper's mechanism: several `B` heads can hold different tasks'
//! changes, and the router mixes them per token; zero-initialized heads
//! (HydraLoRA) receive the same gradients and stay alike, random heads with
//! their own dropout masks (R-LoRA) stay diverse and so use their capacity.
//! At the comparison's budget (4 heads of rank 4 against LoRA of rank 12,
//! the `multitask` binary's defaults), the expectations are:
//!
//! * **`conflict`**: the router cannot tell the tasks apart, so no head can
//!   be kept for one task, and every method has to write one compromise
//!   change. *Expected: no multi-head method beats LoRA beyond the interval
//!   (the mechanism has nothing to act on); head similarity lower for R-LoRA
//!   than for HydraLoRA.*
//! * **`conflict-cued`**: the cue lets the router send each task to its own
//!   mix of heads, which can then write that task's change. *Expected:
//!   R-LoRA and HydraLoRA above LoRA, and R-LoRA at or above HydraLoRA, with
//!   intervals that exclude zero for the gain over LoRA; R-LoRA's heads less
//!   similar than HydraLoRA's.*
//! * **`agree`**: one change serves every task, which one LoRA holds as well
//!   as several heads. *Expected: every difference within its interval
//!   (the control).*
//!
//! What came out is recorded, whichever way it went, in the repository's
//! `RESULTS.md`, with the command for each table.

use burn::module::Module;
use burn::nn::{Gelu, Linear, LinearConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use burn_rlora::multitask::{BodyOutput, MultiTaskBody};
use burn_rlora::{Adapt, RLoraConfig, RLoraError, RLoraLinear};
use rand::rngs::StdRng;

use crate::harness::trace::{defined_mean, SimilarityTrace};
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

/// Input width.
pub const D_IN: usize = 32;
/// Hidden and feature width.
pub const D_HIDDEN: usize = 64;
/// Rank of each task's change to each layer.
const TASK_RANK: usize = 2;

/// One task's examples.
#[derive(Debug, Clone)]
pub struct TaskData {
    /// The task's name.
    pub name: String,
    /// Its class count.
    pub num_classes: usize,
    /// Training examples `(x, label)`.
    pub train: Vec<(Vec<f32>, usize)>,
    /// Held-out examples.
    pub test: Vec<(Vec<f32>, usize)>,
}

impl crate::harness::compare::splits::ComparisonTask for TaskData {
    type Input = Vec<f32>;

    fn name(&self) -> &str {
        &self.name
    }

    fn num_classes(&self) -> usize {
        self.num_classes
    }

    fn train(&self) -> &[(Vec<f32>, usize)] {
        &self.train
    }

    fn test(&self) -> &[(Vec<f32>, usize)] {
        &self.test
    }
}

/// The frozen base weights, in Burn's `[d_in, d_out]` layout, row-major.
#[derive(Debug, Clone)]
pub struct BaseWeights {
    w1: Vec<f32>,
    b1: Vec<f32>,
    w2: Vec<f32>,
    b2: Vec<f32>,
}

/// The whole generated benchmark.
#[derive(Debug, Clone)]
pub struct Benchmark {
    /// The frozen "pretrained" network.
    pub base: BaseWeights,
    /// The tasks.
    pub tasks: Vec<TaskData>,
}

fn normal(rng: &mut StdRng, n: usize, std: f64) -> Vec<f64> {
    (0..n)
        .map(|_| std * rng.sample::<f64, _>(StandardNormal))
        .collect()
}

fn gelu(v: f64) -> f64 {
    0.5 * v * (1.0 + libm::erf(v / std::f64::consts::SQRT_2))
}

/// `y = gelu(x W + b)` for `W` `[d_in, d_out]` row-major.
fn layer(x: &[f64], w: &[f64], b: &[f64], d_out: usize) -> Vec<f64> {
    let mut y = b.to_vec();
    for (i, &xi) in x.iter().enumerate() {
        for (j, yj) in y.iter_mut().enumerate() {
            *yj += xi * w[i * d_out + j];
        }
    }
    y.into_iter().map(gelu).collect()
}

/// `W + scale * U V^T` in `[d_in, d_out]` layout, `U` `[d_in, k]`, `V` `[d_out, k]`.
fn low_rank_add(w: &[f64], u: &[f64], v: &[f64], d_in: usize, d_out: usize, sign: f64) -> Vec<f64> {
    let mut out = w.to_vec();
    for i in 0..d_in {
        for j in 0..d_out {
            let dot: f64 = (0..TASK_RANK)
                .map(|k| u[i * TASK_RANK + k] * v[j * TASK_RANK + k])
                .sum();
            out[i * d_out + j] += sign * dot;
        }
    }
    out
}

struct TaskSpec {
    name: &'static str,
    classes: usize,
    train: usize,
    /// Which change (index into the drawn changes) and its sign.
    change: usize,
    sign: f64,
    /// Which read-out.
    readout: usize,
}

/// The tasks of [`Setting::Clusters`].
#[rustfmt::skip]
const CLUSTER_TASKS: [TaskSpec; 4] = [
    TaskSpec { name: "pos", classes: 4, train: 6400, change: 0, sign: 1.0, readout: 0 },
    TaskSpec { name: "neg", classes: 4, train: 4800, change: 0, sign: -1.0, readout: 0 },
    TaskSpec { name: "wide", classes: 5, train: 3200, change: 1, sign: 1.0, readout: 1 },
    TaskSpec { name: "small", classes: 2, train: 1200, change: 2, sign: 1.0, readout: 2 },
];

/// The tasks of the shared-input settings: four 4-class tasks of equal size,
/// each with its own read-out; which change each uses depends on the setting.
#[rustfmt::skip]
const SHARED_TASKS: [TaskSpec; 4] = [
    TaskSpec { name: "t0", classes: 4, train: 2400, change: 0, sign: 1.0, readout: 0 },
    TaskSpec { name: "t1", classes: 4, train: 2400, change: 1, sign: 1.0, readout: 1 },
    TaskSpec { name: "t2", classes: 4, train: 2400, change: 2, sign: 1.0, readout: 2 },
    TaskSpec { name: "t3", classes: 4, train: 2400, change: 3, sign: 1.0, readout: 3 },
];

/// Test examples per task.
pub const TEST_PER_TASK: usize = 400;

/// The largest `scale` [`Benchmark::generate`] accepts (640,000 examples of
/// the largest task, about 80 MiB of features).
pub const MAX_DATA_SCALE: f64 = 100.0;

/// Input coordinates that carry the task cue in [`Setting::ConflictCued`]
/// and [`Setting::Agree`] (the last ones of `x`).
pub const CUE_DIMS: usize = 4;

/// The value of a task's cue coordinate (the others are 0).
const CUE: f64 = 3.0;

/// Which multi-task data [`Benchmark::generate_setting`] draws. See the
/// [module docs](self) for each one's design and the outcome expected of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Setting {
    /// Tasks in different input regions, with conflicting and independent
    /// changes (the original generator).
    #[default]
    Clusters,
    /// One input distribution for every task, no task cue: tasks need
    /// different changes on the output side of the same layers.
    Conflict,
    /// As [`Conflict`](Self::Conflict), plus a task cue in the input, as an
    /// instruction marks the task of a language model's prompt.
    ConflictCued,
    /// The control: as [`ConflictCued`](Self::ConflictCued), but every task
    /// needs the same change.
    Agree,
}

impl Setting {
    /// Every setting, in the order of the docs.
    pub const ALL: [Setting; 4] = [
        Setting::Clusters,
        Setting::Conflict,
        Setting::ConflictCued,
        Setting::Agree,
    ];

    /// The name used on command lines and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Setting::Clusters => "clusters",
            Setting::Conflict => "conflict",
            Setting::ConflictCued => "conflict-cued",
            Setting::Agree => "agree",
        }
    }

    fn tasks(self) -> &'static [TaskSpec; 4] {
        match self {
            Setting::Clusters => &CLUSTER_TASKS,
            _ => &SHARED_TASKS,
        }
    }

    fn cued(self) -> bool {
        matches!(self, Setting::ConflictCued | Setting::Agree)
    }
}

impl std::fmt::Display for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Setting {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Setting::ALL
            .into_iter()
            .find(|k| k.name() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| {
                format!(
                    "unknown setting {s:?}; expected clusters, conflict, conflict-cued or agree"
                )
            })
    }
}

/// One task's low-rank changes of both layers: `(input side, output side)`
/// of layer 1, then of layer 2.
type Change = [Vec<f64>; 4];

impl Benchmark {
    /// Generate the [`Setting::Clusters`] benchmark from `data_seed`
    /// (see [`generate_setting`](Self::generate_setting)).
    ///
    /// # Errors
    ///
    /// Unless `0 < scale <=` [`MAX_DATA_SCALE`].
    pub fn generate(data_seed: u64, scale: f64) -> anyhow::Result<Self> {
        Self::generate_setting(Setting::Clusters, data_seed, scale)
    }

    /// Generate the benchmark of `setting` from `data_seed`. `scale`
    /// multiplies the train sizes (at least 1 example per task).
    ///
    /// # Errors
    ///
    /// Unless `0 < scale <=` [`MAX_DATA_SCALE`].
    pub fn generate_setting(setting: Setting, data_seed: u64, scale: f64) -> anyhow::Result<Self> {
        if !(scale > 0.0 && scale <= MAX_DATA_SCALE) {
            anyhow::bail!(
                "the data scale must be above 0 and at most {MAX_DATA_SCALE}, got {scale}"
            );
        }
        // One stream, drawn in this order: the base, the changes, the
        // read-outs, then each task's inputs.
        let mut rng = StdRng::seed_from_u64(data_seed);
        let base = DrawnBase::draw(&mut rng);
        let changes = draw_changes(setting, &mut rng);
        let readouts = draw_readouts(setting, &mut rng);
        let tasks = setting
            .tasks()
            .iter()
            .enumerate()
            .map(|(t, spec)| {
                let teacher = Teacher::new(&base, &changes[spec.change], spec, &readouts);
                draw_task(setting, t, spec, &teacher, scale, &mut rng)
            })
            .collect();
        Ok(Benchmark {
            base: base.into_f32(),
            tasks,
        })
    }
}

/// The base network as drawn, in `f64`: the teachers are built on it, the
/// student gets it as [`BaseWeights`].
struct DrawnBase {
    w1: Vec<f64>,
    b1: Vec<f64>,
    w2: Vec<f64>,
    b2: Vec<f64>,
}

impl DrawnBase {
    /// Draw Kaiming-style weights (`N(0, 2 / d_in)`) and small biases
    /// (`N(0, 0.1²)`) for both layers, in the order `W1, b1, W2, b2`.
    fn draw(rng: &mut StdRng) -> Self {
        let (d_in, d_h) = (D_IN, D_HIDDEN);
        DrawnBase {
            w1: normal(rng, d_in * d_h, (2.0 / d_in as f64).sqrt()),
            b1: normal(rng, d_h, 0.1),
            w2: normal(rng, d_h * d_h, (2.0 / d_h as f64).sqrt()),
            b2: normal(rng, d_h, 0.1),
        }
    }

    /// The frozen weights the student starts from, rounded to `f32`.
    fn into_f32(self) -> BaseWeights {
        let to32 = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect();
        BaseWeights {
            w1: to32(self.w1),
            b1: to32(self.b1),
            w2: to32(self.w2),
            b2: to32(self.b2),
        }
    }
}

/// Draw one task's low-rank changes of both layers, with the same
/// magnitude as the base weights' low-rank structure.
fn draw_change(rng: &mut StdRng) -> Change {
    let (d_in, d_h) = (D_IN, D_HIDDEN);
    [
        normal(rng, d_in * TASK_RANK, 0.6 / (d_in as f64).sqrt()),
        normal(rng, d_h * TASK_RANK, 1.0),
        normal(rng, d_h * TASK_RANK, 0.6 / (d_h as f64).sqrt()),
        normal(rng, d_h * TASK_RANK, 1.0),
    ]
}

/// The changes of `setting`, indexed by [`TaskSpec::change`]: three
/// independent ones for clusters, a shared input side with each task's own
/// output side for the conflict settings, one change for every task in
/// `agree`.
fn draw_changes(setting: Setting, rng: &mut StdRng) -> Vec<Change> {
    match setting {
        Setting::Clusters => (0..3).map(|_| draw_change(rng)).collect(),
        // One input side per layer for all tasks; each task its own output side.
        Setting::Conflict | Setting::ConflictCued => {
            let shared = draw_change(rng);
            (0..4)
                .map(|_| {
                    let own = draw_change(rng);
                    [
                        shared[0].clone(),
                        own[1].clone(),
                        shared[2].clone(),
                        own[3].clone(),
                    ]
                })
                .collect()
        }
        Setting::Agree => vec![draw_change(rng); 4],
    }
}

/// The read-outs of `setting` (`D_HIDDEN x classes`, row-major), indexed by
/// [`TaskSpec::readout`].
fn draw_readouts(setting: Setting, rng: &mut StdRng) -> Vec<Vec<f64>> {
    // Clusters: three read-outs (pos and neg share one); else one per task.
    let readout_classes: Vec<usize> = match setting {
        Setting::Clusters => vec![4, 5, 2],
        _ => setting.tasks().iter().map(|spec| spec.classes).collect(),
    };
    readout_classes
        .iter()
        .map(|&c| normal(rng, D_HIDDEN * c, 1.0))
        .collect()
}

/// One task's teacher: the base with the task's change (of the task's sign)
/// on both layers, and the task's read-out.
struct Teacher<'a> {
    w1: Vec<f64>,
    b1: &'a [f64],
    w2: Vec<f64>,
    b2: &'a [f64],
    readout: &'a [f64],
    classes: usize,
}

impl<'a> Teacher<'a> {
    /// The teacher of the task `spec` with its `change`, over `base`.
    fn new(
        base: &'a DrawnBase,
        change: &Change,
        spec: &TaskSpec,
        readouts: &'a [Vec<f64>],
    ) -> Self {
        let [u1, v1, u2, v2] = change;
        Teacher {
            w1: low_rank_add(&base.w1, u1, v1, D_IN, D_HIDDEN, spec.sign),
            b1: &base.b1,
            w2: low_rank_add(&base.w2, u2, v2, D_HIDDEN, D_HIDDEN, spec.sign),
            b2: &base.b2,
            readout: &readouts[spec.readout],
            classes: spec.classes,
        }
    }

    /// The class logits of input `x`: `h_t(x) R_t`.
    fn logits(&self, x: &[f64]) -> Vec<f64> {
        let d_h = D_HIDDEN;
        let h = layer(&layer(x, &self.w1, self.b1, d_h), &self.w2, self.b2, d_h);
        (0..self.classes)
            .map(|c| {
                (0..d_h)
                    .map(|k| h[k] * self.readout[k * self.classes + c])
                    .sum()
            })
            .collect()
    }
}

/// Draw task `t`'s `n` inputs: `x ~ N(mu, I)` with `mu` a random direction
/// of length 1.5 (clusters) or 0, and the task's cue in the last
/// [`CUE_DIMS`] coordinates when `setting` is cued.
fn draw_inputs(setting: Setting, t: usize, n: usize, rng: &mut StdRng) -> Vec<Vec<f64>> {
    let d_in = D_IN;
    // The mean of x: a random direction per task (clusters), the
    // task's cue, or nothing.
    let mu: Vec<f64> = match setting {
        Setting::Clusters => {
            let dir = normal(rng, d_in, 1.0);
            let norm = dir.iter().map(|v| v * v).sum::<f64>().sqrt();
            dir.into_iter().map(|v| 1.5 * v / norm).collect()
        }
        _ => vec![0.0; d_in],
    };
    (0..n)
        .map(|_| {
            let mut x: Vec<f64> = mu
                .iter()
                .map(|m| m + rng.sample::<f64, _>(StandardNormal))
                .collect();
            if setting.cued() {
                // The cue replaces the last coordinates: exactly
                // one-hot, the same for every example of the task.
                for (k, v) in x[d_in - CUE_DIMS..].iter_mut().enumerate() {
                    *v = if k == t { CUE } else { 0.0 };
                }
            }
            x
        })
        .collect()
}

/// The label of every row of `logits`: the argmax after centring each
/// class's logit over all rows (so that the classes are balanced).
fn centred_labels(logits: &[Vec<f64>], classes: usize) -> Vec<usize> {
    let n = logits.len();
    let means: Vec<f64> = (0..classes)
        .map(|c| logits.iter().map(|l| l[c]).sum::<f64>() / n as f64)
        .collect();
    logits
        .iter()
        .map(|l| {
            (0..classes)
                .max_by(|&a, &b| (l[a] - means[a]).total_cmp(&(l[b] - means[b])))
                .unwrap_or(0)
        })
        .collect()
}

/// Draw task `t` of `setting` (`spec`'s size times `scale`, at least 1,
/// then [`TEST_PER_TASK`] held out) and label it with its `teacher`.
fn draw_task(
    setting: Setting,
    t: usize,
    spec: &TaskSpec,
    teacher: &Teacher<'_>,
    scale: f64,
    rng: &mut StdRng,
) -> TaskData {
    let n_train = ((spec.train as f64 * scale).round() as usize).max(1);
    let xs = draw_inputs(setting, t, n_train + TEST_PER_TASK, rng);
    let logits: Vec<Vec<f64>> = xs.iter().map(|x| teacher.logits(x)).collect();
    let labels = centred_labels(&logits, spec.classes);
    let examples: Vec<(Vec<f32>, usize)> = xs
        .into_iter()
        .zip(labels)
        .map(|(x, label)| (x.into_iter().map(|v| v as f32).collect(), label))
        .collect();
    let (train, test) = examples.split_at(n_train);
    TaskData {
        name: spec.name.to_string(),
        num_classes: spec.classes,
        train: train.to_vec(),
        test: test.to_vec(),
    }
}

impl BaseWeights {
    fn linear<B: Backend>(
        w: &[f32],
        b: &[f32],
        d_in: usize,
        d_out: usize,
        device: &B::Device,
    ) -> Linear<B> {
        let mut linear = LinearConfig::new(d_in, d_out).init::<B>(device);
        linear.weight = burn::module::Param::from_tensor(Tensor::from_data(
            TensorData::new(w.to_vec(), [d_in, d_out]),
            device,
        ));
        linear.bias = Some(burn::module::Param::from_tensor(Tensor::from_data(
            TensorData::new(b.to_vec(), [d_out]),
            device,
        )));
        linear
    }

    /// The two base layers as Burn `Linear`s.
    pub fn layers<B: Backend>(&self, device: &B::Device) -> (Linear<B>, Linear<B>) {
        (
            Self::linear(&self.w1, &self.b1, D_IN, D_HIDDEN, device),
            Self::linear(&self.w2, &self.b2, D_HIDDEN, D_HIDDEN, device),
        )
    }
}

/// The student's shared body: the base network with both layers adapted.
#[derive(Module, Adapt, Debug)]
pub struct SyntheticBody<B: Backend> {
    /// First layer, adapted.
    pub l1: RLoraLinear<B>,
    /// Second layer, adapted.
    pub l2: RLoraLinear<B>,
    act: Gelu,
    /// Head similarity recorded from training forward passes (off by default).
    #[module(skip)]
    trace: SimilarityTrace,
}

impl<B: Backend> SyntheticBody<B> {
    /// Adapt both base layers with `config`.
    pub fn new(
        base: &BaseWeights,
        config: &RLoraConfig,
        device: &B::Device,
    ) -> Result<Self, RLoraError> {
        let (l1, l2) = base.layers::<B>(device);
        Ok(Self {
            l1: RLoraLinear::from_linear(l1, config)?,
            l2: RLoraLinear::from_linear(l2, config)?,
            act: Gelu::new(),
            trace: SimilarityTrace::default(),
        })
    }

    /// Record both layers' mean pairwise head similarity into `trace` from
    /// the training forward passes (those of an autodiff backend).
    pub fn with_trace(mut self, trace: SimilarityTrace) -> Self {
        self.trace = trace;
        self
    }

    /// Each adapted layer's mean pairwise head similarity, as
    /// [`SimilarityTrace`] records it ([`defined_mean`]).
    pub fn mean_head_similarities(&self) -> Vec<(String, Option<f64>)> {
        burn_rlora::head_similarities(self)
            .map(|layers| {
                layers
                    .into_iter()
                    .map(|(name, s)| (name, defined_mean(&s)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The adapted layers, with their names.
    pub fn adapted(&self) -> [(&'static str, &RLoraLinear<B>); 2] {
        [("l1", &self.l1), ("l2", &self.l2)]
    }
}

impl<B: Backend> MultiTaskBody<B> for SyntheticBody<B> {
    type Input = Tensor<B, 2>;

    fn forward(&self, x: Tensor<B, 2>) -> BodyOutput<B> {
        if B::ad_enabled(&x.device()) {
            self.trace
                .on_training_forward(|| self.mean_head_similarities());
        }
        let r1 = self.l1.forward_with_routing(x);
        let r2 = self.l2.forward_with_routing(self.act.forward(r1.output));
        BodyOutput {
            features: self.act.forward(r2.output),
            gates: r1.gates.into_iter().chain(r2.gates).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean_of_inputs(examples: &[(Vec<f32>, usize)], dims: std::ops::Range<usize>) -> Vec<f64> {
        dims.map(|d| examples.iter().map(|(x, _)| x[d] as f64).sum::<f64>() / examples.len() as f64)
            .collect()
    }

    #[test]
    fn setting_names_round_trip_and_unknown_names_are_errors() {
        for s in Setting::ALL {
            assert_eq!(s.name().parse::<Setting>(), Ok(s));
            assert_eq!(s.to_string(), s.name());
        }
        let err = "nope".parse::<Setting>().unwrap_err();
        assert!(err.contains("conflict-cued"), "{err}");
    }

    #[test]
    fn shared_input_settings_have_no_task_region() {
        for setting in [Setting::Conflict, Setting::ConflictCued, Setting::Agree] {
            let bench = Benchmark::generate_setting(setting, 7, 1.0).unwrap();
            assert_eq!(bench.tasks.len(), 4);
            let content = 0..D_IN - CUE_DIMS;
            for task in &bench.tasks {
                assert_eq!(task.train.len(), 2400);
                assert_eq!(task.test.len(), TEST_PER_TASK);
                // N(0, I): each coordinate's mean within 5 standard errors of 0.
                for m in mean_of_inputs(&task.train, content.clone()) {
                    assert!(m.abs() < 5.0 / 2400f64.sqrt(), "{setting}: mean {m}");
                }
                // Every class appears (the labels are balanced by centring).
                for c in 0..task.num_classes {
                    let n = task.train.iter().filter(|(_, l)| *l == c).count();
                    assert!(n > 2400 / 20, "{setting} {}: class {c} has {n}", task.name);
                }
            }
        }
    }

    #[test]
    fn only_cued_settings_carry_the_task_in_the_input() {
        for setting in [Setting::ConflictCued, Setting::Agree] {
            let bench = Benchmark::generate_setting(setting, 3, 0.1).unwrap();
            for (t, task) in bench.tasks.iter().enumerate() {
                for (x, _) in task.train.iter().chain(&task.test) {
                    let cue = &x[D_IN - CUE_DIMS..];
                    for (k, &v) in cue.iter().enumerate() {
                        assert_eq!(v, if k == t { CUE as f32 } else { 0.0 });
                    }
                }
            }
        }
        // Without the cue the last coordinates are noise like the rest.
        let bench = Benchmark::generate_setting(Setting::Conflict, 3, 0.1).unwrap();
        let x = &bench.tasks[0].train;
        assert!(x.iter().any(|(x, _)| x[D_IN - 1] < 0.0));
        assert!(x
            .iter()
            .any(|(x, _)| x[D_IN - 1] > 0.5 && x[D_IN - 1] != CUE as f32));
    }

    #[test]
    fn clusters_keeps_its_four_tasks_and_sizes() {
        let clusters = Benchmark::generate(2025, 0.1).unwrap();
        let names: Vec<&str> = clusters.tasks.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["pos", "neg", "wide", "small"]);
        let sizes: Vec<usize> = clusters.tasks.iter().map(|t| t.train.len()).collect();
        assert_eq!(sizes, [640, 480, 320, 120]);
        let classes: Vec<usize> = clusters.tasks.iter().map(|t| t.num_classes).collect();
        assert_eq!(classes, [4, 4, 5, 2]);
    }

    #[test]
    fn the_same_seed_draws_the_same_data() {
        for setting in Setting::ALL {
            let a = Benchmark::generate_setting(setting, 5, 0.05).unwrap();
            let b = Benchmark::generate_setting(setting, 5, 0.05).unwrap();
            for (ta, tb) in a.tasks.iter().zip(&b.tasks) {
                assert_eq!(ta.train, tb.train);
                assert_eq!(ta.test, tb.test);
            }
        }
    }
}
