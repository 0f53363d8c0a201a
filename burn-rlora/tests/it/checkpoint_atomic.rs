//! A save that fails or is killed at any step leaves the adapter directory
//! holding the previous checkpoint or the new one, complete and loadable.
//! Needs the `store` feature.

use std::path::{Path, PathBuf};

use burn::tensor::DType;
use burn_rlora::checkpoint::{
    read_reference, AdapterFile, CheckpointError, InjectFault, LoadOptions,
};

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rlora-atomic-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Two different adapters (old and new).
fn old_and_new() -> (AdapterFile, AdapterFile) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hostile/valid");
    let old = read_reference(path, &LoadOptions::new()).unwrap();
    let mut new = old.clone();
    for m in new.modules.values_mut() {
        m.a.data.iter_mut().for_each(|v| *v += 1.0);
    }
    (old, new)
}

fn leftovers(parent: &Path) -> Vec<String> {
    std::fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

#[test]
fn a_failure_or_kill_at_every_step_leaves_old_or_new_checkpoint() {
    let (old, new) = old_and_new();
    let parent = tmp("steps");
    let dir = parent.join("adapter");
    let mut steps = 0;
    for exists in [true, false] {
        for step in 0.. {
            let mut fired_any = false;
            for fault in [InjectFault::Error(step), InjectFault::Kill(step)] {
                let _ = std::fs::remove_dir_all(&dir);
                if exists {
                    old.save(&dir, DType::F32).unwrap();
                }
                assert!(leftovers(&parent).is_empty(), "{:?}", leftovers(&parent));
                let (result, fired) = new.save_injecting(&dir, DType::F32, fault);
                fired_any |= fired;
                if !fired {
                    result.unwrap();
                    continue;
                }
                if let Err(e) = &result {
                    // Errors name the target, never a temporary path.
                    match e {
                        CheckpointError::Io { path, .. } => assert_eq!(path, &dir, "{e}"),
                        other => panic!("{fault:?}: {other:?}"),
                    }
                }
                // The directory holds the old or the new checkpoint, complete.
                match AdapterFile::read(&dir, &LoadOptions::new()) {
                    Ok(found) => assert!(
                        found.modules == old.modules || found.modules == new.modules,
                        "{fault:?}: a mixed checkpoint"
                    ),
                    Err(e) => {
                        // Only before the first save can there be nothing.
                        assert!(!exists, "{fault:?}: the previous checkpoint is gone: {e}");
                        assert!(!dir.exists(), "{fault:?}: a partial directory: {e}");
                    }
                }
                if result.is_ok() {
                    assert_eq!(
                        AdapterFile::read(&dir, &LoadOptions::new())
                            .unwrap()
                            .modules,
                        new.modules,
                        "{fault:?}: reported success without the new checkpoint"
                    );
                }
                if matches!(fault, InjectFault::Kill(_)) {
                    // The next save cleans up what the killed one left.
                    old.save(&dir, DType::F32).unwrap();
                    assert!(leftovers(&parent).is_empty(), "{:?}", leftovers(&parent));
                    assert_eq!(
                        AdapterFile::read(&dir, &LoadOptions::new())
                            .unwrap()
                            .modules,
                        old.modules
                    );
                } else {
                    let left = leftovers(&parent);
                    // Only a failed removal of the old directory may leave it behind.
                    assert!(left.len() <= 1, "{fault:?}: {left:?}");
                    old.save(&dir, DType::F32).unwrap();
                    assert!(leftovers(&parent).is_empty(), "{:?}", leftovers(&parent));
                }
            }
            if !fired_any {
                steps = steps.max(step);
                break;
            }
        }
    }
    // Parent, temporary directory, two files x (create, write, sync), sync,
    // swap, sync parent, remove old.
    assert!(steps >= 11, "only {steps} steps were exercised");
    std::fs::remove_dir_all(&parent).unwrap();
}

#[test]
fn a_directory_with_other_files_is_not_replaced() {
    let (old, new) = old_and_new();
    let dir = tmp("foreign");
    old.save(&dir, DType::F32).unwrap();
    std::fs::write(dir.join("notes.txt"), b"mine").unwrap();
    let err = new.save(&dir, DType::F32).unwrap_err();
    assert!(
        matches!(&err, CheckpointError::WouldLoseData { reason, .. } if reason.contains("notes.txt")),
        "{err:?}"
    );
    assert_eq!(std::fs::read(dir.join("notes.txt")).unwrap(), b"mine");
    assert_eq!(
        AdapterFile::read(&dir, &LoadOptions::new())
            .unwrap()
            .modules,
        old.modules
    );
    let file = dir.join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let err = new.save(&file, DType::F32).unwrap_err();
    assert!(
        matches!(err, CheckpointError::WouldLoseData { .. }),
        "{err:?}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn saves_into_an_empty_or_new_directory_work_and_leave_nothing_behind() {
    let (old, new) = old_and_new();
    let parent = tmp("fresh");
    let empty = parent.join("empty");
    std::fs::create_dir(&empty).unwrap();
    old.save(&empty, DType::F32).unwrap();
    new.save(&empty, DType::F32).unwrap();
    new.save(parent.join("nested/new"), DType::F32).unwrap();
    assert_eq!(
        AdapterFile::read(&empty, &LoadOptions::new())
            .unwrap()
            .modules,
        new.modules
    );
    assert!(leftovers(&parent).is_empty(), "{:?}", leftovers(&parent));
    std::fs::remove_dir_all(&parent).unwrap();
}
