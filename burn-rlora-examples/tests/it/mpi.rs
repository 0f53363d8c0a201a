//! Data-parallel training over MPI on loopback (feature `mpi`; needs
//! `mpirun` on the PATH, e.g. Debian's `openmpi-bin`).
//!
//! Two ranks on this machine (shared memory, TCP restricted to the loopback
//! interface) train a few steps of the built-in task on ndarray; the result
//! must be bit-identical on both ranks and agree with one process trained on
//! the same combined batches. A rank that dies must stop the job with an
//! error, not hang it. Every run is bounded by `timeout` and mpirun's own
//! `--timeout`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_multitask-mpi");
/// Upper bound of one run, in seconds (a run takes a few seconds).
const LIMIT_S: u64 = 240;

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("burn-rlora-mpi-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The training options shared by every run: 1 epoch of a twentieth of the
/// data, 16 examples per rank and step, no dropout (so that runs are comparable).
fn train_args(out: &Path) -> Vec<String> {
    [
        "--backend",
        "ndarray",
        "--method",
        "rlora",
        "--epochs",
        "1",
        "--data-scale",
        "0.05",
        "--batch-size",
        "16",
        "--lr",
        "0.01",
        "--dropout",
        "0",
        "--seed",
        "3",
        "--dump-params",
        "--out",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([out.display().to_string()])
    .collect()
}

/// `mpirun -np 2` of the trainer on this machine only, loopback only, bounded in time.
fn mpirun(args: &[String]) -> (Output, Duration) {
    let start = Instant::now();
    let out = Command::new("timeout")
        .args(["-k", "10", &LIMIT_S.to_string(), "mpirun"])
        .args(["-np", "2", "--oversubscribe", "--bind-to", "none"])
        .args(["--timeout", &(LIMIT_S - 20).to_string()])
        .args(["--mca", "btl", "self,vader,tcp"])
        .args(["--mca", "btl_tcp_if_include", "lo"])
        .args(["--mca", "oob_tcp_if_include", "lo"])
        .arg(BIN)
        .args(args)
        .output()
        .expect("`timeout` and `mpirun` run (install openmpi-bin)");
    (out, start.elapsed())
}

fn text(out: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn params(path: PathBuf) -> Vec<f32> {
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn report(dir: &Path) -> serde_json::Value {
    let path = dir.join("report.json");
    let s = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&s).expect("report.json parses")
}

fn losses(report: &serde_json::Value) -> Vec<f64> {
    report["loss_per_step"]
        .as_array()
        .expect("loss_per_step")
        .iter()
        .map(|v| v.as_f64().expect("a number"))
        .collect()
}

#[test]
fn two_ranks_agree_bit_for_bit_and_match_one_process_on_the_combined_batches() {
    let dist = temp("dist");
    let (out, elapsed) = mpirun(&train_args(&dist));
    assert!(
        out.status.success(),
        "the 2-rank run failed:\n{}",
        text(&out)
    );
    assert!(elapsed < Duration::from_secs(LIMIT_S));

    let rank0 = params(dist.join("params-rank0.f32"));
    let rank1 = params(dist.join("params-rank1.f32"));
    assert!(!rank0.is_empty());
    assert!(
        rank0
            .iter()
            .map(|v| v.to_bits())
            .eq(rank1.iter().map(|v| v.to_bits())),
        "the ranks ended with different weights"
    );

    let dist_report = report(&dist);
    assert_eq!(dist_report["ranks"], 2);
    let dist_losses = losses(&dist_report);
    let steps = dist_report["steps"].as_u64().expect("steps") as usize;
    assert!(steps >= 10, "too few steps to judge: {steps}");
    assert_eq!(dist_losses.len(), steps);
    let head: f64 = dist_losses[..3].iter().sum::<f64>() / 3.0;
    let tail: f64 = dist_losses[steps - 3..].iter().sum::<f64>() / 3.0;
    assert!(
        tail < 0.9 * head,
        "the global loss did not go down: first steps {head:.4}, last steps {tail:.4}"
    );
    // The exchange carries the trainable values only, far less than full fine-tuning.
    let bytes = dist_report["bytes_per_step"].as_u64().unwrap();
    let full = dist_report["full_finetune_bytes_per_step"]
        .as_u64()
        .unwrap();
    assert!(
        bytes > 0 && bytes < full,
        "{bytes} vs {full} bytes per step"
    );

    // One process, the same combined batches (no MPI).
    let single = temp("single");
    let out = Command::new("timeout")
        .args([&LIMIT_S.to_string(), BIN, "--simulate-ranks", "2"])
        .args(train_args(&single))
        .output()
        .expect("the trainer runs");
    assert!(
        out.status.success(),
        "the 1-process run failed:\n{}",
        text(&out)
    );
    let single_losses = losses(&report(&single));
    assert_eq!(single_losses.len(), dist_losses.len());
    // The 1-process figures come from the Learner's metric log, to 3 decimals.
    for (k, (a, b)) in dist_losses.iter().zip(&single_losses).enumerate() {
        assert!(
            (a - b).abs() < 1e-3,
            "step {k}: global loss {a} over 2 ranks, {b} in 1 process"
        );
    }

    // Both started from the same weights...
    let start = params(dist.join("params-init-rank0.f32"));
    let single_start = params(single.join("params-init-rank0.f32"));
    assert_eq!(
        start, single_start,
        "the two runs started from different weights"
    );
    // ...and moved them alike. Two 16-row products summed over the ranks and
    // one 32-row product round differently, and Adam's step (m / sqrt(v)) is
    // scale-free, so a parameter whose gradient is rounding noise can move by
    // a sizeable part of the learning rate in either run: parameter by
    // parameter the runs differ by up to ~1e-4 depending on the CPU's
    // kernels. The whole update must agree to 1% (a wrong shard, weighting
    // or missing exchange changes it by tens of percent).
    let reference = params(single.join("params-rank0.f32"));
    assert_eq!(reference.len(), rank0.len());
    assert_eq!(start.len(), rank0.len());
    let (mut gap, mut moved) = (0.0f64, 0.0f64);
    for ((a, b), s) in rank0.iter().zip(&reference).zip(&start) {
        gap += f64::from(a - b).powi(2);
        moved += f64::from(b - s).powi(2);
    }
    let relative = (gap / moved).sqrt();
    assert!(
        moved > 0.0 && relative < 1e-2,
        "2 ranks and 1 process on the same batches: updates differ by {relative:.2e} of their size"
    );
    let _ = std::fs::remove_dir_all(&dist);
    let _ = std::fs::remove_dir_all(&single);
}

#[test]
fn a_rank_that_dies_stops_the_job_with_an_error() {
    let dir = temp("dies");
    let mut args = train_args(&dir);
    args.extend(["--exit-after-steps", "2", "--exit-rank", "1"].map(String::from));
    let (out, elapsed) = mpirun(&args);
    let all = text(&out);
    assert!(
        !out.status.success(),
        "the job succeeded although rank 1 died:\n{all}"
    );
    assert_ne!(
        out.status.code(),
        Some(124),
        "the job hung until the time limit instead of stopping:\n{all}"
    );
    assert!(
        elapsed < Duration::from_secs(LIMIT_S - 30),
        "took {elapsed:?}"
    );
    assert!(all.contains("rank 1: exiting after 2 steps"), "{all}");
    assert!(
        !dir.join("report.json").exists(),
        "rank 0 wrote a report for a job that failed"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
