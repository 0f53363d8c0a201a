//! The multi-task datasets, batcher, loss, metrics and burn-train integration.

use std::path::PathBuf;
use std::sync::Arc;

use burn::backend::{Autodiff, NdArray};
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::data::dataset::{Dataset, InMemDataset};
use burn::lr_scheduler::LrScheduler;
use burn::module::{AutodiffModule, Module};
use burn::nn::LinearConfig;
use burn::optim::AdamConfig;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use burn::train::metric::{ItemLazy, Metric, MetricMetadata, Numeric, NumericEntry};
use burn::train::{ExecutionStrategy, Learner, MultiDeviceOptim, SupervisedTraining};
use burn_rlora::multitask::*;
use burn_rlora::{load_balance_loss, write_atomically, RLoraConfig, RLoraLinear};

use crate::common;

type B = NdArray<f32>;
type AB = Autodiff<B>;

fn pairs(n: usize, classes: usize, offset: f32) -> InMemDataset<(Vec<f32>, usize)> {
    InMemDataset::new(
        (0..n)
            .map(|i| (vec![offset + i as f32; 4], i % classes))
            .collect(),
    )
}

fn task_mix(data: &MultiTaskDataset<Vec<f32>>) -> Vec<f64> {
    let mut counts = vec![0usize; data.task_names().len()];
    for i in 0..data.len() {
        counts[data.get(i).unwrap().task.0] += 1;
    }
    counts
        .iter()
        .map(|&c| c as f64 / data.len() as f64)
        .collect()
}

fn three_tasks(strategy: SamplingStrategy, seed: u64) -> MultiTaskDataset<Vec<f32>> {
    MultiTaskDataset::builder(strategy, seed)
        .task("a", 3, pairs(900, 3, 0.0))
        .task("b", 2, pairs(300, 2, 1000.0))
        .task("c", 4, pairs(100, 4, 2000.0))
        .build()
        .unwrap()
}

#[test]
fn sampling_mix_matches_each_strategy() {
    // Proportional: n_t / sum n, every example once.
    let data = three_tasks(SamplingStrategy::Proportional, 1);
    assert_eq!(data.len(), 1300);
    let mix = task_mix(&data);
    for (got, want) in mix
        .iter()
        .zip([900.0 / 1300.0, 300.0 / 1300.0, 100.0 / 1300.0])
    {
        assert!((got - want).abs() < 1e-3, "proportional mix {mix:?}");
    }
    let mut seen: Vec<f32> = (0..data.len())
        .map(|i| data.get(i).unwrap().input[0])
        .collect();
    seen.sort_by(f32::total_cmp);
    seen.dedup();
    assert_eq!(
        seen.len(),
        1300,
        "proportional sampling must use every example once"
    );

    // Temperature 2: p ∝ sqrt(n) = 30 : 17.32 : 10 → 0.5234, 0.3022, 0.1745.
    let data = three_tasks(SamplingStrategy::Temperature(2.0), 1);
    let mix = task_mix(&data);
    for (got, want) in mix.iter().zip([0.5234, 0.3022, 0.1745]) {
        assert!((got - want).abs() < 2e-3, "temperature mix {mix:?}");
    }
    // The up-sampled small task cycles through all of its examples.
    let small: std::collections::BTreeSet<u32> = (0..data.len())
        .map(|i| data.get(i).unwrap())
        .filter(|it| it.task == TaskId(2))
        .map(|it| it.input[0] as u32)
        .collect();
    assert_eq!(small.len(), 100);

    // Uniform: 1/3 each, round-robin.
    let data = three_tasks(SamplingStrategy::Uniform, 1);
    assert_eq!(data.len(), 1299);
    assert!(task_mix(&data).iter().all(|p| (p - 1.0 / 3.0).abs() < 1e-9));
    let first: Vec<usize> = (0..6).map(|i| data.get(i).unwrap().task.0).collect();
    assert_eq!(first, vec![0, 1, 2, 0, 1, 2]);
}

#[test]
fn sampling_is_deterministic_under_a_seed() {
    let order = |seed| {
        let d = three_tasks(SamplingStrategy::Temperature(3.0), seed);
        (0..d.len())
            .map(|i| d.get(i).unwrap().input[0])
            .collect::<Vec<_>>()
    };
    assert_eq!(order(5), order(5));
    assert_ne!(order(5), order(6));
}

#[test]
fn bad_datasets_are_typed_errors() {
    let build = |b: MultiTaskDatasetBuilderFor| b.build().err().unwrap();
    type MultiTaskDatasetBuilderFor = burn_rlora::multitask::MultiTaskDatasetBuilder<Vec<f32>>;
    let new = || MultiTaskDataset::<Vec<f32>>::builder(SamplingStrategy::Proportional, 0);
    assert_eq!(build(new()), DatasetError::NoTasks);
    assert_eq!(
        build(new().task("a", 2, pairs(0, 2, 0.0))),
        DatasetError::EmptyTask("a".into())
    );
    assert_eq!(
        build(
            new()
                .task("a", 2, pairs(3, 2, 0.0))
                .task("a", 2, pairs(3, 2, 0.0))
        ),
        DatasetError::DuplicateTask("a".into())
    );
    assert_eq!(
        build(new().task("a", 0, pairs(3, 1, 0.0))),
        DatasetError::NoClasses("a".into())
    );
    let err = build(new().task("a", 2, pairs(5, 3, 0.0)));
    assert_eq!(
        err,
        DatasetError::LabelOutOfRange {
            task: "a".into(),
            index: 2,
            label: 2,
            num_classes: 2
        }
    );
    assert!(err.to_string().contains("example 2 has label 2"), "{err}");
    let bad_t = MultiTaskDataset::<Vec<f32>>::builder(SamplingStrategy::Temperature(0.0), 0)
        .task("a", 2, pairs(3, 2, 0.0))
        .build()
        .err()
        .unwrap();
    assert_eq!(bad_t, DatasetError::InvalidTemperature(0.0));
}

#[test]
fn batches_keep_every_items_task() {
    let data = three_tasks(SamplingStrategy::Uniform, 3);
    let items: Vec<TaskItem<Vec<f32>>> = (10..20).map(|i| data.get(i).unwrap()).collect();
    let batch: MultiTaskBatch<B, Tensor<B, 2>> =
        MultiTaskBatcher::new(DenseCollate).batch(items.clone(), &Default::default());
    assert_eq!(
        batch.tasks,
        items.iter().map(|i| i.task).collect::<Vec<_>>()
    );
    let targets: Vec<i64> = batch.targets.into_data().to_vec().unwrap();
    assert_eq!(
        targets,
        items.iter().map(|i| i.label as i64).collect::<Vec<_>>()
    );
    let inputs: Vec<f32> = batch.inputs.into_data().to_vec().unwrap();
    assert_eq!(
        inputs,
        items
            .iter()
            .flat_map(|i| i.input.clone())
            .collect::<Vec<_>>()
    );
}

/// The smallest body: one adapted layer.
#[derive(Module, Debug)]
struct TinyBody<B: Backend> {
    layer: RLoraLinear<B>,
}

impl<B: Backend> MultiTaskBody<B> for TinyBody<B> {
    type Input = Tensor<B, 2>;

    fn forward(&self, x: Tensor<B, 2>) -> BodyOutput<B> {
        let routed = self.layer.forward_with_routing(x);
        BodyOutput {
            features: routed.output.tanh(),
            gates: routed.gates.into_iter().collect(),
        }
    }
}

fn tiny_model<Bk: Backend>(device: &Bk::Device) -> MultiTaskClassifier<Bk, TinyBody<Bk>> {
    tiny_model_with_dropout(device, 0.0)
}

fn tiny_model_with_dropout<Bk: Backend>(
    device: &Bk::Device,
    dropout: f64,
) -> MultiTaskClassifier<Bk, TinyBody<Bk>> {
    let _rng = common::rng_lock();
    Bk::seed(device, 9);
    let base = LinearConfig::new(4, 8).init::<Bk>(device);
    let layer =
        RLoraLinear::from_linear(base, &RLoraConfig::r_lora(2, 4.0, 3).with_dropout(dropout))
            .unwrap();
    MultiTaskClassifier::new(TinyBody { layer }, TaskHeads::new(8, &[3, 2], device))
}

#[test]
fn loss_is_the_batch_mean_cross_entropy_plus_the_balance_term() {
    let _rng = common::rng_lock();
    let device = Default::default();
    let model = tiny_model::<B>(&device);
    let x = Tensor::<B, 2>::from_data(
        TensorData::new((0..24).map(|v| (v as f32 * 0.37).sin()).collect(), [6, 4]),
        &device,
    );
    let tasks = vec![
        TaskId(0),
        TaskId(1),
        TaskId(0),
        TaskId(0),
        TaskId(1),
        TaskId(1),
    ];
    let labels = [2i64, 1, 0, 1, 0, 1];
    let batch = MultiTaskBatch {
        inputs: x.clone(),
        targets: Tensor::from_data(TensorData::new(labels.to_vec(), [6]), &device),
        tasks: tasks.clone(),
    };
    let out = model.forward_loss(batch.clone());
    // By hand: log-softmax of each row's own head, mean over the 6 rows.
    let features = model.body.forward(x.clone()).features;
    let mut total = 0.0;
    for (row, (task, &label)) in tasks.iter().zip(&labels).enumerate() {
        let logits: Vec<f64> = model.heads.heads[task.0]
            .forward(features.clone().narrow(0, row, 1))
            .into_data()
            .convert::<f64>()
            .to_vec()
            .unwrap();
        let lse = logits.iter().map(|v| v.exp()).sum::<f64>().ln();
        total += lse - logits[label as usize];
    }
    let ce: f64 = out.cross_entropy.clone().into_scalar() as f64;
    assert!(
        (ce - total / 6.0).abs() < 1e-5,
        "cross-entropy {ce}, by hand {}",
        total / 6.0
    );
    assert_eq!(
        out.loss.clone().into_scalar(),
        out.cross_entropy.clone().into_scalar()
    );

    // With a balance coefficient, the loss grows by coef * load_balance_loss(gates).
    let model = model.with_balance_coef(0.5);
    let gates = model.body.forward(x).gates;
    let lb: f32 = load_balance_loss(gates[0].clone()).into_scalar();
    let out2 = model.forward_loss(batch);
    let diff = out2.loss.into_scalar() - out2.cross_entropy.into_scalar();
    assert!(
        (diff - 0.5 * lb).abs() < 1e-6,
        "balance term {diff}, want {}",
        0.5 * lb
    );

    // The host-side summary agrees with the tensors.
    let stats = out.sync();
    assert_eq!(stats.batch_size, 6);
    assert_eq!((stats.tasks[0].count, stats.tasks[1].count), (3, 3));
    assert!((stats.overall().loss_sum / 6.0 - ce).abs() < 1e-5);
}

#[test]
fn task_metrics_report_each_task_by_name() {
    let stats = MultiTaskStats {
        loss: 0.7,
        batch_size: 5,
        tasks: vec![
            TaskStats {
                count: 4,
                loss_sum: 2.0,
                correct: 3,
            },
            TaskStats {
                count: 1,
                loss_sum: 0.1,
                correct: 0,
            },
        ],
    };
    let progress = || burn::data::dataloader::Progress {
        items_processed: 1,
        items_total: 1,
    };
    let meta = MetricMetadata {
        progress: progress(),
        global_progress: progress(),
        iteration: Some(0),
        lr: None,
    };
    let mut acc0 = TaskAccuracyMetric::task(TaskId(0), "news");
    let mut loss1 = TaskLossMetric::task(TaskId(1), "spam");
    let mut overall = TaskAccuracyMetric::overall();
    assert_eq!(acc0.name().as_str(), "Accuracy news");
    assert_eq!(loss1.name().as_str(), "Loss spam");
    acc0.update(&stats, &meta);
    loss1.update(&stats, &meta);
    overall.update(&stats, &meta);
    let value = |e: NumericEntry| match e {
        NumericEntry::Value(v) => v,
        NumericEntry::Aggregated {
            aggregated_value, ..
        } => aggregated_value,
    };
    assert_eq!(value(acc0.value()), 75.0);
    assert!((value(loss1.value()) - 0.1).abs() < 1e-12);
    assert_eq!(value(overall.value()), 60.0);
    // A batch without the task adds nothing to its epoch figure.
    let absent = MultiTaskStats {
        loss: 0.1,
        batch_size: 2,
        tasks: vec![TaskStats {
            count: 2,
            loss_sum: 0.2,
            correct: 2,
        }],
    };
    loss1.update(&absent, &meta);
    assert!((value(loss1.running_value()) - 0.1).abs() < 1e-12);
}

#[test]
fn warmup_cosine_schedule_and_its_record() {
    // warmup 2 of 6 steps, peak 1, min 0.2: 0.5, 1, then 0.2 + 0.8 * (1 + cos(pi k/4)) / 2.
    let mut lr = WarmupCosineLr::new(1.0, 0.2, 2, 6);
    let got: Vec<f64> = (0..7).map(|_| lr.step()).collect();
    let cosine = |k: f64| 0.2 + 0.8 * (1.0 + (std::f64::consts::PI * k / 4.0).cos()) / 2.0;
    let want = [0.5, 1.0, cosine(1.0), cosine(2.0), cosine(3.0), 0.2, 0.2];
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-12, "{got:?}");
    }
    let resumed = WarmupCosineLr::new(1.0, 0.2, 2, 6).load_record::<B>(3);
    let mut resumed = resumed;
    assert!((resumed.step() - cosine(2.0)).abs() < 1e-12);
}

/// 2 tasks x 192 training examples in batches of 16.
const ITERS_PER_EPOCH: usize = 2 * 192 / 16;

fn tiny_data(seed: u64) -> (MultiTaskDataset<Vec<f32>>, MultiTaskDataset<Vec<f32>>) {
    // Pseudo-random inputs in [-1, 1]. Task 0: which of the first 3 features is
    // largest; task 1: the sign of a fixed linear form. Both are learnable.
    let input = |i: usize| -> Vec<f32> {
        (0..4)
            .map(|k| {
                let h = ((i * 4 + k) as f64 * 12.9898).sin() * 43_758.545_3;
                (2.0 * (h - h.floor()) - 1.0) as f32
            })
            .collect()
    };
    let make = |n: usize, off: usize| {
        let a: Vec<(Vec<f32>, usize)> = (0..n)
            .map(|i| {
                let v = input(i + off);
                let label = (0..3).max_by(|&p, &q| v[p].total_cmp(&v[q])).unwrap();
                (v, label)
            })
            .collect();
        let b: Vec<(Vec<f32>, usize)> = (0..n)
            .map(|i| {
                let v = input(i + off + 50_000);
                let label = usize::from(v[0] + v[1] - v[2] + 0.5 * v[3] > 0.0);
                (v, label)
            })
            .collect();
        MultiTaskDataset::builder(SamplingStrategy::Proportional, seed)
            .task("argmax", 3, InMemDataset::new(a))
            .task("sign", 2, InMemDataset::new(b))
            .build()
            .unwrap()
    };
    (make(192, 0), make(64, 10_000))
}

type TrainLoader = Arc<dyn DataLoader<AB, MultiTaskBatch<AB, Tensor<AB, 2>>>>;
type ValidLoader = Arc<dyn DataLoader<B, MultiTaskBatch<B, Tensor<B, 2>>>>;
type Model = MultiTaskClassifier<AB, TinyBody<AB>>;
type Components = burn::train::LearningComponentsMarker<
    AB,
    WarmupCosineLr,
    Model,
    burn::optim::adaptor::OptimizerAdaptor<burn::optim::Adam, Model, AB>,
>;

fn loaders(seed: u64) -> (TrainLoader, ValidLoader) {
    let (train, valid) = tiny_data(seed);
    (
        DataLoaderBuilder::new(MultiTaskBatcher::new(DenseCollate))
            .batch_size(16)
            .shuffle(seed)
            .build(train),
        DataLoaderBuilder::new(MultiTaskBatcher::new(DenseCollate))
            .batch_size(32)
            .build(valid),
    )
}

fn mean_loss(model: &MultiTaskClassifier<B, TinyBody<B>>) -> f64 {
    let (_, valid) = loaders(0);
    let (mut sum, mut n) = (0.0, 0);
    for batch in valid.iter() {
        let stats = model.forward_loss(batch).sync();
        sum += stats.overall().loss_sum;
        n += stats.batch_size;
    }
    sum / n as f64
}

fn artifact_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("burn-rlora-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

type Training = SupervisedTraining<Components>;

fn training(dir: &PathBuf, epochs: usize) -> (Training, HistoryHandle) {
    let (train, valid) = loaders(1);
    let (renderer, history) = RecordingRenderer::new(Box::new(PlainRenderer::new()));
    let mut t = SupervisedTraining::new(dir, train, valid)
        .metric_train_numeric(TaskLossMetric::overall())
        .metric_valid_numeric(TaskLossMetric::overall())
        .with_file_checkpointer(NamedMpkFileRecorder::<FullPrecisionSettings>::new())
        .num_epochs(epochs)
        .renderer(renderer);
    for (t_id, name) in ["argmax", "sign"].iter().enumerate() {
        t = t
            .metric_valid_numeric(TaskLossMetric::task(TaskId(t_id), name))
            .metric_valid_numeric(TaskAccuracyMetric::task(TaskId(t_id), name));
    }
    (t, history)
}

fn learner(model: Model, steps: usize) -> Learner<Components> {
    Learner::new(
        model,
        AdamConfig::new().init(),
        WarmupCosineLr::new(2e-2, 0.0, 1, steps),
    )
}

#[test]
fn a_short_learner_run_lowers_the_loss_and_reports_every_task() {
    let _rng = common::rng_lock();
    let dir = artifact_dir("learner");
    let model = tiny_model::<AB>(&Default::default());
    let before = mean_loss(&model.valid());
    let (training, history) = training(&dir, 4);
    let result = training.launch(learner(model, 4 * ITERS_PER_EPOCH));
    drop(result.renderer);
    let after = mean_loss(&result.model);
    assert!(after < 0.8 * before, "validation loss {before} -> {after}");
    let history = history.lock().unwrap();
    for name in [
        "Loss argmax",
        "Loss sign",
        "Accuracy argmax",
        "Accuracy sign",
        "Loss",
    ] {
        let epochs = history
            .valid_epochs
            .get(name)
            .unwrap_or_else(|| panic!("no '{name}' in {history:?}"));
        assert_eq!(epochs.len(), 4, "{name}: {epochs:?}");
    }
    assert_eq!(history.train_batches["Loss"].len(), 4 * ITERS_PER_EPOCH);
    std::fs::remove_dir_all(&dir).ok();
}

/// A trainer generic over the body and the collate, with the two library
/// bounds alone: the Learner takes the classifier as it is.
fn train_any_body<Bk, E, C>(
    model: MultiTaskClassifier<Bk, E>,
    collate: C,
    dir: &PathBuf,
    epochs: usize,
) -> MultiTaskClassifier<Bk::InnerBackend, E::InnerModule>
where
    Bk: AutodiffBackend,
    E: TrainableBody<Bk>,
    C: BodyCollate<Bk, Vec<f32>, E>,
{
    type Parts<Bk, E> = burn::train::LearningComponentsMarker<
        Bk,
        WarmupCosineLr,
        MultiTaskClassifier<Bk, E>,
        burn::optim::adaptor::OptimizerAdaptor<burn::optim::Adam, MultiTaskClassifier<Bk, E>, Bk>,
    >;
    let (train, valid) = tiny_data(1);
    let batcher = MultiTaskBatcher::new(collate);
    let train = DataLoaderBuilder::new(batcher.clone())
        .batch_size(16)
        .shuffle(1)
        .build(train);
    let valid = DataLoaderBuilder::new(batcher).batch_size(32).build(valid);
    let training = SupervisedTraining::<Parts<Bk, E>>::new(dir, train, valid)
        .metric_train_numeric(TaskLossMetric::overall())
        .metric_valid_numeric(TaskAccuracyMetric::overall())
        .num_epochs(epochs)
        .renderer(PlainRenderer::new());
    let lr = WarmupCosineLr::new(2e-2, 0.0, 1, epochs * ITERS_PER_EPOCH);
    training
        .launch(Learner::new(model, AdamConfig::new().init(), lr))
        .model
}

#[test]
fn a_trainer_generic_over_the_body_needs_only_the_library_bounds() {
    let _rng = common::rng_lock();
    let dir = artifact_dir("generic");
    let model = tiny_model::<AB>(&Default::default());
    let before = mean_loss(&model.valid());
    let trained = train_any_body(model, DenseCollate, &dir, 2);
    let after = mean_loss(&trained);
    assert!(after < before, "validation loss {before} -> {after}");
    std::fs::remove_dir_all(&dir).ok();
}

fn adapter_values<Bk: Backend>(m: &MultiTaskClassifier<Bk, TinyBody<Bk>>) -> Vec<f32> {
    let l = &m.body.layer;
    [
        l.adapter.as_ref().unwrap().lora_a.val(),
        l.adapter.as_ref().unwrap().lora_b.val(),
        l.adapter
            .as_ref()
            .unwrap()
            .lora_route
            .as_ref()
            .unwrap()
            .val(),
    ]
    .into_iter()
    .flat_map(|t| t.into_data().to_vec::<f32>().unwrap())
    .collect()
}

#[test]
fn training_resumes_from_a_checkpoint() {
    let _rng = common::rng_lock();
    let dir = artifact_dir("resume");
    let device = Default::default();
    let (t, _) = training(&dir, 1);
    let first = t
        .launch(learner(tiny_model::<AB>(&device), 2 * ITERS_PER_EPOCH))
        .model;
    assert!(
        dir.join("checkpoint/model-1.mpk").exists(),
        "no epoch-1 checkpoint"
    );

    // Resuming at epoch 1 of a 1-epoch run restores the saved state and trains no more.
    let (t, _) = training(&dir, 1);
    let restored = t
        .checkpoint(1)
        .launch(learner(tiny_model::<AB>(&device), 2 * ITERS_PER_EPOCH))
        .model;
    assert_eq!(
        adapter_values(&restored),
        adapter_values(&first),
        "adapter weights differ from the checkpoint"
    );
    assert!(!dir.join("checkpoint/model-2.mpk").exists());

    // Resuming a 2-epoch run continues with epoch 2 only.
    let (t, history) = training(&dir, 2);
    let second = t
        .checkpoint(1)
        .launch(learner(tiny_model::<AB>(&device), 2 * ITERS_PER_EPOCH))
        .model;
    assert!(
        dir.join("checkpoint/model-2.mpk").exists(),
        "epoch 2 was not trained"
    );
    assert_eq!(
        history.lock().unwrap().train_batches["Loss"].len(),
        ITERS_PER_EPOCH,
        "resume must train one epoch"
    );
    assert_ne!(adapter_values(&second), adapter_values(&first));
    // The frozen base is untouched by training and resuming.
    assert_eq!(
        second.body.layer.weight.val().into_data(),
        tiny_model::<B>(&device).body.layer.weight.val().into_data()
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn multi_device_data_parallel_training_runs_on_two_cpu_workers() {
    let _rng = common::rng_lock();
    let dir = artifact_dir("multi");
    let model = tiny_model::<AB>(&Default::default());
    let before = mean_loss(&model.valid());
    let (t, _) = training(&dir, 3);
    let devices = vec![Default::default(), Default::default()];
    let t = t.with_training_strategy(
        ExecutionStrategy::MultiDevice(devices, MultiDeviceOptim::OptimMainDevice).into(),
    );
    let trained = t.launch(learner(model, 3 * ITERS_PER_EPOCH)).model;
    let after = mean_loss(&trained);
    assert!(after < 0.9 * before, "validation loss {before} -> {after}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn extreme_temperatures_give_a_full_epoch_not_nan() {
    let sizes = [900, 300, 100];
    // T -> 0: every draw from the largest task; T -> inf: uniform.
    let cold = SamplingStrategy::Temperature(1e-300);
    assert_eq!(cold.probabilities(&sizes).unwrap(), vec![1.0, 0.0, 0.0]);
    assert_eq!(cold.counts(&sizes).unwrap(), vec![1300, 0, 0]);
    let hot = SamplingStrategy::Temperature(1e300).counts(&sizes).unwrap();
    assert_eq!(hot, vec![434, 433, 433]);
    let data = three_tasks(cold, 1);
    assert_eq!(data.len(), 1300);
    assert_eq!(data.task_counts(), &[1300, 0, 0]);
}

#[test]
fn an_epoch_size_shortens_or_lengthens_the_epoch_at_the_same_shares() {
    let task = |n: usize| InMemDataset::new((0..n).map(|i| (i as f32, 0usize)).collect());
    let build = |size: Option<usize>, strategy| {
        let mut b = MultiTaskDataset::builder(strategy, 3)
            .task("big", 1, task(900))
            .task("small", 1, task(100));
        if let Some(size) = size {
            b = b.epoch_size(size);
        }
        b.build().unwrap()
    };
    // Proportional: 9 to 1 at any length; a longer epoch cycles the tasks.
    let short = build(Some(50), SamplingStrategy::Proportional);
    assert_eq!((short.len(), short.task_counts()), (50, &[45, 5][..]));
    let long = build(Some(3000), SamplingStrategy::Proportional);
    assert_eq!(long.task_counts(), &[2700, 300]);
    // Uniform rounds to a multiple of the task count.
    let uniform = build(Some(11), SamplingStrategy::Uniform);
    assert_eq!(uniform.task_counts(), &[5, 5]);
    // The default is the total number of examples.
    assert_eq!(build(None, SamplingStrategy::Proportional).len(), 1000);
    // An empty epoch is refused.
    let empty = MultiTaskDataset::builder(SamplingStrategy::Proportional, 3)
        .task("big", 1, task(900))
        .epoch_size(0)
        .build();
    assert!(empty.is_err());
}

/// A body that turns its features into NaN from the `poison_at`-th training
/// forward on (0-based), to make a run diverge at a known iteration.
#[derive(Module, Debug)]
struct PoisonBody<B: Backend> {
    inner: TinyBody<B>,
    #[module(skip)]
    calls: Arc<std::sync::atomic::AtomicUsize>,
    #[module(skip)]
    poison_at: usize,
}

impl<B: Backend> MultiTaskBody<B> for PoisonBody<B> {
    type Input = Tensor<B, 2>;

    fn forward(&self, x: Tensor<B, 2>) -> BodyOutput<B> {
        let mut out = self.inner.forward(x);
        if B::ad_enabled(&out.features.device()) {
            let call = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if call >= self.poison_at {
                out.features = out.features.mul_scalar(f64::NAN);
            }
        }
        out
    }
}

type PoisonModel = MultiTaskClassifier<AB, PoisonBody<AB>>;
type PoisonComponents = burn::train::LearningComponentsMarker<
    AB,
    WarmupCosineLr,
    PoisonModel,
    burn::optim::adaptor::OptimizerAdaptor<burn::optim::Adam, PoisonModel, AB>,
>;

#[test]
fn a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint() {
    let _rng = common::rng_lock();
    let dir = artifact_dir("diverge");
    let device = Default::default();
    let tiny = tiny_model::<AB>(&device);
    // Poisoned from the 6th step of epoch 3.
    let body = PoisonBody {
        inner: tiny.body,
        calls: Default::default(),
        poison_at: 2 * ITERS_PER_EPOCH + 5,
    };
    let model = MultiTaskClassifier::new(body, tiny.heads);
    let guard = model.guard().clone();
    let (train, valid) = loaders(1);
    let training = SupervisedTraining::new(&dir, train, valid)
        .metric_valid_numeric(TaskLossMetric::overall())
        .renderer(PlainRenderer::new());
    // Keep only the newest epoch: the diverging one must not push it out.
    let training: SupervisedTraining<PoisonComponents> = guard
        .attach(training, &dir, 1)
        .with_file_checkpointer(AtomicMpkRecorder::<FullPrecisionSettings>::new())
        .num_epochs(5);
    let optim = AdamConfig::new().init();
    let lr = WarmupCosineLr::new(2e-2, 0.0, 1, 5 * ITERS_PER_EPOCH);
    let trained = training.launch(Learner::new(model, optim, lr)).model;

    let divergence = match guard.check() {
        Err(RunStopped::Diverged(d)) => d,
        other => panic!("expected a divergence, got {other:?}"),
    };
    assert_eq!(
        (divergence.phase, divergence.epoch, divergence.iteration),
        (Phase::Training, 3, 6),
        "{divergence}"
    );
    assert!(divergence.loss.is_nan());
    assert!(
        divergence
            .to_string()
            .contains("non-finite training loss (NaN) at epoch 3, iteration 6"),
        "{divergence}"
    );
    // The diverging step and the run's end never touched the weights.
    let values = adapter_values(&MultiTaskClassifier::new(trained.body.inner, trained.heads));
    assert!(values.iter().all(|v| v.is_finite()), "{values:?}");
    let checkpoints = dir.join("checkpoint");
    assert_eq!(checkpoint_epochs(&checkpoints), vec![2]);
    assert!(!checkpoints.join("optim-3.mpk").exists());
    std::fs::remove_dir_all(&dir).ok();
}

/// A loader of dense multi-task batches on `Bk`.
type DenseLoader<Bk> = Arc<dyn DataLoader<Bk, MultiTaskBatch<Bk, Tensor<Bk, 2>>>>;

/// `epochs` epochs of the tiny model with dropout on a seeded loader, resumed
/// from checkpoint `resume` if given; the adapter's values at the end.
fn seeded_run<Bk: Backend>(
    dir: &std::path::Path,
    epochs: usize,
    resume: Option<usize>,
) -> Vec<f32> {
    type Ad<Bk> = Autodiff<Bk>;
    let device = Default::default();
    let model = tiny_model_with_dropout::<Ad<Bk>>(&device, 0.2);
    let first = resume.map_or(1, |e| e + 1);
    model.guard().starting_epoch(first);
    let (train, valid) = tiny_data(1);
    let train: DenseLoader<Ad<Bk>> = Arc::new(
        SeededEpochLoader::new(MultiTaskBatcher::new(DenseCollate), train, 16, 5)
            .starting_epoch(first),
    );
    let valid: DenseLoader<Bk> = DataLoaderBuilder::new(MultiTaskBatcher::new(DenseCollate))
        .batch_size(32)
        .build(valid);
    let training = SupervisedTraining::new(dir, train, valid)
        .metric_valid_numeric(TaskLossMetric::overall())
        .renderer(PlainRenderer::new());
    let mut training = model
        .guard()
        .attach(training, dir, 2)
        .with_file_checkpointer(AtomicMpkRecorder::<FullPrecisionSettings>::new())
        .num_epochs(epochs);
    if let Some(e) = resume {
        training = training.checkpoint(e);
    }
    let lr = WarmupCosineLr::new(2e-2, 0.0, 1, 3 * ITERS_PER_EPOCH);
    let guard = model.guard().clone();
    let trained = training
        .launch(Learner::new(model, AdamConfig::new().init(), lr))
        .model;
    guard.check().unwrap();
    adapter_values(&trained)
}

fn same_seed_same_adapter<Bk: Backend>(name: &str) {
    let _rng = common::rng_lock();
    let (a, b) = (
        artifact_dir(&format!("{name}-a")),
        artifact_dir(&format!("{name}-b")),
    );
    let first = seeded_run::<Bk>(&a, 2, None);
    let second = seeded_run::<Bk>(&b, 2, None);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&first), bits(&second), "{name}: two runs differ");
    assert_ne!(
        first,
        adapter_values(&tiny_model::<Bk>(&Default::default()))
    );
    std::fs::remove_dir_all(&a).ok();
    std::fs::remove_dir_all(&b).ok();
}

#[test]
fn the_same_seed_gives_a_bit_identical_adapter_on_ndarray() {
    same_seed_same_adapter::<NdArray<f32>>("same-ndarray");
}

#[test]
fn the_same_seed_gives_a_bit_identical_adapter_on_flex() {
    same_seed_same_adapter::<burn::backend::Flex>("same-flex");
}

#[test]
fn a_resumed_run_ends_bit_identical_and_skips_a_damaged_checkpoint() {
    let _rng = common::rng_lock();
    let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
    let straight_dir = artifact_dir("straight");
    let straight = bits(seeded_run::<B>(&straight_dir, 3, None));

    // Two epochs, then the third from checkpoint 2.
    let dir = artifact_dir("resumed");
    seeded_run::<B>(&dir, 2, None);
    let checkpoints = dir.join("checkpoint");
    type Tiny = MultiTaskClassifier<AB, TinyBody<AB>>;
    type TinyComponents = burn::train::LearningComponentsMarker<
        AB,
        WarmupCosineLr,
        Tiny,
        burn::optim::adaptor::OptimizerAdaptor<burn::optim::Adam, Tiny, AB>,
    >;
    let scan = |dir: &std::path::Path| {
        last_complete_checkpoint::<TinyComponents, FullPrecisionSettings>(
            dir,
            3,
            &tiny_model_with_dropout::<AB>(&Default::default(), 0.2),
            &Default::default(),
        )
    };
    assert_eq!(scan(&checkpoints).epoch, Some(2));
    let resumed = bits(seeded_run::<B>(&dir, 3, Some(2)));
    assert_eq!(resumed, straight, "resumed from epoch 2");

    // A truncated epoch-2 model file (and a leftover temporary file) is skipped
    // in favour of epoch 1, and the run still ends on the same weights.
    let dir = artifact_dir("damaged");
    seeded_run::<B>(&dir, 2, None);
    let checkpoints = dir.join("checkpoint");
    let model2 = checkpoints.join("model-2.mpk");
    let bytes = std::fs::read(&model2).unwrap();
    std::fs::write(&model2, &bytes[..bytes.len() / 2]).unwrap();
    std::fs::write(checkpoints.join(".optim-3.mpk.partial-1"), b"half").unwrap();
    let point = scan(&checkpoints);
    assert_eq!(point.epoch, Some(1));
    assert_eq!(point.rejected.len(), 1);
    assert_eq!(point.rejected[0].epoch, 2);
    assert!(
        point.rejected[0].reason.contains("model-2.mpk"),
        "{:?}",
        point.rejected
    );
    assert!(!checkpoints.join(".optim-3.mpk.partial-1").exists());
    let recovered = bits(seeded_run::<B>(&dir, 3, Some(1)));
    assert_eq!(recovered, straight, "resumed from epoch 1");
    for d in [straight_dir, dir] {
        std::fs::remove_dir_all(&d).ok();
    }
}

#[test]
fn atomic_writes_replace_the_whole_file() {
    let dir = artifact_dir("atomic");
    let path = dir.join("sub/file.json");
    write_atomically(&path, b"first").unwrap();
    write_atomically(&path, b"second, longer").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"second, longer");
    // Nothing else is left in the directory.
    let names: Vec<_> = std::fs::read_dir(dir.join("sub")).unwrap().collect();
    assert_eq!(names.len(), 1);
    // A path whose directory is a file fails cleanly.
    assert!(write_atomically(path.join("below"), b"x").is_err());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_seeded_loader_orders_each_epoch_by_seed_and_epoch_alone() {
    // Each epoch reseeds the backend's generator.
    let _rng = common::rng_lock();
    let (train, _) = tiny_data(1);
    let loader: SeededEpochLoader<B, TaskItem<Vec<f32>>, MultiTaskBatch<B, Tensor<B, 2>>> =
        SeededEpochLoader::new(MultiTaskBatcher::new(DenseCollate), train, 16, 5);
    let inputs = |loader: &SeededEpochLoader<_, _, _>| -> Vec<f32> {
        loader
            .iter()
            .flat_map(|b: MultiTaskBatch<B, Tensor<B, 2>>| {
                b.inputs.into_data().to_vec::<f32>().unwrap()
            })
            .collect()
    };
    let e1 = inputs(&loader);
    let e2 = inputs(&loader);
    assert_ne!(e1, e2, "epochs 1 and 2 share an order");
    assert_eq!(loader.next_epoch(), 3);
    let (train, _) = tiny_data(1);
    let fresh =
        SeededEpochLoader::new(MultiTaskBatcher::new(DenseCollate), train, 16, 5).starting_epoch(2);
    assert_eq!(
        inputs(&fresh),
        e2,
        "epoch 2 depends on where the loader started"
    );
    assert_eq!(loader.num_items(), 2 * 192);
    let mut order = loader.order(7);
    order.sort_unstable();
    assert_eq!(order, (0..2 * 192).collect::<Vec<_>>());
}

/// `epochs` epochs of the tiny model in `dir` with its guard attached and
/// atomic checkpoints; the guard afterwards.
fn guarded_run(dir: &std::path::Path, epochs: usize) -> DivergenceGuard {
    let model = tiny_model::<AB>(&Default::default());
    let (train, valid) = loaders(1);
    let training = SupervisedTraining::new(dir, train, valid)
        .metric_train_numeric(TaskLossMetric::overall())
        .metric_valid_numeric(TaskLossMetric::overall())
        .renderer(PlainRenderer::new());
    let guard = model.guard().clone();
    let training: Training = guard
        .attach(training, dir, 2)
        .with_file_checkpointer(AtomicMpkRecorder::<FullPrecisionSettings>::new())
        .num_epochs(epochs);
    training.launch(learner(model, epochs * ITERS_PER_EPOCH));
    guard
}

#[test]
fn a_checkpoint_that_cannot_be_written_stops_the_run_as_interrupted() {
    let _rng = common::rng_lock();
    let dir = artifact_dir("unwritable-checkpoint");
    let checkpoints = dir.join("checkpoint");
    // A directory where epoch 2's model file goes: writing it fails.
    std::fs::create_dir_all(checkpoints.join("model-2.mpk")).unwrap();
    let guard = guarded_run(&dir, 4);
    match guard.check() {
        Err(RunStopped::Interrupted { epoch, reason }) => {
            assert!(reason.contains("model-2.mpk"), "{reason}");
            assert!((2..=4).contains(&epoch), "epoch {epoch}: {reason}");
        }
        other => panic!("expected an interruption, got {other:?}"),
    }
    // Epoch 1 is kept whole, and nothing after the failure was saved.
    assert!(checkpoints.join("model-1.mpk").is_file());
    assert!(!checkpoints.join("model-3.mpk").exists());
    assert!(!checkpoints.join("model-4.mpk").exists());
    let point = last_complete_checkpoint::<Components, FullPrecisionSettings>(
        &checkpoints,
        4,
        &tiny_model::<AB>(&Default::default()),
        &Default::default(),
    );
    assert_eq!(point.epoch, Some(1), "{point:?}");
    assert_eq!(point.rejected[0].epoch, 2, "{point:?}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_metric_log_that_cannot_be_written_stops_the_run_instead_of_aborting() {
    let _rng = common::rng_lock();
    let dir = artifact_dir("unwritable-log");
    std::fs::create_dir_all(&dir).unwrap();
    // The training split's log directory cannot be made: a file holds its name.
    std::fs::write(dir.join("train"), b"not a directory").unwrap();
    let guard = guarded_run(&dir, 3);
    match guard.check() {
        Err(RunStopped::Interrupted { epoch, reason }) => {
            assert!(reason.contains("writing the metric log"), "{reason}");
            assert!(reason.contains("Loss.log"), "{reason}");
            assert!((1..=3).contains(&epoch), "epoch {epoch}: {reason}");
        }
        other => panic!("expected an interruption, got {other:?}"),
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_finished_run_checks_and_its_metric_logs_read_like_burn_trains() {
    let _rng = common::rng_lock();
    let dir = artifact_dir("checked-logs");
    let guard = guarded_run(&dir, 1);
    assert_eq!(guard.check(), Ok(()));
    // One line per training iteration, each a numeric entry burn-train parses.
    let log = std::fs::read_to_string(dir.join("train/epoch-1/Loss.log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), ITERS_PER_EPOCH, "{log}");
    for line in lines {
        assert!(NumericEntry::deserialize(line).is_ok(), "{line}");
    }
    assert!(dir.join("valid/epoch-1/Loss.log").is_file());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn check_tells_an_interruption_and_the_users_stop_apart() {
    let guard = DivergenceGuard::new();
    assert_eq!(guard.check(), Ok(()));
    guard.interrupter().stop(None);
    assert_eq!(
        guard.check(),
        Err(RunStopped::Interrupted {
            epoch: 1,
            reason: "reason unknown".into()
        })
    );

    let guard = DivergenceGuard::new();
    guard.starting_epoch(3);
    guard.stop_by_user();
    assert_eq!(guard.check(), Err(RunStopped::ByUser { epoch: 3 }));

    // The first reason is kept.
    let guard = DivergenceGuard::new();
    guard.interrupt("storage full");
    guard.interrupt("a later failure");
    let stopped = guard.check().unwrap_err();
    assert_eq!(stopped.epoch(), 1);
    assert_eq!(
        stopped.to_string(),
        "training was interrupted at epoch 1: storage full"
    );
}

#[test]
fn a_checkpoint_of_another_model_is_rejected_not_resumed() {
    let _rng = common::rng_lock();
    let dir = artifact_dir("foreign-checkpoint");
    guarded_run(&dir, 1).check().unwrap();
    let checkpoints = dir.join("checkpoint");
    let device = Default::default();
    let scan = |model: &Model| {
        last_complete_checkpoint::<Components, FullPrecisionSettings>(
            &checkpoints,
            1,
            model,
            &device,
        )
    };
    assert_eq!(scan(&tiny_model::<AB>(&device)).epoch, Some(1));
    for (config, what) in [
        (RLoraConfig::r_lora(2, 4.0, 2), "two heads, not three"),
        (RLoraConfig::r_lora(3, 4.0, 3), "rank 3, not 2"),
    ] {
        let base = LinearConfig::new(4, 8).init::<AB>(&device);
        let layer = RLoraLinear::from_linear(base, &config).unwrap();
        let other =
            MultiTaskClassifier::new(TinyBody { layer }, TaskHeads::new(8, &[3, 2], &device));
        let point = scan(&other);
        assert_eq!(point.epoch, None, "{what}: {point:?}");
        let reason = &point.rejected[0].reason;
        assert!(
            reason.contains("model-1.mpk does not fit the model"),
            "{what}: {reason}"
        );
        assert!(reason.contains("layer.adapter"), "{what}: {reason}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
