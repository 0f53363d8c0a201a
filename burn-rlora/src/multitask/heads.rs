//! [`TaskHeads`]: one output layer per task over a shared body.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{BasicOps, Element, Int, Tensor, TensorData};

use super::task::TaskId;

/// One linear classification head per task, so that tasks with different
/// label sets train together over one shared (adapted) body.
///
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use burn_rlora::multitask::{TaskHeads, TaskId};
///
/// let heads = TaskHeads::<NdArray>::new(8, &[3, 2], &Default::default());
/// let features = Tensor::<NdArray, 2>::ones([4, 8], &Default::default());
/// let groups = heads.forward(features, &[TaskId(0), TaskId(1), TaskId(0), TaskId(1)]);
/// assert_eq!(groups.len(), 2);
/// assert_eq!(groups[0].1.dims(), [2, 3]); // two rows of task 0, three classes
/// assert_eq!(groups[1].2, vec![1, 3]);     // the batch rows of task 1
/// ```
#[derive(Module, Debug)]
pub struct TaskHeads<B: Backend> {
    /// The heads, indexed by [`TaskId`].
    pub heads: Vec<Linear<B>>,
}

impl<B: Backend> TaskHeads<B> {
    /// Heads from `d_model` features to `num_classes[t]` logits for every task `t`.
    pub fn new(d_model: usize, num_classes: &[usize], device: &B::Device) -> Self {
        let heads = num_classes
            .iter()
            .map(|&c| LinearConfig::new(d_model, c).init(device))
            .collect();
        Self { heads }
    }

    /// The number of tasks.
    pub fn num_tasks(&self) -> usize {
        self.heads.len()
    }

    /// Apply each task's head to its rows of `features` (`[batch, d_model]`).
    ///
    /// Returns, for every task present in `tasks` (in task order), the task,
    /// its logits `[rows, num_classes]`, and the batch rows they belong to.
    ///
    /// # Panics
    ///
    /// If a task id is not below [`num_tasks`](Self::num_tasks) or `tasks`
    /// is not as long as the batch.
    pub fn forward(
        &self,
        features: Tensor<B, 2>,
        tasks: &[TaskId],
    ) -> Vec<(TaskId, Tensor<B, 2>, Vec<usize>)> {
        let [batch, _] = features.dims();
        assert_eq!(tasks.len(), batch, "one task id per batch row");
        let mut rows: Vec<Vec<usize>> = vec![Vec::new(); self.heads.len()];
        for (i, task) in tasks.iter().enumerate() {
            assert!(
                task.0 < self.heads.len(),
                "task {} has no head ({} heads)",
                task.0,
                self.heads.len()
            );
            rows[task.0].push(i);
        }
        rows.into_iter()
            .enumerate()
            .filter(|(_, r)| !r.is_empty())
            .map(|(t, r)| {
                let x = select_rows(features.clone(), &r);
                (TaskId(t), self.heads[t].forward(x), r)
            })
            .collect()
    }
}

/// The rows `rows` (along dimension 0) of `tensor`, in that order; `tensor`
/// itself when `rows` names as many rows as it has, which for ascending,
/// distinct rows (as [`TaskHeads::forward`] groups them) is every row in order.
pub(super) fn select_rows<B, const D: usize, K>(
    tensor: Tensor<B, D, K>,
    rows: &[usize],
) -> Tensor<B, D, K>
where
    B: Backend,
    K: BasicOps<B>,
    K::Elem: Element,
{
    if rows.len() == tensor.dims()[0] {
        return tensor;
    }
    let idx: Vec<i64> = rows.iter().map(|&i| i as i64).collect();
    let idx = Tensor::<B, 1, Int>::from_data(TensorData::new(idx, [rows.len()]), &tensor.device());
    tensor.select(0, idx)
}
