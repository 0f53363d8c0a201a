//! Embedded multi-task data: a fixed "pretrained" network and tasks that each
//! need their own low-rank change of it.
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
//! * **Four tasks.** Task `t` has its own input domain `x ~ N(mu_t, I)`
//!   (`|mu_t| = 1.5`), its own *teacher* — the base with rank-2 changes
//!   `W1 + U1_t V1_t^T` and `W2 + U2_t V2_t^T` — and its own read-out
//!   `R_t` (64 x C_t). The label is `argmax(h_t(x) R_t)`, after centring each
//!   class's logit over the task's examples so the classes are balanced.
//! * **Conflicts.** Tasks `pos` and `neg` need opposite changes
//!   (`Delta_neg = -Delta_pos`) and share a read-out, so one shared adapter
//!   cannot serve both; their input domains differ, so a router can tell them
//!   apart. Tasks `wide` (5 classes) and `small` (2 classes, few examples)
//!   have independent changes.
//! * **Splits.** Train sizes 6400 / 4800 / 3200 / 1200 (10% of each held out
//!   for validation), and 400 test examples per task, all from the same
//!   generator. With a quarter of this data every method over-fits (92% train,
//!   67% validation accuracy), so the default is sized for generalization.
//!
//! The student sees only `x`, the task id (to pick its head) and the label.

use burn::module::Module;
use burn::nn::{Gelu, Linear, LinearConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use burn_rlora::multitask::{BodyOutput, MultiTaskBody};
use burn_rlora::{RLoraConfig, RLoraError, RLoraLinear};
use rand::rngs::StdRng;
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

const TASKS: [TaskSpec; 4] = [
    TaskSpec {
        name: "pos",
        classes: 4,
        train: 6400,
        change: 0,
        sign: 1.0,
        readout: 0,
    },
    TaskSpec {
        name: "neg",
        classes: 4,
        train: 4800,
        change: 0,
        sign: -1.0,
        readout: 0,
    },
    TaskSpec {
        name: "wide",
        classes: 5,
        train: 3200,
        change: 1,
        sign: 1.0,
        readout: 1,
    },
    TaskSpec {
        name: "small",
        classes: 2,
        train: 1200,
        change: 2,
        sign: 1.0,
        readout: 2,
    },
];

/// Test examples per task.
pub const TEST_PER_TASK: usize = 400;

/// The largest `scale` [`Benchmark::generate`] accepts (640,000 examples of
/// the largest task, about 80 MiB of features).
pub const MAX_DATA_SCALE: f64 = 100.0;

impl Benchmark {
    /// Generate the benchmark from `data_seed`. `scale` multiplies the train
    /// sizes (at least 1 example per task).
    ///
    /// # Errors
    ///
    /// Unless `0 < scale <=` [`MAX_DATA_SCALE`].
    pub fn generate(data_seed: u64, scale: f64) -> anyhow::Result<Self> {
        if !(scale > 0.0 && scale <= MAX_DATA_SCALE) {
            anyhow::bail!(
                "the data scale must be above 0 and at most {MAX_DATA_SCALE}, got {scale}"
            );
        }
        let mut rng = StdRng::seed_from_u64(data_seed);
        let (d_in, d_h) = (D_IN, D_HIDDEN);
        let w1 = normal(&mut rng, d_in * d_h, (2.0 / d_in as f64).sqrt());
        let b1 = normal(&mut rng, d_h, 0.1);
        let w2 = normal(&mut rng, d_h * d_h, (2.0 / d_h as f64).sqrt());
        let b2 = normal(&mut rng, d_h, 0.1);
        // Changes with the same magnitude as the base weights' low-rank structure.
        let changes: Vec<[Vec<f64>; 4]> = (0..3)
            .map(|_| {
                [
                    normal(&mut rng, d_in * TASK_RANK, 0.6 / (d_in as f64).sqrt()),
                    normal(&mut rng, d_h * TASK_RANK, 1.0),
                    normal(&mut rng, d_h * TASK_RANK, 0.6 / (d_h as f64).sqrt()),
                    normal(&mut rng, d_h * TASK_RANK, 1.0),
                ]
            })
            .collect();
        let readouts: Vec<Vec<f64>> = [4, 5, 2]
            .iter()
            .map(|&c| normal(&mut rng, d_h * c, 1.0))
            .collect();

        let tasks = TASKS
            .iter()
            .map(|spec| {
                let [u1, v1, u2, v2] = &changes[spec.change];
                let tw1 = low_rank_add(&w1, u1, v1, d_in, d_h, spec.sign);
                let tw2 = low_rank_add(&w2, u2, v2, d_h, d_h, spec.sign);
                let readout = &readouts[spec.readout];
                let mu: Vec<f64> = {
                    let dir = normal(&mut rng, d_in, 1.0);
                    let norm = dir.iter().map(|v| v * v).sum::<f64>().sqrt();
                    dir.into_iter().map(|v| 1.5 * v / norm).collect()
                };
                let n_train = ((spec.train as f64 * scale).round() as usize).max(1);
                let n = n_train + TEST_PER_TASK;
                let xs: Vec<Vec<f64>> = (0..n)
                    .map(|_| {
                        mu.iter()
                            .map(|m| m + rng.sample::<f64, _>(StandardNormal))
                            .collect()
                    })
                    .collect();
                let logits: Vec<Vec<f64>> = xs
                    .iter()
                    .map(|x| {
                        let h = layer(&layer(x, &tw1, &b1, d_h), &tw2, &b2, d_h);
                        (0..spec.classes)
                            .map(|c| (0..d_h).map(|k| h[k] * readout[k * spec.classes + c]).sum())
                            .collect()
                    })
                    .collect();
                let means: Vec<f64> = (0..spec.classes)
                    .map(|c| logits.iter().map(|l| l[c]).sum::<f64>() / n as f64)
                    .collect();
                let examples: Vec<(Vec<f32>, usize)> = xs
                    .into_iter()
                    .zip(&logits)
                    .map(|(x, l)| {
                        let label = (0..spec.classes)
                            .max_by(|&a, &b| (l[a] - means[a]).total_cmp(&(l[b] - means[b])))
                            .unwrap_or(0);
                        (x.into_iter().map(|v| v as f32).collect(), label)
                    })
                    .collect();
                let (train, test) = examples.split_at(n_train);
                TaskData {
                    name: spec.name.to_string(),
                    num_classes: spec.classes,
                    train: train.to_vec(),
                    test: test.to_vec(),
                }
            })
            .collect();
        let to32 = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect();
        Ok(Benchmark {
            base: BaseWeights {
                w1: to32(w1),
                b1: to32(b1),
                w2: to32(w2),
                b2: to32(b2),
            },
            tasks,
        })
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
#[derive(Module, Debug)]
pub struct SyntheticBody<B: Backend> {
    /// First layer, adapted.
    pub l1: RLoraLinear<B>,
    /// Second layer, adapted.
    pub l2: RLoraLinear<B>,
    act: Gelu,
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
        })
    }

    /// The adapted layers, with their names.
    pub fn adapted(&self) -> [(&'static str, &RLoraLinear<B>); 2] {
        [("l1", &self.l1), ("l2", &self.l2)]
    }
}

impl<B: Backend> MultiTaskBody<B> for SyntheticBody<B> {
    type Input = Tensor<B, 2>;

    fn forward(&self, x: Tensor<B, 2>) -> BodyOutput<B> {
        let r1 = self.l1.forward_with_routing(x);
        let r2 = self.l2.forward_with_routing(self.act.forward(r1.output));
        BodyOutput {
            features: self.act.forward(r2.output),
            gates: r1.gates.into_iter().chain(r2.gates).collect(),
        }
    }
}
