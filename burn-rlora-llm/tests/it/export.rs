//! Adapters exported as llama.cpp LoRA adapters (`burn_rlora_llm::export`
//! and `rlora-llm export-gguf`), on the tiny models of
//! `tests/fixtures/decoder_tiny_*.gguf`, without llama.cpp:
//!
//! * the file's structure: names, dims, types, alpha, metadata, and the
//!   `llama` row order of `q_proj`/`k_proj`'s `lora_b`;
//! * what it computes: the base weights plus `alpha / r * B A` read back
//!   from the file, as llama.cpp adds them to the GGUF's rows, give the
//!   logits of the adapted model in Burn, for every architecture, for
//!   LoRA and for R-LoRA without router (heads averaged, the compensation
//!   pair folded in);
//! * the refusals (softmax router, a tied head, another base, bad types)
//!   and the command's handling of paths that are not regular files.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use burn::backend::NdArray;
use burn::tensor::{DType, Tensor};
use burn_rlora::checkpoint::format::HostTensor as AdapterTensor;
use burn_rlora::checkpoint::{AdapterFile, LoadOptions};
use burn_rlora::{AdaptConfig, RLoraConfig, TargetModules};
use burn_rlora_gguf::{GgmlType, GgufFile, GgufWriter, Value};
use burn_rlora_llm::export::{lora_gguf, permute_rows, ExportError, GgufExportOptions};
use burn_rlora_llm::{
    load_decoder, load_decoder_adapter, save_decoder_adapter, CausalLm, DecoderConfig,
    DecoderError, HostTensor, WeightSource,
};

type B = NdArray;

const IDS: [u32; 9] = [296, 17, 42, 8, 0, 49, 21, 250, 133];
const PROJECTIONS: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

/// A directory under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "burn-rlora-llm-export-{}-{tag}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fixture(arch: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("decoder_tiny_{arch}.gguf"))
}

fn base_model(path: &Path) -> CausalLm<B> {
    let mut file = GgufFile::open(path).unwrap();
    let config = DecoderConfig::from_gguf(&file).unwrap();
    load_decoder::<B>(&config, &mut file, &Default::default()).unwrap()
}

fn logits(m: &CausalLm<B>) -> Vec<f32> {
    let tokens = m.tokens(&[IDS], &Default::default()).unwrap();
    let out: Tensor<B, 3> = m.forward(tokens, None).unwrap();
    out.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// A deterministic value in [-1, 1).
fn noise(seed: u64, i: usize) -> f64 {
    let mut x = seed
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(i as u64 + 1);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    (x >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

fn perturb(t: &mut AdapterTensor, seed: u64, size: f64) {
    for (i, v) in t.data.iter_mut().enumerate() {
        *v += size * noise(seed, i);
    }
}

/// An adapter of `config` on the projections of the tiny `arch` model (and
/// its output head when it has one), saved to `dir` and then moved away
/// from its initialization as training would (every head and `A`
/// perturbed, the frozen compensation pair kept).
fn trained_adapter(arch: &str, config: &RLoraConfig, dir: &Path) -> AdapterFile {
    let model = base_model(&fixture(arch));
    let mut targets: Vec<&str> = PROJECTIONS.to_vec();
    if model.lm_head.is_some() {
        targets.push("lm_head");
    }
    let adapted = AdaptConfig::new(config.clone(), TargetModules::names(targets))
        .adapt(model)
        .unwrap();
    save_decoder_adapter(&adapted, dir, config, &format!("decoder_tiny_{arch}")).unwrap();
    let mut file = AdapterFile::read(dir, &LoadOptions::new()).unwrap();
    for (k, m) in file.modules.values_mut().enumerate() {
        let k = k as u64 * 101;
        perturb(&mut m.a, k, 0.2);
        for (h, head) in m.heads.iter_mut().enumerate() {
            perturb(head, k + 1 + h as u64, 0.05);
        }
    }
    file.save(dir, DType::F32).unwrap();
    AdapterFile::read(dir, &LoadOptions::new()).unwrap()
}

/// The base model's tensors with a llama.cpp LoRA adapter applied as
/// llama.cpp applies it: `W + alpha / r * B A` on the GGUF's own rows
/// (`alpha / r` in f32; a zero alpha is scale 1), before the loader
/// reorders anything.
struct WithLora {
    base: GgufFile,
    lora: GgufFile,
}

impl WeightSource for WithLora {
    fn file(&self) -> String {
        self.base.file()
    }

    fn tensor(&mut self, name: &str) -> Result<Option<HostTensor>, DecoderError> {
        let Some(mut t) = self.base.tensor(name)? else {
            return Ok(None);
        };
        let a_name = format!("{name}.lora_a");
        if self.lora.tensor_info(&a_name).is_err() {
            return Ok(Some(t));
        }
        let (a_dims, a) = self.lora.read_f32(&a_name).unwrap();
        let (b_dims, b) = self.lora.read_f32(&format!("{name}.lora_b")).unwrap();
        let (d_in, r) = (a_dims[0], a_dims[1]);
        let d_out = b_dims[1];
        assert_eq!(b_dims[0], r, "{name}: lora_a is not transposed");
        assert_eq!(t.shape, [d_out, d_in], "{name}");
        let alpha = self.lora.metadata().get_f32("adapter.lora.alpha").unwrap();
        let scale = if alpha != 0.0 { alpha / r as f32 } else { 1.0 };
        for o in 0..d_out {
            for i in 0..d_in {
                let ba: f64 = (0..r)
                    .map(|k| b[o * r + k] as f64 * a[k * d_in + i] as f64)
                    .sum();
                t.values[o * d_in + i] += scale * ba as f32;
            }
        }
        Ok(Some(t))
    }
}

/// The logits of the tiny `arch` model with `adapter` put on by Burn, with
/// its export applied as llama.cpp applies it, and of the bare base.
fn compare(arch: &str, config: &RLoraConfig, ty: GgmlType) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let dir = TempDir::new(arch);
    let adapter_dir = dir.path().join("adapter");
    let adapter = trained_adapter(arch, config, &adapter_dir);
    let base = GgufFile::open(fixture(arch)).unwrap();
    let options = GgufExportOptions::new().with_tensor_type(ty);
    let (writer, report) = lora_gguf(&adapter, &base, &options).unwrap();
    assert_eq!(report.modules.len(), adapter.modules.len());
    let lora = GgufFile::from_bytes(writer.to_bytes()).unwrap();

    let (adapted, _) = load_decoder_adapter(base_model(&fixture(arch)), &adapter_dir).unwrap();
    let burn = logits(&adapted);
    let mut source = WithLora { base, lora };
    let config = DecoderConfig::from_gguf(&source.base).unwrap();
    let exported = load_decoder::<B>(&config, &mut source, &Default::default()).unwrap();
    let bare = logits(&base_model(&fixture(arch)));
    (burn, logits(&exported), bare)
}

#[test]
fn the_export_computes_the_adapted_model_on_every_architecture() {
    let configs = [
        ("lora", RLoraConfig::lora(4, 8.0)),
        ("rlora-norouter", RLoraConfig::r_lora_no_router(4, 32.0, 3)),
    ];
    for arch in ["llama", "qwen2", "qwen3", "gemma3"] {
        for (method, config) in &configs {
            let (burn, exported, bare) = compare(arch, config, GgmlType::F32);
            let effect = max_diff(&burn, &bare);
            let error = max_diff(&burn, &exported);
            eprintln!("{arch} {method}: adapter moves the logits by {effect:.3}, export differs by {error:.2e}");
            assert!(
                effect > 0.1,
                "{arch} {method}: the adapter changes too little ({effect})"
            );
            assert!(error < 2e-4, "{arch} {method}: export differs by {error}");
        }
    }
}

#[test]
fn half_precision_and_q8_0_exports_stay_close() {
    let config = RLoraConfig::r_lora_no_router(4, 32.0, 3);
    for (ty, bound) in [(GgmlType::F16, 0.01), (GgmlType::Q8_0, 0.05)] {
        let (burn, exported, bare) = compare("llama", &config, ty);
        let effect = max_diff(&burn, &bare);
        let error = max_diff(&burn, &exported);
        eprintln!(
            "llama {ty}: adapter moves the logits by {effect:.3}, export differs by {error:.2e}"
        );
        assert!(
            error < bound * effect,
            "{ty}: {error} against an effect of {effect}"
        );
    }
}

/// The structure of the file: names, dims, types, alpha, metadata, and the
/// llama row order of `lora_b` for the query and key projections.
#[test]
fn the_file_holds_what_llama_cpp_reads() {
    let dir = TempDir::new("structure");
    let config = RLoraConfig::r_lora_no_router(4, 32.0, 3);
    let adapter = trained_adapter("llama", &config, &dir.path().join("adapter"));
    let base = GgufFile::open(fixture("llama")).unwrap();
    let options = GgufExportOptions::new()
        .with_tensor_type(GgmlType::Q8_0)
        .with_name("tiny");
    let (writer, report) = lora_gguf(&adapter, &base, &options).unwrap();
    let file = GgufFile::from_bytes(writer.to_bytes()).unwrap();
    let meta = file.metadata();
    assert_eq!(meta.get_str("general.architecture").unwrap(), "llama");
    assert_eq!(meta.get_str("general.type").unwrap(), "adapter");
    assert_eq!(meta.get_str("general.name").unwrap(), "tiny");
    assert_eq!(meta.get_str("adapter.type").unwrap(), "lora");
    // rsLoRA: s = 32 / sqrt(4) = 16; the compensation pair doubles the rank
    // to 8, and llama.cpp's alpha / 8 must be 16.
    assert_eq!(meta.get_f32("adapter.lora.alpha").unwrap(), 128.0);
    assert_eq!(
        (report.alpha, report.scaling, report.rank),
        (128.0, 16.0, 8)
    );
    assert_eq!(meta.get_u32("general.file_type").unwrap(), 7);
    assert_eq!(meta.get_u32("burn_rlora.heads").unwrap(), 3);
    assert_eq!(meta.get_str("burn_rlora.router").unwrap(), "uniform");
    assert_eq!(
        meta.get("burn_rlora.compensation_folded"),
        Some(&Value::Bool(true))
    );

    // 3 blocks x 7 projections + the untied head, two tensors each, in
    // block order (blk.0 ... blk.2, then output).
    let names: Vec<&str> = file.tensors().iter().map(|t| t.name()).collect();
    assert_eq!(names.len(), 2 * (3 * 7 + 1));
    assert_eq!(
        names[..4],
        [
            "blk.0.attn_q.weight.lora_a",
            "blk.0.attn_q.weight.lora_b",
            "blk.0.attn_k.weight.lora_a",
            "blk.0.attn_k.weight.lora_b"
        ]
    );
    assert_eq!(names[12], "blk.0.ffn_down.weight.lora_a");
    assert_eq!(names[names.len() - 1], "output.weight.lora_b");
    for t in file.tensors() {
        let weight = t
            .name()
            .strip_suffix(".lora_a")
            .or(t.name().strip_suffix(".lora_b"))
            .unwrap();
        let w = base.tensor_info(weight).unwrap().dims().to_vec();
        if t.name().ends_with(".lora_a") {
            // ne = [in, r']: rows of the input width, Q8_0 (32 and 64 are whole blocks).
            assert_eq!(t.dims(), [w[0], 8], "{}", t.name());
            assert_eq!(t.ggml_type(), GgmlType::Q8_0, "{}", t.name());
        } else {
            // ne = [r', out]: rows of 8 values, F16 as llama.cpp's converter falls back.
            assert_eq!(t.dims(), [8, w[1]], "{}", t.name());
            assert_eq!(t.ggml_type(), GgmlType::F16, "{}", t.name());
        }
    }

    // lora_b of q_proj is [mean of the heads, -B0], rows in llama.cpp's order.
    let f32_export = lora_gguf(&adapter, &base, &GgufExportOptions::new())
        .unwrap()
        .0;
    let file = GgufFile::from_bytes(f32_export.to_bytes()).unwrap();
    for (proj, weight, heads) in [
        ("q_proj", "attn_q", 4),
        ("k_proj", "attn_k", 2),
        ("v_proj", "attn_v", 0),
    ] {
        let m = &adapter.modules[&format!("base_model.model.model.layers.1.self_attn.{proj}")];
        let (_, d_out) = m.dims();
        let b0 = &m.compensation.as_ref().unwrap().1;
        let mut expected = Vec::new();
        for o in 0..d_out {
            for k in 0..4 {
                expected
                    .push((m.heads.iter().map(|h| h.data[o * 4 + k] / 3.0).sum::<f64>()) as f32);
            }
            for k in 0..4 {
                expected.push(-b0.data[o * 4 + k] as f32);
            }
        }
        if heads > 0 {
            expected = permute_rows(&expected, heads, 8, 8);
        }
        let (_, got) = file
            .read_f32(&format!("blk.1.{weight}.weight.lora_b"))
            .unwrap();
        let worst = got
            .iter()
            .zip(&expected)
            .map(|(g, e)| (g - e).abs())
            .fold(0.0, f32::max);
        assert!(worst < 1e-6, "{proj}: {worst}");
        let report = report
            .modules
            .iter()
            .find(|r| r.module.ends_with(&format!("1.self_attn.{proj}")))
            .unwrap();
        assert_eq!(report.permuted, heads > 0, "{proj}");
        assert!(report.compensation);
    }
}

#[test]
fn one_head_lora_keeps_its_rank_and_alpha() {
    let dir = TempDir::new("lora");
    // alpha / r = 2; rsLoRA at rank 8: 16 / sqrt(8).
    for (config, alpha) in [
        (RLoraConfig::lora(8, 16.0), 16.0f32),
        (
            RLoraConfig::lora(8, 16.0).with_rank_stabilized(true),
            (16.0 / 8f64.sqrt() * 8.0) as f32,
        ),
    ] {
        let adapter = trained_adapter("qwen2", &config, &dir.path().join("a"));
        let base = GgufFile::open(fixture("qwen2")).unwrap();
        let (writer, report) = lora_gguf(&adapter, &base, &GgufExportOptions::new()).unwrap();
        assert_eq!(report.rank, 8);
        assert_eq!(report.alpha, alpha);
        assert_eq!(report.alpha / 8.0, config.scaling() as f32);
        let file = GgufFile::from_bytes(writer.to_bytes()).unwrap();
        assert_eq!(
            file.metadata().get_str("general.architecture").unwrap(),
            "qwen2"
        );
        assert_eq!(
            file.metadata().get_str("burn_rlora.router").unwrap(),
            "none"
        );
        assert!(report
            .modules
            .iter()
            .all(|m| !m.permuted && !m.compensation));
        let (dims, a) = file.read_f32("blk.2.ffn_down.weight.lora_a").unwrap();
        assert_eq!(dims, [64, 8]);
        let m = &adapter.modules["base_model.model.model.layers.2.mlp.down_proj"];
        let expected: Vec<f32> = m.a.data.iter().map(|&v| v as f32).collect();
        assert_eq!(a, expected);
    }
}

#[test]
fn what_llama_cpp_cannot_compute_is_refused() {
    let dir = TempDir::new("refused");
    // A softmax router: the heads' weights depend on the input.
    let adapter = trained_adapter(
        "llama",
        &RLoraConfig::r_lora(4, 32.0, 3),
        &dir.path().join("r"),
    );
    let base = GgufFile::open(fixture("llama")).unwrap();
    let err = lora_gguf(&adapter, &base, &GgufExportOptions::new()).unwrap_err();
    assert!(matches!(err, ExportError::NotExpressible { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("softmax router over 3 heads"), "{message}");
    assert!(message.contains("one fixed low-rank pair"), "{message}");

    // An adapted output head on a base whose head is the embedding (qwen2's
    // tiny model has the llama one's shapes, its head tied).
    let lora = trained_adapter("llama", &RLoraConfig::lora(4, 8.0), &dir.path().join("l"));
    let tied = GgufFile::open(fixture("qwen2")).unwrap();
    let err = lora_gguf(&lora, &tied, &GgufExportOptions::new()).unwrap_err();
    assert!(
        matches!(&err, ExportError::MissingWeight { weight, .. } if weight == "output.weight"),
        "{err}"
    );
    assert!(err.to_string().contains("token embedding"), "{err}");

    // Another base model: qwen3's tiny query projection is wider.
    let other = GgufFile::open(fixture("qwen3")).unwrap();
    let mut headless = lora.clone();
    headless.modules.remove("base_model.model.lm_head").unwrap();
    let err = lora_gguf(&headless, &other, &GgufExportOptions::new()).unwrap_err();
    assert!(matches!(err, ExportError::ShapeMismatch { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("is this the adapter's base model?"),
        "{err}"
    );

    // A module that is no projection of the decoder.
    let mut odd = lora.clone();
    let m = odd
        .modules
        .remove("base_model.model.model.layers.0.mlp.up_proj")
        .unwrap();
    odd.modules
        .insert("base_model.model.model.layers.0.mlp.fc1".into(), m);
    let err = lora_gguf(&odd, &base, &GgufExportOptions::new()).unwrap_err();
    assert!(matches!(err, ExportError::UnknownModule { .. }), "{err}");

    // Tensor types llama.cpp's LoRA converter does not write.
    let options = GgufExportOptions::new().with_tensor_type(GgmlType::Q4_0);
    let err = lora_gguf(&lora, &base, &options).unwrap_err();
    assert!(
        matches!(err, ExportError::UnsupportedType(GgmlType::Q4_0)),
        "{err}"
    );
}

#[test]
fn a_base_without_its_output_head_is_told_apart_by_name() {
    // The llama fixture rewritten without `output.weight`: its head is now
    // the embedding, so an adapted `lm_head` has nothing to apply to.
    let dir = TempDir::new("tied");
    let base = GgufFile::open(fixture("llama")).unwrap();
    let mut w = GgufWriter::new();
    for (k, v) in base.metadata().iter() {
        w.add_metadata(k, v.clone()).unwrap();
    }
    for t in base
        .tensors()
        .iter()
        .filter(|t| t.name() != "output.weight")
    {
        w.add_tensor_bytes(
            t.name(),
            t.dims(),
            t.ggml_type(),
            base.read_raw(t.name()).unwrap(),
        )
        .unwrap();
    }
    let tied = GgufFile::from_bytes(w.to_bytes()).unwrap();
    let lora = trained_adapter("llama", &RLoraConfig::lora(4, 8.0), &dir.path().join("l"));
    let err = lora_gguf(&lora, &tied, &GgufExportOptions::new()).unwrap_err();
    assert!(
        matches!(&err, ExportError::MissingWeight { module, .. } if module == "base_model.model.lm_head"),
        "{err}"
    );
}

// The command.

fn rlora_llm(args: &[&OsStr]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rlora-llm"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command that blocks on a FIFO would never return: give it 60 s.
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("rlora-llm {args:?} did not return within 60 s (blocked on a file?)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn export_args<'a>(adapter: &'a Path, base: &'a Path, out: &'a Path) -> Vec<&'a OsStr> {
    vec![
        OsStr::new("export-gguf"),
        OsStr::new("--adapter"),
        adapter.as_os_str(),
        OsStr::new("--base"),
        base.as_os_str(),
        OsStr::new("--out"),
        out.as_os_str(),
    ]
}

fn mkfifo(path: &Path) -> bool {
    Command::new("mkfifo")
        .arg(path)
        .status()
        .is_ok_and(|s| s.success())
}

fn fails_with(out: &Output, status: i32, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(status), "stderr: {stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "expected {needle:?} in: {stderr}");
    }
}

#[test]
fn the_command_writes_the_adapter() {
    let dir = TempDir::new("cli");
    let adapter = dir.path().join("my-adapter");
    trained_adapter(
        "llama",
        &RLoraConfig::r_lora_no_router(4, 32.0, 3),
        &adapter,
    );
    let out = dir.path().join("out.gguf");
    let base = fixture("llama");
    let mut args = export_args(&adapter, &base, &out);
    args.extend([OsStr::new("--type"), OsStr::new("q8_0")]);
    let result = rlora_llm(&args);
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert!(
        stdout.contains("22 modules, rank 8, adapter.lora.alpha 128"),
        "{stdout}"
    );
    assert!(
        stdout.contains("compensation folded into 22 modules"),
        "{stdout}"
    );
    let file = GgufFile::open(&out).unwrap();
    assert_eq!(
        file.metadata().get_str("general.name").unwrap(),
        "my-adapter"
    );
    assert_eq!(file.metadata().get_u32("general.file_type").unwrap(), 7);

    // Bad options: status 2.
    let mut bad = export_args(&adapter, &base, &out);
    bad.extend([OsStr::new("--type"), OsStr::new("q4_0")]);
    fails_with(&rlora_llm(&bad), 2, &["q4_0"]);
    fails_with(&rlora_llm(&bad[..5]), 2, &["--out"]);
    fails_with(&rlora_llm(&[OsStr::new("export")]), 2, &[]);

    // A softmax router: status 1, the reason.
    let routed = dir.path().join("routed");
    trained_adapter("llama", &RLoraConfig::r_lora(4, 32.0, 3), &routed);
    let other = dir.path().join("other.gguf");
    let result = rlora_llm(&export_args(&routed, &base, &other));
    fails_with(&result, 1, &["softmax router", "one fixed low-rank pair"]);
    assert!(!other.exists());

    // The output over an input.
    let base_copy = dir.path().join("base.gguf");
    std::fs::copy(fixture("llama"), &base_copy).unwrap();
    let result = rlora_llm(&export_args(&adapter, &base_copy, &base_copy));
    fails_with(&result, 1, &["is the base model"]);
    let config = adapter.join("adapter_config.json");
    let result = rlora_llm(&export_args(&adapter, &base_copy, &config));
    fails_with(&result, 1, &["is a file of the adapter"]);
    AdapterFile::read(&adapter, &LoadOptions::new()).unwrap();
}

/// Every file option given a directory or a FIFO is refused with a clear
/// message, without blocking on the FIFO and without writing anything.
#[test]
fn paths_that_are_not_regular_files_are_refused_without_blocking() {
    let dir = TempDir::new("special");
    let adapter = dir.path().join("adapter");
    trained_adapter("llama", &RLoraConfig::lora(4, 8.0), &adapter);
    let base = fixture("llama");
    let out = dir.path().join("out.gguf");
    let fifo = dir.path().join("fifo");
    let have_fifo = mkfifo(&fifo);
    let a_dir = dir.path().join("a-directory");
    std::fs::create_dir(&a_dir).unwrap();

    // --base
    fails_with(
        &rlora_llm(&export_args(&adapter, &a_dir, &out)),
        1,
        &["not a regular file: a directory"],
    );
    // --adapter
    fails_with(
        &rlora_llm(&export_args(&base, &base, &out)),
        1,
        &["a regular file, not an adapter directory"],
    );
    // --out
    fails_with(
        &rlora_llm(&export_args(&adapter, &base, &a_dir)),
        1,
        &["a directory, not a regular file"],
    );
    // Files inside the adapter directory.
    let broken = dir.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    std::fs::create_dir(broken.join("adapter_config.json")).unwrap();
    std::fs::copy(
        adapter.join("adapter_model.safetensors"),
        broken.join("adapter_model.safetensors"),
    )
    .unwrap();
    fails_with(
        &rlora_llm(&export_args(&broken, &base, &out)),
        1,
        &["adapter_config.json", "a directory"],
    );
    assert!(!out.exists());

    if !have_fifo {
        eprintln!("SKIPPED the FIFO cases: mkfifo is not available");
        return;
    }
    fails_with(
        &rlora_llm(&export_args(&adapter, &fifo, &out)),
        1,
        &["not a regular file: a FIFO"],
    );
    fails_with(
        &rlora_llm(&export_args(&fifo, &base, &out)),
        1,
        &["a FIFO, not an adapter directory"],
    );
    fails_with(
        &rlora_llm(&export_args(&adapter, &base, &fifo)),
        1,
        &["a FIFO, not a regular file"],
    );
    for name in ["adapter_config.json", "adapter_model.safetensors"] {
        let fifo_inside = dir.path().join(format!("fifo-{name}"));
        std::fs::create_dir(&fifo_inside).unwrap();
        for other in ["adapter_config.json", "adapter_model.safetensors"] {
            if other != name {
                std::fs::copy(adapter.join(other), fifo_inside.join(other)).unwrap();
            }
        }
        assert!(mkfifo(&fifo_inside.join(name)));
        fails_with(
            &rlora_llm(&export_args(&fifo_inside, &base, &out)),
            1,
            &[name, "FIFO"],
        );
    }
    assert!(!out.exists());
    assert!(Path::new(&fifo).exists());
}
