//! Head-diversity and router diagnostics, parameter counts and the load-balance loss.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::adapt::{visit_layers, Adapt, LayerVisitor};
use crate::adapter::RLoraAdapter;
use crate::error::RLoraError;
use crate::layer::RLoraLinear;

/// Pairwise cosine similarity of the flattened heads of one layer: the paper's
/// head-diversity measure (lower means more diverse heads).
#[derive(Debug, Clone, PartialEq)]
pub struct HeadSimilarity {
    /// The `N x N` matrix of cosine similarities, row-major.
    pub matrix: Vec<f64>,
    /// The number of heads `N`.
    pub num_heads: usize,
    /// The mean over pairs `i < j`; `None` for a single head.
    pub mean_pairwise: Option<f64>,
}

impl HeadSimilarity {
    /// The similarity of heads `i` and `j`.
    pub fn get(&self, i: usize, j: usize) -> f64 {
        self.matrix[i * self.num_heads + j]
    }
}

/// Cosine similarity between rows of `rows` (`[N, k]`), with PyTorch's
/// convention that a zero vector has similarity 0 (norms clamped at 1e-8).
pub fn cosine_similarity_matrix<B: Backend>(rows: Tensor<B, 2>) -> HeadSimilarity {
    let [n, _] = rows.dims();
    let data: Vec<f64> = rows
        .into_data()
        .convert::<f64>()
        .to_vec()
        .expect("converted to f64");
    HeadSimilarity::of_rows(&data, n)
}

impl HeadSimilarity {
    /// [`cosine_similarity_matrix`] of `n` rows stored row-major in `data` on
    /// the host (each row `data.len() / n` long).
    ///
    /// ```
    /// use burn_rlora::HeadSimilarity;
    ///
    /// let sim = HeadSimilarity::of_rows(&[1.0, 0.0, 1.0, 1.0], 2);
    /// assert!((sim.get(0, 1) - 0.5f64.sqrt()).abs() < 1e-12);
    /// assert_eq!(sim.mean_pairwise, Some(sim.get(0, 1)));
    /// ```
    pub fn of_rows(data: &[f64], n: usize) -> Self {
        let k = data.len() / n.max(1);
        let norms: Vec<f64> = (0..n)
            .map(|i| {
                data[i * k..(i + 1) * k]
                    .iter()
                    .map(|v| v * v)
                    .sum::<f64>()
                    .sqrt()
                    .max(1e-8)
            })
            .collect();
        let mut matrix = vec![0.0; n * n];
        let (mut sum, mut pairs) = (0.0, 0usize);
        for i in 0..n {
            for j in 0..n {
                let dot: f64 = (0..k).map(|t| data[i * k + t] * data[j * k + t]).sum();
                let c = dot / (norms[i] * norms[j]);
                matrix[i * n + j] = c;
                if i < j {
                    sum += c;
                    pairs += 1;
                }
            }
        }
        HeadSimilarity {
            matrix,
            num_heads: n,
            mean_pairwise: (pairs > 0).then(|| sum / pairs as f64),
        }
    }
}

impl<B: Backend> RLoraAdapter<B> {
    /// Cosine similarity of the flattened heads `B_i` (the paper's measure).
    pub fn head_similarity(&self) -> HeadSimilarity {
        let (r, n, d_output) = (self.rank(), self.num_heads(), self.d_output());
        cosine_similarity_matrix(self.lora_b.val().reshape([n, r * d_output]))
    }
}

/// One value per adapted layer, with the layer's path: `measure` applied to
/// each adapter of a model.
struct PerAdapter<T> {
    measure: fn(&dyn AdapterView) -> T,
    found: Vec<(String, T)>,
}

/// What the per-adapter diagnostics read of an adapter, backend-free.
trait AdapterView {
    fn head_similarity(&self) -> HeadSimilarity;
    fn num_params(&self) -> usize;
}

impl<B: Backend> AdapterView for RLoraAdapter<B> {
    fn head_similarity(&self) -> HeadSimilarity {
        RLoraAdapter::head_similarity(self)
    }

    fn num_params(&self) -> usize {
        RLoraAdapter::num_params(self)
    }
}

impl<T> LayerVisitor for PerAdapter<T> {
    fn visit<B: Backend>(&mut self, path: &str, layer: &RLoraLinear<B>) {
        if let Some(adapter) = layer.adapter() {
            self.found.push((path.to_string(), (self.measure)(adapter)));
        }
    }
}

/// `measure` of every adapted layer of `model`, or
/// [`RLoraError::NoAdaptedLayer`] naming `operation` when there is none.
fn per_adapter<M: Adapt, T>(
    model: &M,
    measure: fn(&dyn AdapterView) -> T,
    operation: &'static str,
) -> Result<Vec<(String, T)>, RLoraError> {
    let mut visitor = PerAdapter {
        measure,
        found: Vec::new(),
    };
    visit_layers(model, &mut visitor);
    if visitor.found.is_empty() {
        return Err(RLoraError::NoAdaptedLayer { operation });
    }
    Ok(visitor.found)
}

/// The head similarity ([`RLoraAdapter::head_similarity`]) of every adapted
/// layer of `model`, with the layer's path, in field order.
///
/// # Errors
///
/// [`RLoraError::NoAdaptedLayer`] for a model without adapted layers.
pub fn head_similarities<M: Adapt>(model: &M) -> Result<Vec<(String, HeadSimilarity)>, RLoraError> {
    per_adapter(model, |a| a.head_similarity(), "compare heads of")
}

/// Statistics of router weights over a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct RouterStats {
    /// The mean weight of each head over all tokens (sums to 1).
    pub mean_weight: Vec<f64>,
    /// The mean per-token entropy of the weights, in nats (`ln N` is uniform).
    pub mean_entropy: f64,
    /// The entropy of the mean weights, in nats: low when a few heads take all tokens.
    pub entropy_of_mean: f64,
}

impl RouterStats {
    /// Compute the statistics from gates `[..., N]`, as returned by
    /// [`RLoraLinear::forward_with_routing`].
    ///
    /// # Errors
    ///
    /// [`RLoraError::ShapeMismatch`] when the tensor holds no token or a
    /// token's weights are not a distribution (negative, or not summing to 1
    /// within 1e-3).
    pub fn from_gates<B: Backend, const D: usize>(gates: Tensor<B, D>) -> Result<Self, RLoraError> {
        let dims = gates.dims();
        let n = dims[D - 1];
        let data: Vec<f64> = gates
            .into_data()
            .convert::<f64>()
            .to_vec()
            .expect("converted to f64");
        let tokens = data.len().checked_div(n).unwrap_or(0);
        let bad = |found: String| RLoraError::ShapeMismatch {
            what: "router gates".into(),
            expected: "[..., N] with at least one token, each row a distribution".into(),
            found,
        };
        if tokens == 0 {
            return Err(bad(format!("{dims:?}")));
        }
        let mut mean_weight = vec![0.0; n];
        let mut entropy = 0.0;
        for row in data.chunks(n) {
            let total: f64 = row.iter().sum();
            if row.iter().any(|&g| g.is_nan() || g < 0.0) || (total - 1.0).abs() > 1e-3 {
                return Err(bad(format!("a row {row:?} summing to {total}")));
            }
            for (m, &g) in mean_weight.iter_mut().zip(row) {
                *m += g;
                if g > 0.0 {
                    entropy -= g * g.ln();
                }
            }
        }
        mean_weight.iter_mut().for_each(|m| *m /= tokens as f64);
        let entropy_of_mean = -mean_weight
            .iter()
            .filter(|&&m| m > 0.0)
            .map(|m| m * m.ln())
            .sum::<f64>();
        Ok(Self {
            mean_weight,
            mean_entropy: entropy / tokens as f64,
            entropy_of_mean,
        })
    }
}

/// Load-balance loss on router weights `[..., N]`: the squared coefficient of
/// variation of the per-head mean weights, `Var(m) / Mean(m)^2`, where
/// `m_i` is head `i`'s mean weight over the tokens.
///
/// It is 0 when every head gets the same share and grows as the router
/// concentrates on a few heads. It is differentiable; add it to the task loss
/// with a small coefficient (mixture-of-LoRA works use around 1e-2).
pub fn load_balance_loss<B: Backend, const D: usize>(gates: Tensor<B, D>) -> Tensor<B, 1> {
    let dims = gates.dims();
    let n = dims[D - 1];
    let tokens = dims[..D - 1].iter().product::<usize>();
    let m: Tensor<B, 1> = gates.reshape([tokens, n]).mean_dim(0).reshape([n]);
    let mean = m.clone().mean();
    let var = (m - mean.clone()).powi_scalar(2).mean();
    var / mean.powi_scalar(2)
}

/// Trainable and total parameter counts of a module, like PEFT's
/// `print_trainable_parameters`.
///
/// "Trainable" means the parameter records gradients, which only happens on
/// an autodiff backend: count the training model, not its `valid()` copy.
///
/// ```
/// use burn::backend::{Autodiff, NdArray};
/// use burn::nn::LinearConfig;
/// use burn_rlora::{ParamCount, RLoraConfig, RLoraLinear};
///
/// let base = LinearConfig::new(32, 16).init::<Autodiff<NdArray>>(&Default::default());
/// let layer = RLoraLinear::from_linear(base, &RLoraConfig::lora(4, 8.0)).unwrap();
/// let count = ParamCount::of(&layer);
/// assert_eq!(count.trainable, 4 * 32 + 16 * 4);
/// assert_eq!(count.total, 32 * 16 + 16 + count.trainable);
/// println!("{count}"); // trainable params: 192 || all params: 720 || trainable%: 26.6667
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ParamCount {
    /// Numbers in parameters that require a gradient.
    pub trainable: usize,
    /// All numbers in parameters, frozen ones included.
    pub total: usize,
}

struct Counter(ParamCount);

impl<B: Backend> ModuleVisitor<B> for Counter {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let n = param.lazy_shape().num_elements();
        self.0.total += n;
        if param.is_require_grad() {
            self.0.trainable += n;
        }
    }
}

impl ParamCount {
    /// The adapter parameters (`A`, the heads and the routers, the numbers
    /// that train) of every adapted [`RLoraLinear`] inside `module`: the sum
    /// of their [`num_adapter_params`](RLoraLinear::num_adapter_params), on
    /// any backend (a plain backend tracks no gradients, so
    /// [`of`](Self::of) counts nothing as trainable there).
    ///
    /// # Errors
    ///
    /// [`RLoraError::NoAdaptedLayer`] for a module without adapted layers.
    ///
    /// ```
    /// use burn::backend::NdArray;
    /// use burn::nn::LinearConfig;
    /// use burn_rlora::{ParamCount, RLoraConfig, RLoraLinear};
    ///
    /// let base = LinearConfig::new(32, 16).init::<NdArray>(&Default::default());
    /// let layer = RLoraLinear::from_linear(base, &RLoraConfig::r_lora(4, 8.0, 3)).unwrap();
    /// assert_eq!(ParamCount::adapters_of(&layer)?, layer.num_adapter_params());
    /// assert_eq!(ParamCount::adapters_of(&layer)?, 4 * 32 + 3 * 4 * 16 + 32 * 3);
    /// # Ok::<(), burn_rlora::RLoraError>(())
    /// ```
    pub fn adapters_of<M: Adapt>(module: &M) -> Result<usize, RLoraError> {
        let counts = per_adapter(module, |a| a.num_params(), "count")?;
        Ok(counts.iter().map(|(_, n)| n).sum())
    }

    /// Count the parameters of any Burn module.
    pub fn of<B: Backend, M: Module<B>>(module: &M) -> Self {
        let mut counter = Counter(ParamCount::default());
        module.visit(&mut counter);
        counter.0
    }

    /// The trainable share, in percent.
    pub fn trainable_percent(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            100.0 * self.trainable as f64 / self.total as f64
        }
    }
}

impl core::fmt::Display for ParamCount {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "trainable params: {} || all params: {} || trainable%: {:.4}",
            self.trainable,
            self.total,
            self.trainable_percent()
        )
    }
}
