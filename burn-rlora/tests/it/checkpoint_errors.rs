//! Adapter checkpoints that must not load or save: every load error, named
//! by key, and saves that fail or would lose data. Needs the `store` feature.

use crate::{checkpoint_common, common};

use burn::nn::LinearConfig;
use burn::tensor::backend::Backend;
use burn_rlora::checkpoint::{
    load_adapter, save_adapter, AdapterFile, CheckpointError, InjectFault, LoadOptions,
    ModuleNaming, SaveOptions, CONFIG_FILE, TENSORS_FILE,
};
use burn_rlora::{RLoraConfig, RLoraLinear};
use checkpoint_common::*;

// -------------------------------------------------------------- error cases

#[test]
fn missing_key_is_named() {
    let config = RLoraConfig::r_lora(4, 16.0, 3);
    let (fresh, dir) = saved("missing", &config);
    rewrite(&dir, |all| {
        all.retain(|(n, ..)| n != "up_proj.lora_B1.weight")
    });
    let err = load_err(fresh, &dir, &LoadOptions::new());
    match &err {
        CheckpointError::MissingKey { key, expected } => {
            assert_eq!(key, "up_proj.lora_B1.weight");
            assert!(expected.contains("12, 4"), "{expected}");
        }
        other => panic!("wrong error: {other}"),
    }
    assert!(err.to_string().contains("up_proj.lora_B1.weight"));
}

#[test]
fn unexpected_key_fails_strict_and_warns_lenient() {
    let config = RLoraConfig::r_lora(4, 16.0, 3);
    let (fresh, dir) = saved("unexpected", &config);
    rewrite(&dir, |all| {
        all.push((
            "up_proj.lora_magnitude".into(),
            safetensors::Dtype::F32,
            vec![2],
            vec![0; 8],
        ))
    });
    let err = load_err(fresh.clone(), &dir, &LoadOptions::new());
    assert!(
        matches!(&err, CheckpointError::UnexpectedKey { key, found, .. } if key == "up_proj.lora_magnitude" && found == &vec![2]),
        "{err}"
    );
    let (_, report) = load_adapter(fresh, &dir, &LoadOptions::new().with_strict(false)).unwrap();
    assert_eq!(report.warnings.len(), 1);
    assert!(report.warnings[0].contains("up_proj.lora_magnitude"));
}

#[test]
fn shape_mismatch_in_file_and_against_model() {
    let config = RLoraConfig::r_lora(4, 16.0, 3);
    let (fresh, dir) = saved("shape", &config);
    // A model whose up_proj has 9 inputs does not take an 8-input adapter.
    let d = dev();
    let other = Mlp {
        up_proj: RLoraLinear::from_linear(LinearConfig::new(9, 12).init(&d), &config).unwrap(),
        ..fresh.clone()
    };
    let err = load_err(other, &dir, &LoadOptions::new());
    assert!(
        matches!(&err, CheckpointError::ShapeMismatch { key, expected, found }
            if key == "up_proj.lora_A.weight" && expected == &vec![4, 9] && found == &vec![4, 8]),
        "{err}"
    );
    // A head whose shape disagrees with the others in the file.
    rewrite(&dir, |all| {
        let h = all
            .iter_mut()
            .find(|(n, ..)| n == "up_proj.lora_B2.weight")
            .unwrap();
        h.2 = vec![6, 8];
    });
    let err = load_err(fresh, &dir, &LoadOptions::new());
    assert!(
        matches!(&err, CheckpointError::ShapeMismatch { key, expected, found }
            if key == "up_proj.lora_B2.weight" && expected == &vec![12, 4] && found == &vec![6, 8]),
        "{err}"
    );
}

#[test]
fn unsupported_dtype_is_named() {
    let config = RLoraConfig::r_lora(4, 16.0, 3);
    let (fresh, dir) = saved("dtype", &config);
    rewrite(&dir, |all| {
        let a = all
            .iter_mut()
            .find(|(n, ..)| n == "down_proj.lora_A.weight")
            .unwrap();
        a.1 = safetensors::Dtype::I32;
    });
    let err = load_err(fresh, &dir, &LoadOptions::new());
    assert!(
        matches!(&err, CheckpointError::UnsupportedDtype { key, found } if key == "down_proj.lora_A.weight" && found == "I32"),
        "{err}"
    );
}

#[test]
fn truncated_or_corrupt_files_are_errors() {
    let config = RLoraConfig::lora(4, 8.0);
    let (fresh, dir) = saved("corrupt", &config);
    let (json, bytes) = read_bytes(&dir);
    // The digest in the config catches a truncated tensor file first.
    let cut = &bytes[..bytes.len() - 7];
    let err = AdapterFile::from_bytes(&json, cut, &LoadOptions::new()).unwrap_err();
    assert!(
        matches!(&err, CheckpointError::ConfigMismatch { key, .. } if key == "tensor_file"),
        "{err}"
    );
    // Without a digest, the safetensors reader reports it.
    let mut v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    v.as_object_mut().unwrap().remove("tensor_file");
    let json2 = serde_json::to_vec(&v).unwrap();
    for bad in [cut, &bytes[..5], &[0xff; 64][..], &[][..]] {
        let err = AdapterFile::from_bytes(&json2, bad, &LoadOptions::new()).unwrap_err();
        assert!(
            matches!(err, CheckpointError::CorruptTensors { .. }),
            "{err}"
        );
    }
    // A corrupt config.
    std::fs::write(dir.join(CONFIG_FILE), &json[..json.len() / 2]).unwrap();
    let err = load_err(fresh.clone(), &dir, &LoadOptions::new());
    assert!(
        matches!(err, CheckpointError::CorruptConfig { .. }),
        "{err}"
    );
    // A missing file.
    std::fs::remove_file(dir.join(TENSORS_FILE)).unwrap();
    std::fs::write(dir.join(CONFIG_FILE), &json).unwrap();
    let err = load_err(fresh, &dir, &LoadOptions::new());
    assert!(
        matches!(&err, CheckpointError::Io { path, .. } if path.ends_with(TENSORS_FILE)),
        "{err}"
    );
}

#[test]
fn config_disagreeing_with_tensors_is_an_error() {
    let config = RLoraConfig::r_lora(4, 16.0, 3);
    let (fresh, dir) = saved("nums", &config);
    // lora_nums = 2 (and the rlora config with it) but the file has 3 heads.
    edit_config(&dir, |c| {
        c["lora_nums"] = 2.into();
        c["rlora"]["num_heads"] = 2.into();
    });
    let err = load_err(fresh.clone(), &dir, &LoadOptions::new());
    match &err {
        CheckpointError::ConfigMismatch {
            key,
            expected,
            found,
        } => {
            assert_eq!(key, "lora_nums");
            assert!(expected.contains('2'), "{expected}");
            assert!(found.contains("lora_B2"), "{found}");
        }
        other => panic!("wrong error: {other}"),
    }
    // The reference field and the full config disagree.
    edit_config(&dir, |c| {
        c["rlora"]["num_heads"] = 3.into();
    });
    let err = load_err(fresh.clone(), &dir, &LoadOptions::new());
    assert!(
        matches!(&err, CheckpointError::ConfigMismatch { key, .. } if key == "lora_nums"),
        "{err}"
    );
    // The model was built with another config than the file's.
    edit_config(&dir, |c| c["lora_nums"] = 3.into());
    let err = load_err(
        fresh,
        &dir,
        &LoadOptions::new().with_expected_config(config.clone().with_alpha(8.0)),
    );
    assert!(
        matches!(&err, CheckpointError::ConfigMismatch { key, .. } if key == "rlora"),
        "{err}"
    );
}

#[test]
fn unknown_format_version_is_an_error() {
    let config = RLoraConfig::r_lora(4, 16.0, 3);
    let (fresh, dir) = saved("version", &config);
    edit_config(&dir, |c| c["burn_rlora_format"] = 7.into());
    let err = load_err(fresh, &dir, &LoadOptions::new());
    assert!(
        matches!(&err, CheckpointError::UnknownFormatVersion { expected, found: 7 } if expected == &vec![1]),
        "{err}"
    );
}

#[test]
fn model_and_file_structure_disagreements_are_errors() {
    let config = RLoraConfig::r_lora(4, 16.0, 3);
    let (fresh, dir) = saved("structure", &config);
    // A model with 2 heads per layer.
    let two = RLoraConfig::r_lora(4, 16.0, 2);
    let err = load_err(fresh_like(&fresh, &two), &dir, &LoadOptions::new());
    assert!(
        matches!(&err, CheckpointError::ConfigMismatch { key, .. } if key == "lora_nums"),
        "{err}"
    );
    // A file without compensation pair into a model that has one.
    let lora_dir = tmp("structure-lora");
    let hydra = RLoraConfig::hydra_lora(4, 16.0, 3);
    save_default(&fresh_like(&fresh, &hydra), &hydra, &lora_dir);
    let err = load_err(fresh.clone(), &lora_dir, &LoadOptions::new());
    assert!(
        matches!(&err, CheckpointError::MissingKey { key, .. } if key == "up_proj.rlora_A0.weight"),
        "{err}"
    );
    // Saving with a config that does not describe the layers.
    let err = save_adapter(&fresh, tmp("structure-save"), &SaveOptions::new(hydra)).unwrap_err();
    assert!(
        matches!(&err, CheckpointError::ConfigMismatch { key, .. } if key.contains("compensation")),
        "{err}"
    );
    // A model with no adapted layer (a plain `Linear` is not even `Adapt`).
    let plain = RLoraLinear::from(LinearConfig::new(4, 4).init::<NB>(&dev()));
    let err = save_adapter(&plain, tmp("structure-none"), &SaveOptions::new(config)).unwrap_err();
    assert!(matches!(err, CheckpointError::NoAdapters), "{err}");
}

#[test]
fn bad_naming_rules_are_errors() {
    let config = RLoraConfig::r_lora(4, 16.0, 3);
    let model = mlp(&config);
    let dir = tmp("naming");
    let err = save_adapter(
        &model,
        &dir,
        &SaveOptions::new(config.clone()).with_naming(ModuleNaming::new().with_rule("(", "x")),
    )
    .unwrap_err();
    assert!(
        matches!(&err, CheckpointError::InvalidRule { pattern, .. } if pattern == "("),
        "{err}"
    );
    let err = save_adapter(
        &model,
        &dir,
        &SaveOptions::new(config).with_naming(ModuleNaming::new().with_rule(".*", "same")),
    )
    .unwrap_err();
    assert!(
        matches!(&err, CheckpointError::DuplicateModuleName { name, .. } if name == "same"),
        "{err}"
    );
}

// ------------------------------------------------------------- atomic saves

#[test]
fn failed_save_leaves_previous_checkpoint_intact() {
    let config = RLoraConfig::r_lora(4, 16.0, 3);
    let (fresh, dir) = saved("atomic", &config);
    let before = read_bytes(&dir);
    let _rng = common::rng_lock();
    NB::seed(&dev(), 77);
    let other = trained(mlp(&config));
    // An I/O error while the new tensor file is written (step 3: after the
    // parent and the temporary directory, creating the file worked).
    let (file, dtype) = AdapterFile::from_model(&other, &SaveOptions::new(config.clone())).unwrap();
    let (result, fired) = file.save_injecting(&*dir, dtype, InjectFault::Error(3));
    assert!(fired);
    let err = result.unwrap_err();
    assert!(
        matches!(&err, CheckpointError::Io { path, .. } if path.as_path() == &*dir),
        "{err}"
    );
    assert_eq!(read_bytes(&dir), before, "the previous checkpoint changed");
    assert!(load_adapter(fresh, &dir, &LoadOptions::new()).is_ok());
    // A foreign file in the directory: the save refuses rather than drop it.
    std::fs::write(dir.join("notes.txt"), b"x").unwrap();
    let err = save_adapter(&other, &dir, &SaveOptions::new(config.clone())).unwrap_err();
    assert!(
        matches!(err, CheckpointError::WouldLoseData { .. }),
        "{err}"
    );
    assert_eq!(read_bytes(&dir), before);
    std::fs::remove_file(dir.join("notes.txt")).unwrap();
    // Then the save goes through and replaces both files, leaving nothing else.
    save_adapter(&other, &dir, &SaveOptions::new(config)).unwrap();
    assert_ne!(read_bytes(&dir).1, before.1);
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "temporary files left: {names:?}");
    let parent = dir.parent().unwrap();
    let prefix = format!(".{}.rlora-", dir.file_name().unwrap().to_string_lossy());
    let hidden: Vec<_> = std::fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");
}

#[test]
fn config_from_another_save_is_detected() {
    let config = RLoraConfig::r_lora(4, 16.0, 3);
    let (fresh, dir) = saved("digest", &config);
    let old_json = read_bytes(&dir).0;
    let _rng = common::rng_lock();
    NB::seed(&dev(), 78);
    save_default(&trained(mlp(&config)), &config, &dir);
    // As if a crash happened between the two renames.
    std::fs::write(dir.join(CONFIG_FILE), old_json).unwrap();
    let err = load_err(fresh, &dir, &LoadOptions::new());
    assert!(
        matches!(&err, CheckpointError::ConfigMismatch { key, .. } if key == "tensor_file"),
        "{err}"
    );
}
