//! One training step of the real MiniLM pipeline (fetched data, tokenizer,
//! pretrained weights, multi-task batch, `TrainStep`, Adam): the loss is
//! finite, the frozen base does not move, the adapters and heads do. Skipped
//! with a message when `data/` has not been fetched (fails instead with
//! `BURN_RLORA_REQUIRE_DATA` set).

#![cfg(feature = "ndarray")]

use crate::common;

use burn::backend::{Autodiff, NdArray};
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::optim::{AdamConfig, Optimizer};
use burn::tensor::backend::Backend;
use burn::train::TrainStep;
use burn_rlora::method::Method;
use burn_rlora::multitask::{MultiTaskBatcher, MultiTaskClassifier, SamplingStrategy, TaskId};
use burn_rlora::ParamCount;
use burn_rlora_examples::harness::compare::{task_dataset, TrainSettings};
use burn_rlora_pretrained::minilm::{
    build_classifier, prepare_tasks, BertModel, MiniLmMethod, MiniLmPaths, MiniLmTokenizer,
    SplitSettings, TargetModule, TokenCollate,
};

type AD = Autodiff<NdArray<f32>>;

const MAX_LEN: usize = 16;

fn settings() -> TrainSettings {
    TrainSettings {
        rank: 2,
        heads: 3,
        alpha: 8.0,
        dropout: 0.0,
        epochs: 1,
        batch_size: 16,
        lr: 1e-3,
        balance: 0.0,
        sampling: SamplingStrategy::Temperature(2.0),
        devices: 1,
        trace_every: 0,
        plain: true,
        resume: false,
        steps: Default::default(),
    }
}

fn max_abs_diff<Bk: Backend, const D: usize>(
    a: burn::tensor::Tensor<Bk, D>,
    b: burn::tensor::Tensor<Bk, D>,
) -> f32 {
    use burn::tensor::ElementConversion;
    (a - b).abs().max().into_scalar().elem::<f32>()
}

#[test]
fn one_training_step_trains_adapters_and_heads_only() {
    let Some(data) =
        common::fetched_data_or_skip("one_training_step_trains_adapters_and_heads_only")
    else {
        return;
    };
    let paths = MiniLmPaths::in_data_dir(&data).unwrap();
    let tokenizer = MiniLmTokenizer::from_file(&paths.tokenizer, MAX_LEN).unwrap();
    let split = SplitSettings {
        test_fraction: 0.2,
        train_per_task: 4,
        test_per_task: 2,
        split_seed: 7,
    };
    let tasks = prepare_tasks(&data, &tokenizer, &split).unwrap();
    assert_eq!(
        tasks.iter().map(|t| t.labels.len()).collect::<Vec<_>>(),
        vec![5, 2, 3, 2]
    );
    for t in &tasks {
        assert_eq!((t.train.len(), t.test.len()), (4, 2), "{}", t.name);
        for (ids, label) in t.train.iter().chain(&t.test) {
            assert!(
                ids.len() >= 3 && ids.len() <= MAX_LEN,
                "{}: {ids:?}",
                t.name
            );
            assert_eq!(ids[0], 101, "{}: starts with [CLS]", t.name);
            assert!(*label < t.labels.len());
        }
    }

    let device = Default::default();
    AD::seed(&device, 1);
    let (rank, model) = build_classifier::<AD>(
        &data,
        MiniLmMethod::Adapter(Method::RLora),
        &settings(),
        MAX_LEN,
        &tasks,
        &device,
    )
    .unwrap();
    assert_eq!(rank, 2);
    let adapter_params: usize = model
        .body
        .adapted_layers()
        .iter()
        .map(|(_, _, l)| l.num_adapter_params())
        .sum();
    let head_params = 384 * 12 + 12; // 5 + 2 + 3 + 2 classes
    assert_eq!(
        ParamCount::of(&model).trainable,
        adapter_params + head_params
    );

    let dataset = task_dataset(
        &tasks,
        |t| t.train.clone(),
        SamplingStrategy::Temperature(2.0),
        1,
    )
    .unwrap();
    let items: Vec<_> = (0..dataset.len())
        .map(|i| dataset.get(i).unwrap())
        .collect();
    let batch = MultiTaskBatcher::new(TokenCollate).batch(items, &device);
    let mut present: Vec<TaskId> = batch.tasks.clone();
    present.sort();
    present.dedup();
    assert_eq!(present.len(), 4, "every task is in the batch");

    // Block 0's feed-forward up-projection: its frozen base, heads and A.
    let layer = |m: &MultiTaskClassifier<AD, BertModel<AD>>| {
        let l = m.body.encoder.layer[0].linear(TargetModule::Intermediate);
        assert!(l.is_adapted(), "the feed-forward projections are adapted");
        (
            l.weight.val().inner(),
            l.adapter.as_ref().unwrap().lora_b.val().inner(),
            l.adapter.as_ref().unwrap().lora_a.val().inner(),
        )
    };
    let (w0, b0, a0) = layer(&model);
    let words0 = model.body.embeddings.word_embeddings.weight.val().inner();
    let head0 = model.heads.heads[0].weight.val().inner();

    let out = TrainStep::step(&model, batch);
    let loss: f32 = burn::tensor::ElementConversion::elem(out.item.loss.clone().into_scalar());
    assert!(loss.is_finite() && loss > 0.0, "loss {loss}");
    let model = AdamConfig::new().init().step(1e-3, model, out.grads);

    let (w1, b1, a1) = layer(&model);
    assert_eq!(max_abs_diff(w0, w1), 0.0, "the frozen base weight moved");
    assert_eq!(
        max_abs_diff(
            words0,
            model.body.embeddings.word_embeddings.weight.val().inner()
        ),
        0.0,
        "the frozen embeddings moved"
    );
    assert!(max_abs_diff(b0, b1) > 1e-5, "the heads B did not move");
    assert!(max_abs_diff(a0, a1) > 1e-5, "A did not move");
    assert!(
        max_abs_diff(head0, model.heads.heads[0].weight.val().inner()) > 1e-5,
        "the task head did not move"
    );
}

#[test]
fn the_probe_trains_the_heads_only() {
    let Some(data) = common::fetched_data_or_skip("the_probe_trains_the_heads_only") else {
        return;
    };
    let paths = MiniLmPaths::in_data_dir(&data).unwrap();
    let tokenizer = MiniLmTokenizer::from_file(&paths.tokenizer, MAX_LEN).unwrap();
    let split = SplitSettings {
        test_fraction: 0.2,
        train_per_task: 2,
        test_per_task: 1,
        split_seed: 7,
    };
    let tasks = prepare_tasks(&data, &tokenizer, &split).unwrap();
    let (rank, model) = build_classifier::<AD>(
        &data,
        MiniLmMethod::Probe,
        &settings(),
        MAX_LEN,
        &tasks,
        &Default::default(),
    )
    .unwrap();
    assert_eq!(rank, 0);
    assert!(model.body.adapted_layers().is_empty());
    let count = ParamCount::of(&model);
    assert_eq!(count.trainable, 384 * 12 + 12);
    assert!(count.total > 22_000_000, "{count}");
}

#[test]
fn stratified_subsamples_have_the_exact_size_and_the_class_shares() {
    use burn_rlora_pretrained::datasets::{stratified_subsample, TextExample};
    // 60 / 30 / 10 examples of three classes.
    let examples: Vec<TextExample> = (0..100)
        .map(|i| TextExample {
            text: format!("text {i}"),
            label: if i < 60 {
                0
            } else if i < 90 {
                1
            } else {
                2
            },
        })
        .collect();
    for n in [1usize, 2, 7, 10, 33, 99] {
        let picked = stratified_subsample(&examples, n, 3);
        assert_eq!(picked.len(), n, "n = {n}");
        let mut counts = [0usize; 3];
        for e in &picked {
            counts[e.label] += 1;
        }
        for (c, share) in [0.6, 0.3, 0.1].into_iter().enumerate() {
            let exact = share * n as f64;
            assert!(
                (counts[c] as f64 - exact).abs() < 1.0,
                "n = {n}: class {c} got {} for a share of {exact}",
                counts[c]
            );
        }
        let mut texts: Vec<&str> = picked.iter().map(|e| e.text.as_str()).collect();
        texts.sort();
        texts.dedup();
        assert_eq!(texts.len(), n, "drawn without replacement");
        assert_eq!(
            picked,
            stratified_subsample(&examples, n, 3),
            "deterministic"
        );
    }
    assert_eq!(stratified_subsample(&examples, 500, 3).len(), 100);
}
