//! The Burn BERT encoder on a tiny random config (no download): identity of
//! the adapted encoder at init, router gates, frozen base, padding invariance
//! of mean pooling, weight loading from a PyTorch-named safetensors file, and
//! input/config errors.

#![cfg(feature = "ndarray")]

use std::path::Path;

use burn::backend::{Autodiff, NdArray};
use burn::module::AutodiffModule;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData, Tolerance};
use burn_rlora::{ParamCount, RLoraConfig, RLoraLinear};
use burn_rlora_pretrained::datasets::DataError;
use burn_rlora_pretrained::minilm::{
    load_bert_weights, mean_pool, BertConfig, BertInput, BertModel, EncoderAdapterConfig,
    MiniLmError, TargetModule,
};

type B = NdArray<f32>;
type AD = Autodiff<B>;

const VOCAB: usize = 50;

/// A batch of two: 7 real tokens, and 4 real tokens plus 3 padding.
fn batch<Bk: Backend>(device: &Bk::Device) -> BertInput<Bk> {
    let ids = [[2, 11, 12, 13, 14, 15, 3], [2, 21, 22, 3, 0, 0, 0]];
    let mask = [[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0, 0]];
    let types = [[0, 0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 0, 0, 0]];
    let t = |v: [[i64; 7]; 2]| Tensor::<Bk, 2, Int>::from_data(TensorData::from(v), device);
    BertInput {
        input_ids: t(ids),
        token_type_ids: t(types),
        attention_mask: t(mask),
    }
}

/// A tiny encoder with all its parameters drawn (lazy params are drawn again on clone).
fn tiny_model<Bk: Backend>(device: &Bk::Device) -> BertModel<Bk> {
    let model = BertConfig::tiny(VOCAB)
        .init::<Bk>(device)
        .expect("valid config");
    let _ = model.forward(&batch(device));
    model
}

fn presets() -> Vec<(&'static str, RLoraConfig)> {
    vec![
        ("lora", RLoraConfig::lora(2, 8.0)),
        ("hydralora", RLoraConfig::hydra_lora(2, 8.0, 3)),
        ("rlora", RLoraConfig::r_lora(2, 8.0, 3)),
        ("rlora-norouter", RLoraConfig::r_lora_no_router(2, 8.0, 3)),
    ]
}

#[test]
fn adapted_encoder_equals_plain_encoder_at_init() {
    let device = Default::default();
    B::seed(&device, 1);
    let input = batch::<B>(&device);
    for targets in [
        TargetModule::FEED_FORWARD.to_vec(),
        TargetModule::ALL.to_vec(),
    ] {
        for (name, preset) in presets() {
            let plain = tiny_model::<B>(&device);
            let expected = plain.forward(&input);
            let config = EncoderAdapterConfig::new(preset).with_targets(targets.clone());
            let adapted = plain.adapt(&config).expect("adapts");
            assert_eq!(adapted.adapted_layers().len(), 2 * targets.len(), "{name}");
            let got = adapted.forward(&input);
            got.into_data()
                .assert_approx_eq::<f32>(&expected.into_data(), Tolerance::absolute(1e-5));
        }
    }
}

#[test]
fn random_heads_are_active_once_the_compensation_is_folded() {
    // Guard against an identity test that passes because the adapters are
    // never called: without the frozen compensation pair, R-LoRA's random
    // heads must move the output.
    let device = Default::default();
    B::seed(&device, 2);
    let input = batch::<B>(&device);
    let plain = tiny_model::<B>(&device);
    let expected = plain.forward(&input);
    let config = EncoderAdapterConfig::new(RLoraConfig::r_lora(2, 8.0, 3));
    let mut adapted = plain.adapt(&config).unwrap();
    for layer in adapted.encoder.layer.iter_mut() {
        if let Some(adapter) = layer.intermediate.dense.adapter.as_mut() {
            adapter.lora_b0 = None;
            adapter.lora_a0 = None;
        }
    }
    let moved = (adapted.forward(&input) - expected)
        .abs()
        .max()
        .into_scalar();
    assert!(moved > 1e-3, "adapters had no effect: {moved}");
}

#[test]
fn default_targets_are_the_feed_forward_projections() {
    let config = EncoderAdapterConfig::new(RLoraConfig::r_lora(2, 8.0, 3));
    let targets: Vec<TargetModule> = config.targets.iter().copied().collect();
    assert_eq!(targets, [TargetModule::Intermediate, TargetModule::Output]);
    for t in TargetModule::ALL {
        assert_eq!(t.as_str().parse::<TargetModule>().unwrap(), t);
        assert_eq!(t.hf_path().parse::<TargetModule>().unwrap(), t);
    }
    assert!("gate_proj".parse::<TargetModule>().is_err());
}

/// Each target adapts its own layer in every block, and only that one:
/// `output` is the feed-forward `output.dense`, not `attention.output.dense`.
#[test]
fn each_target_adapts_exactly_its_layer_in_every_block() {
    let device = Default::default();
    for target in TargetModule::ALL {
        let config = EncoderAdapterConfig::new(RLoraConfig::lora(2, 4.0)).with_targets([target]);
        let (model, adapted) = config
            .adapt_config()
            .adapt_listed(tiny_model::<B>(&device))
            .unwrap();
        let expected: Vec<String> = (0..2)
            .map(|i| format!("encoder.layer.{i}.{}", target.burn_path()))
            .collect();
        assert_eq!(adapted, expected, "{target}");
        let found: Vec<(usize, TargetModule)> = model
            .adapted_layers()
            .into_iter()
            .map(|(i, t, _)| (i, t))
            .collect();
        assert_eq!(found, [(0, target), (1, target)]);
    }
}

#[test]
fn gates_and_head_similarities_cover_every_routed_layer() {
    let device = Default::default();
    B::seed(&device, 3);
    let input = batch::<B>(&device);
    let model = tiny_model::<B>(&device)
        .adapt(&EncoderAdapterConfig::new(RLoraConfig::r_lora(2, 8.0, 3)))
        .unwrap();
    let out = model.forward_with_gates(&input);
    assert_eq!(out.hidden.dims(), [2, 7, 16]);
    let where_: Vec<(usize, TargetModule)> =
        out.gates.iter().map(|g| (g.layer, g.module)).collect();
    assert_eq!(
        where_,
        [
            (0, TargetModule::Intermediate),
            (0, TargetModule::Output),
            (1, TargetModule::Intermediate),
            (1, TargetModule::Output),
        ]
    );
    for g in &out.gates {
        assert_eq!(g.gates.dims(), [2, 7, 3]);
        // The router starts at zero: every head weighs 1/3 for every token.
        g.gates.clone().into_data().assert_approx_eq::<f32>(
            &Tensor::<B, 3>::full([2, 7, 3], 1.0 / 3.0, &device).into_data(),
            Tolerance::absolute(1e-6),
        );
    }
    let sims = model.head_similarities();
    assert_eq!(sims.len(), 4);
    for s in &sims {
        assert_eq!(s.similarity.num_heads, 3);
        // Independent random draws: far from identical heads.
        assert!(s.similarity.mean_pairwise.unwrap().abs() < 0.9);
    }

    // Plain LoRA has no router: no gates.
    let lora = tiny_model::<B>(&device)
        .adapt(&EncoderAdapterConfig::new(RLoraConfig::lora(2, 8.0)))
        .unwrap();
    assert!(lora.forward_with_gates(&input).gates.is_empty());
}

#[test]
fn only_adapters_train_and_one_step_leaves_the_base_unchanged() {
    let device = Default::default();
    AD::seed(&device, 4);
    let input = batch::<AD>(&device);
    let model = tiny_model::<AD>(&device)
        .adapt(&EncoderAdapterConfig::new(
            RLoraConfig::r_lora(2, 8.0, 3).with_dropout(0.0),
        ))
        .unwrap();
    let adapter_params: usize = model
        .adapted_layers()
        .iter()
        .map(|(_, _, l)| l.num_adapter_params())
        .sum();
    let count = ParamCount::of(&model);
    assert_eq!(count.trainable, adapter_params);
    assert!(count.total > count.trainable, "{count}");

    let before = model.valid().forward(&batch::<B>(&device));
    let word_before = model.embeddings.word_embeddings.weight.val().inner();
    let loss = model.sentence_embedding(&input).powi_scalar(2).mean();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let mut optim = AdamConfig::new().init();
    let model = optim.step(1e-2, model, grads);
    let after = model.valid().forward(&batch::<B>(&device));
    model
        .embeddings
        .word_embeddings
        .weight
        .val()
        .inner()
        .into_data()
        .assert_eq(&word_before.into_data(), true);
    let moved = (after - before).abs().max().into_scalar();
    assert!(moved > 1e-5, "the step changed nothing: {moved}");
}

#[test]
fn mean_pooling_ignores_padding() {
    let device = Default::default();
    B::seed(&device, 5);
    let model = tiny_model::<B>(&device);
    let padded = model.sentence_embedding(&batch::<B>(&device));
    // The second sentence alone, without padding.
    let alone = BertInput::<B> {
        input_ids: Tensor::from_data(TensorData::from([[2i64, 21, 22, 3]]), &device),
        token_type_ids: Tensor::zeros([1, 4], &device),
        attention_mask: Tensor::ones([1, 4], &device),
    };
    let single = model.sentence_embedding(&alone);
    padded
        .slice([1..2, 0..16])
        .into_data()
        .assert_approx_eq::<f32>(&single.into_data(), Tolerance::absolute(1e-5));

    // mean_pool itself: the mean over masked positions.
    let hidden = Tensor::<B, 3>::from_data(
        TensorData::from([[[1.0f32, 2.0], [3.0, 4.0], [100.0, 100.0]]]),
        &device,
    );
    let mask = Tensor::<B, 2, Int>::from_data(TensorData::from([[1i64, 1, 0]]), &device);
    mean_pool(hidden, mask)
        .into_data()
        .assert_eq(&TensorData::from([[2.0f32, 3.0]]), false);
}

#[test]
fn bad_inputs_are_errors() {
    let device = Default::default();
    let model = tiny_model::<B>(&device);
    let good = batch::<B>(&device);
    assert!(model.try_forward(&good).is_ok());

    let mut out_of_vocab = good.clone();
    out_of_vocab.input_ids = out_of_vocab.input_ids.add_scalar(VOCAB as i64);
    let err = model.try_forward(&out_of_vocab).unwrap_err();
    assert!(
        err.to_string().contains("input_ids must be in [0, 50)"),
        "{err}"
    );

    let mut wrong_shape = good.clone();
    wrong_shape.attention_mask = Tensor::ones([2, 6], &device);
    assert!(matches!(
        model.try_forward(&wrong_shape),
        Err(MiniLmError::InvalidArgument(_))
    ));

    let too_long = BertInput::<B> {
        input_ids: Tensor::zeros([1, 65], &device),
        token_type_ids: Tensor::zeros([1, 65], &device),
        attention_mask: Tensor::ones([1, 65], &device),
    };
    let err = model.try_forward(&too_long).unwrap_err();
    assert!(
        err.to_string()
            .contains("exceeds max_position_embeddings 64"),
        "{err}"
    );
}

#[test]
fn config_reads_hugging_face_json_and_rejects_unsupported_models() {
    let dir = std::env::temp_dir().join(format!("burn-rlora-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.json");
    // The fields of all-MiniLM-L6-v2's config.json.
    let json = r#"{"_name_or_path": "nreimers/MiniLM-L6-H384-uncased", "architectures": ["BertModel"],
        "attention_probs_dropout_prob": 0.1, "gradient_checkpointing": false, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "hidden_size": 384, "initializer_range": 0.02,
        "intermediate_size": 1536, "layer_norm_eps": 1e-12, "max_position_embeddings": 512,
        "model_type": "bert", "num_attention_heads": 12, "num_hidden_layers": 6, "pad_token_id": 0,
        "position_embedding_type": "absolute", "transformers_version": "4.8.2",
        "type_vocab_size": 2, "use_cache": true, "vocab_size": 30522}"#;
    std::fs::write(&path, json).unwrap();
    assert_eq!(
        BertConfig::from_json_file(&path).unwrap(),
        BertConfig::minilm_l6()
    );

    std::fs::write(&path, json.replace("\"gelu\"", "\"relu\"")).unwrap();
    let err = BertConfig::from_json_file(&path).unwrap_err();
    assert!(matches!(err, MiniLmError::BadConfig(_)), "{err:?}");
    std::fs::write(
        &path,
        json.replace("\"num_attention_heads\": 12", "\"num_attention_heads\": 7"),
    )
    .unwrap();
    let err = BertConfig::from_json_file(&path).unwrap_err();
    assert!(err.to_string().contains("not a multiple"), "{err}");
    std::fs::write(&path, "{ not json").unwrap();
    assert!(matches!(
        BertConfig::from_json_file(&path),
        Err(MiniLmError::Json { .. })
    ));
    let err = BertConfig::from_json_file(dir.join("absent.json")).unwrap_err();
    assert!(
        matches!(err, MiniLmError::Data(DataError::DataMissing { .. })),
        "{err:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// A tensor as (name, shape, little-endian f32 bytes).
type Named = (String, Vec<usize>, Vec<u8>);

fn named<const D: usize>(name: String, t: Tensor<B, D>) -> Named {
    let shape = t.dims().to_vec();
    let values: Vec<f32> = t.into_data().to_vec().unwrap();
    (
        name,
        shape,
        values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    )
}

fn linear_of(m: &RLoraLinear<B>) -> &RLoraLinear<B> {
    assert!(!m.is_adapted(), "plain model");
    m
}

/// The model's parameters under Hugging Face's `BertModel` names, in PyTorch
/// layout (linear weights `[out, in]`, LayerNorm `weight`/`bias`), written
/// independently of burn-store.
fn hf_tensors(model: &BertModel<B>) -> Vec<Named> {
    let mut out = Vec::new();
    let e = &model.embeddings;
    for (n, emb) in [
        ("word_embeddings", &e.word_embeddings),
        ("position_embeddings", &e.position_embeddings),
        ("token_type_embeddings", &e.token_type_embeddings),
    ] {
        out.push(named(format!("embeddings.{n}.weight"), emb.weight.val()));
    }
    let norm = |out: &mut Vec<Named>, prefix: String, ln: &burn::nn::LayerNorm<B>| {
        out.push(named(format!("{prefix}.LayerNorm.weight"), ln.gamma.val()));
        out.push(named(
            format!("{prefix}.LayerNorm.bias"),
            ln.beta.as_ref().unwrap().val(),
        ));
    };
    norm(&mut out, "embeddings".into(), &e.layer_norm);
    for (i, layer) in model.encoder.layer.iter().enumerate() {
        for t in TargetModule::ALL {
            let l = linear_of(layer.linear(t));
            let p = format!("encoder.layer.{i}.{}", t.hf_path());
            out.push(named(format!("{p}.weight"), l.weight.val().transpose()));
            out.push(named(format!("{p}.bias"), l.bias.as_ref().unwrap().val()));
        }
        norm(
            &mut out,
            format!("encoder.layer.{i}.attention.output"),
            &layer.attention.output.layer_norm,
        );
        norm(
            &mut out,
            format!("encoder.layer.{i}.output"),
            &layer.output.layer_norm,
        );
    }
    // Present in the real file, not used by the encoder.
    let pooler = Tensor::<B, 2>::ones([16, 16], &Default::default());
    out.push(named("pooler.dense.weight".into(), pooler));
    out
}

fn write_safetensors(path: &Path, tensors: &[Named], position_ids: bool) {
    use safetensors::tensor::TensorView;
    use safetensors::Dtype;
    let ids: Vec<u8> = (0..64i64).flat_map(|v| v.to_le_bytes()).collect();
    let mut views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    if position_ids {
        views.push((
            "embeddings.position_ids".into(),
            TensorView::new(Dtype::I64, vec![1, 64], &ids).unwrap(),
        ));
    }
    safetensors::serialize_to_file(views, None, path).unwrap();
}

#[test]
fn weights_load_from_a_pytorch_named_safetensors_file() {
    let device = Default::default();
    B::seed(&device, 6);
    let source = tiny_model::<B>(&device);
    let input = batch::<B>(&device);
    let expected = source.forward(&input);
    let tensors = hf_tensors(&source);
    let dir = std::env::temp_dir().join(format!("burn-rlora-weights-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.safetensors");
    write_safetensors(&path, &tensors, true);

    // A fresh model with other random weights computes the source's outputs once loaded.
    B::seed(&device, 7);
    let fresh = tiny_model::<B>(&device);
    let differs = (fresh.forward(&input) - expected.clone())
        .abs()
        .max()
        .into_scalar();
    assert!(differs > 1e-3);
    let loaded = load_bert_weights(fresh, &path).expect("loads");
    loaded
        .forward(&input)
        .into_data()
        .assert_approx_eq::<f32>(&expected.into_data(), Tolerance::absolute(1e-6));

    // A missing tensor is an error naming it.
    let without: Vec<Named> = tensors
        .iter()
        .filter(|(n, _, _)| n != "encoder.layer.1.output.dense.weight")
        .cloned()
        .collect();
    write_safetensors(&path, &without, true);
    let err = load_bert_weights(tiny_model::<B>(&device), &path).unwrap_err();
    assert!(matches!(err, MiniLmError::Weights { .. }), "{err:?}");

    // A tensor the encoder does not know (a naming mismatch) is an error too.
    let mut extra = tensors.clone();
    extra.push(named(
        "encoder.layer.0.attention.self.rotary.weight".into(),
        Tensor::<B, 1>::ones([4], &device),
    ));
    write_safetensors(&path, &extra, false);
    let err = load_bert_weights(tiny_model::<B>(&device), &path).unwrap_err();
    assert!(err.to_string().contains("rotary"), "{err}");

    let err =
        load_bert_weights(tiny_model::<B>(&device), dir.join("absent.safetensors")).unwrap_err();
    assert!(err.to_string().contains("scripts/fetch-data.sh"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}
