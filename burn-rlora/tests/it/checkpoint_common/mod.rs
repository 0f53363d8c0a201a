//! Helpers shared by the checkpoint test binaries (`checkpoint_*.rs`): a
//! small adapted model, temporary directories, and ways to save, read back
//! and tamper with an adapter directory. Each binary uses a subset.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use burn::backend::NdArray;
use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{backend::Backend, Distribution, Tensor};
use burn_rlora::checkpoint::{
    load_adapter, save_adapter, CheckpointError, LoadOptions, SaveOptions, CONFIG_FILE,
    TENSORS_FILE,
};
use burn_rlora::{Adapt, RLoraConfig, RLoraLinear};
use safetensors::SafeTensors;

pub type NB = NdArray<f32>;

pub fn dev() -> burn::tensor::Device<NB> {
    Default::default()
}

/// A fresh temporary directory per test, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("rlora-ckpt-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

pub fn tmp(name: &str) -> TempDir {
    TempDir::new(name)
}

#[derive(Module, Adapt, Debug)]
pub struct Mlp<B: Backend> {
    pub up_proj: RLoraLinear<B>,
    pub down_proj: RLoraLinear<B>,
    pub act_free: Linear<B>,
}

#[derive(Module, Adapt, Debug)]
pub struct Decoder<B: Backend> {
    pub layers: Vec<Mlp<B>>,
}

impl<B: Backend> Mlp<B> {
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.act_free
            .forward(self.down_proj.forward(self.up_proj.forward(x)))
    }
}

impl<B: Backend> Decoder<B> {
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.layers.iter().fold(x, |h, l| l.forward(h))
    }
}

pub fn mlp(config: &RLoraConfig) -> Mlp<NB> {
    let d = dev();
    Mlp {
        up_proj: RLoraLinear::from_linear(LinearConfig::new(8, 12).init(&d), config).unwrap(),
        down_proj: RLoraLinear::from_linear(LinearConfig::new(12, 10).init(&d), config).unwrap(),
        act_free: LinearConfig::new(10, 8).init::<NB>(&d).no_grad(),
    }
}

/// A trained-looking copy: every adapter matrix redrawn.
pub fn trained(m: Mlp<NB>) -> Mlp<NB> {
    Mlp {
        up_proj: crate::suite::perturb(m.up_proj, 0.3),
        down_proj: crate::suite::perturb(m.down_proj, 0.3),
        act_free: m.act_free,
    }
}

/// The same base with a freshly drawn adapter (what a user builds before loading).
pub fn fresh_like(m: &Mlp<NB>, config: &RLoraConfig) -> Mlp<NB> {
    let base = |l: &RLoraLinear<NB>| Linear {
        weight: Param::from_tensor(l.weight.val()),
        bias: l.bias.as_ref().map(|b| Param::from_tensor(b.val())),
    };
    let _rng = crate::common::rng_lock();
    NB::seed(&dev(), 999);
    Mlp {
        up_proj: RLoraLinear::from_linear(base(&m.up_proj), config).unwrap(),
        down_proj: RLoraLinear::from_linear(base(&m.down_proj), config).unwrap(),
        act_free: m.act_free.clone(),
    }
}

pub fn input(d_in: usize) -> Tensor<NB, 2> {
    Tensor::random([5, d_in], Distribution::Normal(0.0, 1.0), &dev())
}

pub fn save_default(model: &Mlp<NB>, config: &RLoraConfig, dir: &Path) {
    save_adapter(model, dir, &SaveOptions::new(config.clone())).unwrap();
}

pub fn read_bytes(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    (
        std::fs::read(dir.join(CONFIG_FILE)).unwrap(),
        std::fs::read(dir.join(TENSORS_FILE)).unwrap(),
    )
}

/// Rewrite the tensor file through `edit` (name -> (dtype, shape, bytes)) and
/// drop the digest from the config, so that the edit itself is what gets checked.
pub fn rewrite(
    dir: &Path,
    edit: impl FnOnce(&mut Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>),
) {
    let (json, bytes) = read_bytes(dir);
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut all: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    edit(&mut all);
    let views: Vec<_> = all
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    std::fs::write(
        dir.join(TENSORS_FILE),
        safetensors::tensor::serialize(views, None).unwrap(),
    )
    .unwrap();
    edit_config(dir, |c| {
        c.as_object_mut().unwrap().remove("tensor_file");
    });
    let _ = json;
}

pub fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join(CONFIG_FILE);
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

pub fn load_err(model: Mlp<NB>, dir: &Path, options: &LoadOptions) -> CheckpointError {
    match load_adapter(model, dir, options) {
        Ok(_) => panic!("loading {} should have failed", dir.display()),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------- round trips

/// A trained model saved to a fresh directory, and a fresh model to load it into.
pub fn saved(name: &str, config: &RLoraConfig) -> (Mlp<NB>, TempDir) {
    let _rng = crate::common::rng_lock();
    NB::seed(&dev(), 5);
    let model = trained(mlp(config));
    let dir = tmp(name);
    save_default(&model, config, &dir);
    let fresh = fresh_like(&model, config);
    (fresh, dir)
}
