//! The parameter counts and per-step traffic rank 0 reports.

use crate::Classifier;
use burn::tensor::backend::AutodiffBackend;
use burn_rlora::distributed::flat::GradLayout;
use burn_rlora::ParamCount;
use burn_rlora_examples::synthetic::{D_HIDDEN, D_IN};

/// Scalars of the two base layers that full fine-tuning would train instead
/// of the adapters: the weight and the bias of each.
pub(crate) const BASE_PARAMS: usize = D_IN * D_HIDDEN + D_HIDDEN + D_HIDDEN * D_HIDDEN + D_HIDDEN;
/// Tensors of the two base layers: the weight and the bias of each.
pub(crate) const BASE_TENSORS: usize = 4;
/// Tensors of one task head: its weight and its bias.
pub(crate) const TENSORS_PER_HEAD: usize = 2;
/// The figures that close a gradient buffer after the presence flags: the
/// rank's example count and its loss times that count (see
/// `burn_rlora::distributed::flat`).
pub(crate) const STEP_FIGURES: usize = 2;

/// Bytes one rank would send per step to fully fine-tune the same layers,
/// in the layout of the adapter's gradient buffer ([`GradLayout`]), all `f32`:
/// every trainable value (the base layers' [`BASE_PARAMS`] and the task
/// heads' `head_params`), one presence flag per trainable tensor (the
/// [`BASE_TENSORS`] and [`TENSORS_PER_HEAD`] for each of `num_tasks` heads),
/// then the [`STEP_FIGURES`].
pub(crate) fn full_finetune_bytes_per_step(head_params: usize, num_tasks: usize) -> usize {
    let values = BASE_PARAMS + head_params;
    let flags = BASE_TENSORS + TENSORS_PER_HEAD * num_tasks;
    (values + flags + STEP_FIGURES) * std::mem::size_of::<f32>()
}

/// The sizes rank 0 prints and reports.
pub(crate) struct Sizes {
    /// Trainable and total parameters.
    pub(crate) count: ParamCount,
    /// Bytes a rank sends per step with the adapter.
    pub(crate) bytes_per_step: usize,
    /// The same with full fine-tuning of the adapted layers.
    pub(crate) full_bytes: usize,
}

impl Sizes {
    /// The sizes of `model`, which has `num_tasks` task heads.
    pub(crate) fn of<B: AutodiffBackend>(model: &Classifier<B>, num_tasks: usize) -> Self {
        let count = ParamCount::of(model);
        let adapter: usize = model
            .body
            .adapted()
            .iter()
            .map(|(_, l)| l.num_adapter_params())
            .sum();
        // Full fine-tuning trains the same task heads as the adapter does.
        let heads = count.trainable - adapter;
        Sizes {
            count,
            bytes_per_step: GradLayout::of::<B, _>(model).bytes_per_step(),
            full_bytes: full_finetune_bytes_per_step(heads, num_tasks),
        }
    }
}
