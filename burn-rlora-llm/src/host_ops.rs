//! Elementwise work that the CPU backends run slowly, done on the host in
//! vectorizable loops split across the cores:
//!
//! * exact GELU, `x Φ(x)` (the MiniLM encoder's activation), from an erfc
//!   with relative error below 1.2e-7 (the Chebyshev fit of Numerical
//!   Recipes' `erfcc`) and a polynomial `exp`, instead of a scalar `libm`
//!   `erf` per element;
//! * SiLU, `x σ(x)` (the SmolLM2 decoder's feed-forward activation), from the
//!   same polynomial `exp`, instead of a scalar `libm` `expf` per element;
//! * dropout masks from a small fast generator (xoshiro256++), four bytes per
//!   element compared with `keep · 2^32`, instead of one ChaCha `f32` draw per element.
//!
//! Under autodiff the activations compute their derivative in the same pass
//! and carry it as the gradient (see [`gelu`]), so the backward pass is one
//! product and recomputes nothing; Burn's own `gelu` and `silu` keep their
//! input and evaluate the activation again in the backward pass.
//!
//! They are opt-in, by the model's owner (`CausalLm::with_host_ops(true)`,
//! the trainers' `--host-kernels`), and meant for the backends whose tensors
//! live in host memory (flex and ndarray, with or without autodiff): each
//! call reads its input's values on the host and writes its output back, so
//! on a GPU backend it is correct but slow. Called on a tensor that is not
//! `f32`, the functions use Burn's own `gelu`, `silu` and `Dropout`. The
//! generator is seeded from the backend's random numbers, so a run stays
//! reproducible under `B::seed`.

use burn::tensor::backend::Backend;
use burn::tensor::{DType, Distribution, Tensor, TensorData};
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};

/// Work below this many elements stays on the calling thread.
const PARALLEL_MIN: usize = 1 << 16;

/// `e^x` in f32 with a relative error of a few units in the last place, in
/// branch-free arithmetic that the compiler vectorizes; 0 below `-87.3`.
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // 1.5 * 2^23: adding and subtracting it rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    // `ROUND + k` for an integer `|k| < 2^22` has the bits `ROUND_BITS + k`.
    const ROUND_BITS: i32 = ROUND.to_bits() as i32;
    let underflow = x < -87.3;
    let x = x.clamp(-87.3, 88.3);
    let rounded = x * LOG2E + ROUND;
    let k = rounded - ROUND;
    // k as an integer, read from the bits rather than converted: Rust's
    // saturating `as i32` does not vectorize (one scalar conversion per lane).
    let k_int = (rounded.to_bits() as i32).wrapping_sub(ROUND_BITS);
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let p = 1.0 / 5040.0;
    let p = p * r + 1.0 / 720.0;
    let p = p * r + 1.0 / 120.0;
    let p = p * r + 1.0 / 24.0;
    let p = p * r + 1.0 / 6.0;
    let p = p * r + 0.5;
    let p = p * r + 1.0;
    let p = p * r + 1.0;
    let scale = f32::from_bits(((k_int + 127) as u32) << 23);
    if underflow {
        0.0
    } else {
        p * scale
    }
}

/// `Φ(x)` (the standard normal CDF) and `φ(x)` (its density) in f32.
///
/// `Φ(x) = erfc(-x/√2) / 2` with `erfc(z) = t exp(-z² + P(t))`, `t = 1/(1 + z/2)`
/// for `z ≥ 0` (relative error below 1.2e-7), and `Φ(x) = 1 - Φ(-x)`: both
/// tails keep their relative accuracy, unlike `(1 + erf(x/√2)) / 2`.
// The fit's coefficients are kept as published; they round to the nearest f32.
#[allow(clippy::excessive_precision)]
#[inline(always)]
fn normal_cdf_pdf(x: f32) -> (f32, f32) {
    const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
    // 1/√(2π).
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    let z = (x * FRAC_1_SQRT_2).abs().min(10.0);
    let t = 1.0 / (1.0 + 0.5 * z);
    let p = 0.170_872_77_f32;
    let p = p * t - 0.822_152_23;
    let p = p * t + 1.488_515_87;
    let p = p * t - 1.135_203_98;
    let p = p * t + 0.278_868_07;
    let p = p * t - 0.186_288_06;
    let p = p * t + 0.096_784_18;
    let p = p * t + 0.374_091_96;
    let p = p * t + 1.000_023_68;
    let p = p * t - 1.265_512_23;
    let e = exp_f32(-z * z);
    // The upper tail Q(|x|) = erfc(|x|/√2) / 2.
    let tail = 0.5 * t * exp_f32(-z * z + p);
    let cdf = if x < 0.0 { tail } else { 1.0 - tail };
    (cdf, INV_SQRT_2PI * e)
}

/// Exact GELU of one value, `x Φ(x)`.
#[inline(always)]
pub fn gelu_f32(x: f32) -> f32 {
    x * normal_cdf_pdf(x).0
}

/// The derivative of exact GELU, `Φ(x) + x φ(x)`.
#[inline(always)]
pub fn gelu_grad_f32(x: f32) -> f32 {
    let (cdf, pdf) = normal_cdf_pdf(x);
    cdf + x * pdf
}

/// The logistic sigmoid of one value, `1 / (1 + e^-x)`, from the polynomial
/// `exp` (exactly 1 above x = 87.3; below x = -88.3, where σ is under 1e-38,
/// it stays at about 5e-39).
#[inline(always)]
pub fn sigmoid_f32(x: f32) -> f32 {
    1.0 / (1.0 + exp_f32(-x))
}

/// SiLU of one value, `x σ(x)`.
#[inline(always)]
pub fn silu_f32(x: f32) -> f32 {
    x * sigmoid_f32(x)
}

/// SiLU and its derivative, `σ(x) (1 + x (1 - σ(x)))`, with `1 - σ(x)`
/// computed as `e^-x σ(x)`: subtracting would lose its digits for large `x`.
#[inline(always)]
fn silu_and_grad(x: f32) -> (f32, f32) {
    let e = exp_f32(-x);
    let s = 1.0 / (1.0 + e);
    (x * s, s * (1.0 + x * (e * s)))
}

/// The derivative of SiLU, `σ(x) (1 + x (1 - σ(x)))`.
#[inline(always)]
pub fn silu_grad_f32(x: f32) -> f32 {
    silu_and_grad(x).1
}

/// `f(start, chunk)` over contiguous chunks of `out`, one per core when
/// `out` holds at least [`PARALLEL_MIN`] elements; every chunk but the last
/// is a multiple of [`PARALLEL_MIN`] long.
fn par_chunks<T: Send>(out: &mut [T], f: impl Fn(usize, &mut [T]) + Sync) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads < 2 || out.len() < PARALLEL_MIN {
        f(0, out);
        return;
    }
    let chunk = out.len().div_ceil(threads).next_multiple_of(PARALLEL_MIN);
    std::thread::scope(|s| {
        let mut rest = out;
        let mut start = 0;
        let f = &f;
        while !rest.is_empty() {
            let (head, tail) = rest.split_at_mut(chunk.min(rest.len()));
            let at = start;
            start += head.len();
            rest = tail;
            if rest.is_empty() {
                f(at, head);
            } else {
                s.spawn(move || f(at, head));
            }
        }
    });
}

/// The elementwise activations the host computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Activation {
    /// Exact GELU, `x Φ(x)`.
    Gelu,
    /// SiLU, `x σ(x)`.
    Silu,
}

/// Values of `act` at `x` into `y` (and derivatives into `d`), one pass.
#[inline(always)]
fn act_kernel(act: Activation, x: &[f32], y: &mut [f32], d: Option<&mut [f32]>) {
    match (act, d) {
        (Activation::Gelu, Some(d)) => {
            for ((&v, y), d) in x.iter().zip(y.iter_mut()).zip(d.iter_mut()) {
                let (cdf, pdf) = normal_cdf_pdf(v);
                *y = v * cdf;
                *d = cdf + v * pdf;
            }
        }
        (Activation::Gelu, None) => {
            for (&v, y) in x.iter().zip(y.iter_mut()) {
                *y = gelu_f32(v);
            }
        }
        (Activation::Silu, Some(d)) => {
            for ((&v, y), d) in x.iter().zip(y.iter_mut()).zip(d.iter_mut()) {
                (*y, *d) = silu_and_grad(v);
            }
        }
        (Activation::Silu, None) => {
            for (&v, y) in x.iter().zip(y.iter_mut()) {
                *y = silu_f32(v);
            }
        }
    }
}

/// [`act_kernel`] compiled for AVX2 and FMA (8 lanes instead of SSE2's 4).
///
/// # Safety
///
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn act_kernel_avx2(act: Activation, x: &[f32], y: &mut [f32], d: Option<&mut [f32]>) {
    act_kernel(act, x, y, d)
}

/// [`act_kernel`] with the widest vectors this CPU has.
fn act_dispatch(act: Activation, x: &[f32], y: &mut [f32], d: Option<&mut [f32]>) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: both features were just detected.
        unsafe { act_kernel_avx2(act, x, y, d) };
        return;
    }
    act_kernel(act, x, y, d)
}

/// Values of `act` at `x` and, when `grad` is set, its derivatives.
fn act_host(act: Activation, x: &[f32], grad: bool) -> (Vec<f32>, Option<Vec<f32>>) {
    let mut y = vec![0.0f32; x.len()];
    if !grad {
        par_chunks(&mut y, |at, out| {
            act_dispatch(act, &x[at..at + out.len()], out, None)
        });
        return (y, None);
    }
    // Values and derivatives side by side, split once.
    let mut d = vec![0.0f32; x.len()];
    {
        let mut pairs: Vec<(&mut [f32], &mut [f32])> = Vec::new();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = if threads < 2 || x.len() < PARALLEL_MIN {
            x.len().max(1)
        } else {
            x.len().div_ceil(threads)
        };
        for (yc, dc) in y.chunks_mut(chunk).zip(d.chunks_mut(chunk)) {
            pairs.push((yc, dc));
        }
        std::thread::scope(|s| {
            let last = pairs.len().saturating_sub(1);
            for (i, (yc, dc)) in pairs.into_iter().enumerate() {
                let xc = &x[i * chunk..i * chunk + yc.len()];
                if i == last {
                    act_dispatch(act, xc, yc, Some(dc));
                } else {
                    s.spawn(move || act_dispatch(act, xc, yc, Some(dc)));
                }
            }
        });
    }
    (y, Some(d))
}

/// `act` on the host when it applies (see [`gelu`] and [`silu`]), else `None`.
///
/// With autodiff the result is `y + (x - x̄) · y'` with `x̄` detached, whose
/// value is `y` and whose gradient is `y'` times the incoming one: the
/// backward pass is one product, with no activation recomputed.
fn act_tensor<B: Backend, const D: usize>(
    act: Activation,
    x: &Tensor<B, D>,
) -> Option<Tensor<B, D>> {
    let device = x.device();
    if x.dtype() != DType::F32 {
        return None;
    }
    let shape = x.shape();
    // Burn tells a leaf that requires a gradient from other tensors, but not
    // an intermediate result in the graph from a constant: with autodiff,
    // always keep the gradient path.
    let tracked = B::ad_enabled(&device);
    let data = x.clone().into_data();
    let values = data.as_slice::<f32>().ok()?;
    let (y, d) = act_host(act, values, tracked);
    let y = Tensor::<B, D>::from_data(TensorData::new(y, shape.clone()), &device);
    Some(match d {
        Some(d) => {
            let d = Tensor::<B, D>::from_data(TensorData::new(d, shape), &device);
            y + (x.clone() - x.clone().detach()) * d
        }
        None => y,
    })
}

/// Exact GELU (`x Φ(x)`, erf-based, as PyTorch's default and BERT's `gelu`).
///
/// With f32 values, computed on the host; on an autodiff backend the result
/// is `y + (x - x̄) · g'` with `x̄` detached, whose value is `y` and whose
/// gradient is `gelu'(x)`. In other precisions Burn's `gelu`.
pub fn gelu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    act_tensor(Activation::Gelu, &x).unwrap_or_else(|| burn::tensor::activation::gelu(x))
}

/// SiLU (`x σ(x)`, Llama's feed-forward activation), as [`gelu`]: with f32
/// values computed on the host (value and derivative in one pass, split
/// across the cores), so that the backward pass recomputes no sigmoid; in
/// other precisions Burn's `silu`.
pub fn silu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    act_tensor(Activation::Silu, &x).unwrap_or_else(|| burn::tensor::activation::silu(x))
}

/// A dropout mask: `1/keep` with probability `keep`, else 0, one per
/// element, from `seed`. Each block of `PARALLEL_MIN` (65,536) elements has its own
/// stream, so the mask does not depend on the number of cores.
pub fn dropout_mask(len: usize, keep: f64, seed: u64) -> Vec<f32> {
    // keep · 2^32, so that `u32 < threshold` holds with probability `keep`.
    let threshold = (keep * 4_294_967_296.0).round() as u64;
    let scale = (1.0 / keep) as f32;
    let pick = move |bits: u64| if bits < threshold { scale } else { 0.0 };
    let mut mask = vec![0.0f32; len];
    par_chunks(&mut mask, |at, out| {
        for (b, block) in out.chunks_mut(PARALLEL_MIN).enumerate() {
            let index = (at / PARALLEL_MIN + b) as u64;
            let mut rng = SmallRng::seed_from_u64(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut pairs = block.chunks_exact_mut(2);
            for pair in &mut pairs {
                let bits = rng.next_u64();
                pair[0] = pick(bits & 0xFFFF_FFFF);
                pair[1] = pick(bits >> 32);
            }
            for last in pairs.into_remainder() {
                *last = pick(rng.next_u64() & 0xFFFF_FFFF);
            }
        }
    });
    mask
}

/// Dropout with probability `prob`, active only when the backend records
/// gradients (as [`burn::nn::Dropout`]); kept elements are scaled by `1/(1-prob)`.
///
/// The mask comes from [`dropout_mask`], seeded from one draw of the
/// backend's generator, for f32 values; in other precisions from `dropout`.
pub fn dropout<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    dropout: &burn::nn::Dropout,
) -> Tensor<B, D> {
    let device = x.device();
    let prob = dropout.prob;
    if !B::ad_enabled(&device) || prob == 0.0 {
        return x;
    }
    if x.dtype() != DType::F32 {
        return dropout.forward(x);
    }
    let seed_draw = Tensor::<B, 1>::random([2], Distribution::Default, &device)
        .into_data()
        .convert::<f32>();
    let seed = seed_draw
        .as_slice::<f32>()
        .map(|s| ((s[0] * 16_777_216.0) as u64) << 24 | (s[1] * 16_777_216.0) as u64)
        .unwrap_or(0);
    let shape = x.shape();
    let mask = dropout_mask(shape.num_elements(), 1.0 - prob, seed);
    let mask = Tensor::<B, D>::from_data(
        TensorData::new(mask, shape).convert_dtype(x.dtype()),
        &device,
    );
    x * mask
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf in f64 (libm), the reference.
    fn gelu_ref(x: f64) -> f64 {
        0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))
    }

    fn gelu_grad_ref(x: f64) -> f64 {
        let cdf = 0.5 * libm::erfc(-x / std::f64::consts::SQRT_2);
        cdf + x * (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
    }

    #[test]
    fn exp_matches_f64_within_a_few_ulp() {
        let mut worst = 0.0f64;
        for i in -87_000..88_000 {
            let x = i as f32 * 1e-3;
            let got = exp_f32(x) as f64;
            let want = (x as f64).exp();
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 4e-7, "worst relative error {worst:e}");
        assert_eq!(exp_f32(-100.0), 0.0);
        // Above the clamp: the largest value, finite (the exponent field is
        // read from the rounded sum's bits, which must not reach 255).
        let top = exp_f32(1000.0) as f64;
        assert!(
            ((top - 88.3f64.exp()) / top).abs() < 1e-5,
            "exp_f32(1000) = {top:e}"
        );
    }

    #[test]
    fn gelu_matches_f64_erf_to_float_rounding() {
        // Against the f64 reference. Where GELU is not vanishingly small
        // (x >= -4), the relative error stays within about 16 f32 units (the
        // rounding of x²/2, up to 8 there, moves the exponent). Everywhere, the
        // error over |x| stays within two f32 units of 1, at most 2.5 times
        // that of `0.5 x (1 + erff(x/√2))` with libm's erff (Burn's gelu on
        // the CPU), which in turn loses all relative precision in the negative tail.
        let (mut rel, mut abs, mut abs_libm, mut grad) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        for i in -150_000..=150_000 {
            let x = i as f32 * 1e-4;
            let (xf, y) = (x as f64, gelu_f32(x) as f64);
            let want = gelu_ref(xf);
            if xf >= -4.0 && xf.abs() >= 1e-3 {
                rel = rel.max((y - want).abs() / want.abs());
            }
            let scale = xf.abs().max(1e-30);
            abs = abs.max((y - want).abs() / scale);
            let libm = 0.5 * x * (1.0 + libm::erff(x / std::f32::consts::SQRT_2));
            abs_libm = abs_libm.max((libm as f64 - want).abs() / scale);
            let g = gelu_grad_f32(x) as f64;
            grad = grad.max((g - gelu_grad_ref(xf)).abs());
        }
        assert!(
            rel < 2e-6,
            "worst relative error of gelu for x >= -4: {rel:e}"
        );
        assert!(abs < 2.4e-7, "error over |x|: {abs:e}");
        assert!(
            abs < 2.5 * abs_libm,
            "error over |x|: {abs:e}, libm's {abs_libm:e}"
        );
        assert!(grad < 3e-7, "worst absolute error of gelu': {grad:e}");
    }

    #[test]
    fn gelu_keeps_its_limits_and_special_values() {
        assert_eq!(gelu_f32(0.0), 0.0);
        assert_eq!(gelu_f32(30.0), 30.0);
        assert_eq!(gelu_f32(-30.0), 0.0);
        assert!(gelu_f32(f32::NAN).is_nan());
        assert_eq!(gelu_f32(f32::INFINITY), f32::INFINITY);
        assert!((gelu_grad_f32(0.0) - 0.5).abs() < 1e-7);
        assert!((gelu_grad_f32(20.0) - 1.0).abs() < 1e-7);
    }

    #[test]
    fn dropout_mask_keeps_the_right_fraction_independently() {
        let n = 1_000_003;
        let keep = 0.9;
        let mask = dropout_mask(n, keep, 42);
        let scale = (1.0 / keep) as f32;
        assert!(mask.iter().all(|&m| m == 0.0 || m == scale));
        let kept: Vec<bool> = mask.iter().map(|&m| m != 0.0).collect();
        let frac = kept.iter().filter(|&&k| k).count() as f64 / n as f64;
        let sd = (keep * (1.0 - keep) / n as f64).sqrt();
        assert!((frac - keep).abs() < 5.0 * sd, "kept {frac}");
        // Neighbours (same 64-bit draw, and across draws) are independent:
        // both dropped with probability (1-keep)^2.
        for lag in [1usize, 2, 7] {
            let both = (0..n - lag).filter(|&i| !kept[i] && !kept[i + lag]).count() as f64
                / (n - lag) as f64;
            let p = (1.0 - keep) * (1.0 - keep);
            let sd = (p * (1.0 - p) / n as f64).sqrt();
            assert!((both - p).abs() < 5.0 * sd, "lag {lag}: {both} vs {p}");
        }
        // The chunks of the parallel split are different streams, and a new seed gives a new mask.
        let half = n / 2;
        assert_ne!(kept[..1000], kept[half..half + 1000]);
        assert_ne!(mask, dropout_mask(n, keep, 43));
        assert_eq!(mask, dropout_mask(n, keep, 42));
    }

    type Ad = burn::backend::Autodiff<burn::backend::Flex>;

    type Act = fn(Tensor<Ad, 1>) -> Tensor<Ad, 1>;

    /// `ours` against `burns` on 200,000 values in [-7, 7]: the values, and
    /// the gradient of a weighted sum (so that it is `f'(x) * w`).
    fn matches_burn_with_gradient(ours: Act, burns: Act, tol: burn::tensor::Tolerance<f32>) {
        let device = Default::default();
        let values: Vec<f32> = (0..200_000)
            .map(|i| (i as f32 - 100_000.0) * 7e-5)
            .collect();
        let x =
            Tensor::<Ad, 1>::from_data(TensorData::new(values.clone(), [values.len()]), &device)
                .require_grad();
        let x_ref =
            Tensor::<Ad, 1>::from_data(TensorData::new(values, [200_000]), &device).require_grad();
        let y = ours(x.clone());
        let y_ref = burns(x_ref.clone());
        y.clone()
            .into_data()
            .assert_approx_eq::<f32>(&y_ref.clone().into_data(), tol);
        let w = Tensor::<Ad, 1>::from_data(
            TensorData::new(
                (0..200_000)
                    .map(|i| (i % 7) as f32 - 3.0)
                    .collect::<Vec<_>>(),
                [200_000],
            ),
            &device,
        );
        let g = (y * w.clone()).sum().backward();
        let g_ref = (y_ref * w).sum().backward();
        x.grad(&g)
            .unwrap()
            .into_data()
            .assert_approx_eq::<f32>(&x_ref.grad(&g_ref).unwrap().into_data(), tol);
    }

    #[test]
    fn gelu_tensor_has_burns_values_and_gradient() {
        let tol = burn::tensor::Tolerance::absolute(2e-6);
        matches_burn_with_gradient(gelu, burn::tensor::activation::gelu, tol);
        // Without a gradient to track, and on the plain backend, the same values.
        let device = Default::default();
        let plain = Tensor::<burn::backend::Flex, 1>::from_data([-2.0f32, 0.5, 3.0], &device);
        let want: Vec<f32> = [-2.0f32, 0.5, 3.0].iter().map(|&v| gelu_f32(v)).collect();
        assert_eq!(gelu(plain).into_data().to_vec::<f32>().unwrap(), want);
    }

    #[test]
    fn silu_matches_f64_with_its_derivative() {
        let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
        let (mut rel, mut grad) = (0.0f64, 0.0f64);
        for i in -300_000..=300_000 {
            let x = i as f32 * 1e-4;
            let xf = x as f64;
            let want = xf * sigmoid(xf);
            if xf.abs() >= 1e-3 {
                rel = rel.max((silu_f32(x) as f64 - want).abs() / want.abs());
            }
            let s = sigmoid(xf);
            let dwant = s * (1.0 + xf * (1.0 - s));
            grad = grad.max((silu_grad_f32(x) as f64 - dwant).abs());
        }
        // A few f32 units: the polynomial exp's, then one division and one product.
        assert!(
            rel < 1e-6,
            "worst relative error of silu on [-30, 30]: {rel:e}"
        );
        assert!(grad < 5e-7, "worst absolute error of silu': {grad:e}");
        // Limits and special values.
        assert_eq!(silu_f32(0.0), 0.0);
        assert_eq!(silu_f32(100.0), 100.0);
        assert!(silu_f32(-100.0).abs() < 1e-35 && silu_f32(-1e4).abs() < 1e-34);
        assert!(silu_f32(f32::NAN).is_nan());
        assert_eq!(silu_grad_f32(0.0), 0.5);
        assert_eq!(silu_grad_f32(100.0), 1.0);
        assert!(silu_grad_f32(-100.0).abs() < 1e-35);
    }

    #[test]
    fn silu_tensor_has_burns_values_and_gradient() {
        // Relative as well: Burn's gradient takes `1 - σ(x)` by subtraction,
        // which loses digits as `x` grows (about 7e-7 relative at x = 6.4).
        let tol = burn::tensor::Tolerance::rel_abs(2e-6, 2e-6);
        matches_burn_with_gradient(silu, burn::tensor::activation::silu, tol);
        let device = Default::default();
        let plain =
            Tensor::<burn::backend::Flex, 2>::from_data([[-2.0f32, 0.5], [3.0, 0.0]], &device);
        let want: Vec<f32> = [-2.0f32, 0.5, 3.0, 0.0]
            .iter()
            .map(|&v| silu_f32(v))
            .collect();
        assert_eq!(silu(plain).into_data().to_vec::<f32>().unwrap(), want);
    }

    #[test]
    fn dropout_tensor_scales_kept_values_and_masks_the_gradient() {
        let device = Default::default();
        <Ad as Backend>::seed(&device, 7);
        let n = 100_000;
        let d = burn::nn::DropoutConfig::new(0.25).init();
        let x = Tensor::<Ad, 2>::ones([n / 100, 100], &device).require_grad();
        let y = dropout(x.clone(), &d);
        let out = y.clone().into_data().to_vec::<f32>().unwrap();
        assert!(out
            .iter()
            .all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6));
        let kept = out.iter().filter(|&&v| v != 0.0).count() as f64 / n as f64;
        assert!(
            (kept - 0.75).abs() < 5.0 * (0.75 * 0.25 / n as f64).sqrt(),
            "kept {kept}"
        );
        let grad = x
            .grad(&y.sum().backward())
            .unwrap()
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        assert_eq!(grad, out);
        // A second call draws a new mask; the same seed gives the same one.
        let again = dropout(x.clone(), &d).into_data().to_vec::<f32>().unwrap();
        assert_ne!(again, out);
        <Ad as Backend>::seed(&device, 7);
        let replay = dropout(x, &d).into_data().to_vec::<f32>().unwrap();
        assert_eq!(replay, out);
        // Inactive without autodiff.
        let plain = Tensor::<burn::backend::Flex, 1>::ones([10], &device);
        assert_eq!(
            dropout(plain, &d).into_data().to_vec::<f32>().unwrap(),
            vec![1.0; 10]
        );
    }
}
