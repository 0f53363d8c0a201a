//! [`MultiTaskBatcher`]: items of several tasks to tensors.

use burn::data::dataloader::batcher::Batcher;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use super::task::{TaskId, TaskItem};

/// A batch of examples from several tasks.
#[derive(Debug, Clone)]
pub struct MultiTaskBatch<B: Backend, X> {
    /// The stacked inputs (what [`Collate`] made of the items' inputs).
    pub inputs: X,
    /// The class labels, `[batch]`.
    pub targets: Tensor<B, 1, Int>,
    /// The task of every example, in batch order.
    pub tasks: Vec<TaskId>,
}

/// Stacks the inputs of several items into the body's batch input.
pub trait Collate<B: Backend, X>: Send + Sync {
    /// The stacked type.
    type Output: Clone + Send + 'static;

    /// Stack `inputs` on `device`.
    fn collate(&self, inputs: Vec<X>, device: &B::Device) -> Self::Output;
}

/// Stacks dense feature vectors (all of one length) into a `[batch, features]` tensor.
#[derive(Debug, Clone, Copy, Default)]
pub struct DenseCollate;

impl<B: Backend> Collate<B, Vec<f32>> for DenseCollate {
    type Output = Tensor<B, 2>;

    /// # Panics
    ///
    /// If the vectors differ in length: the dataset is malformed, which
    /// [`MultiTaskDataset`](super::MultiTaskDataset) users catch by building
    /// their features with one width.
    fn collate(&self, inputs: Vec<Vec<f32>>, device: &B::Device) -> Tensor<B, 2> {
        let rows = inputs.len();
        let width = inputs.first().map_or(0, Vec::len);
        assert!(
            inputs.iter().all(|v| v.len() == width),
            "feature vectors differ in length"
        );
        let flat: Vec<f32> = inputs.into_iter().flatten().collect();
        Tensor::from_data(TensorData::new(flat, [rows, width]), device)
    }
}

/// Turns [`TaskItem`]s into a [`MultiTaskBatch`], keeping every item's task.
#[derive(Debug, Clone, Default)]
pub struct MultiTaskBatcher<C> {
    collate: C,
}

impl<C> MultiTaskBatcher<C> {
    /// A batcher that stacks inputs with `collate`.
    pub fn new(collate: C) -> Self {
        Self { collate }
    }
}

impl<B: Backend, X, C: Collate<B, X>> Batcher<B, TaskItem<X>, MultiTaskBatch<B, C::Output>>
    for MultiTaskBatcher<C>
{
    fn batch(&self, items: Vec<TaskItem<X>>, device: &B::Device) -> MultiTaskBatch<B, C::Output> {
        let mut tasks = Vec::with_capacity(items.len());
        let mut labels = Vec::with_capacity(items.len());
        let mut inputs = Vec::with_capacity(items.len());
        for item in items {
            tasks.push(item.task);
            labels.push(item.label as i64);
            inputs.push(item.input);
        }
        let n = labels.len();
        MultiTaskBatch {
            inputs: self.collate.collate(inputs, device),
            targets: Tensor::from_data(TensorData::new(labels, [n]), device),
            tasks,
        }
    }
}
