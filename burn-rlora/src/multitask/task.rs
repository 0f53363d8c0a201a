//! Task identity.

use serde::{Deserialize, Serialize};

/// The index of a task in a [`MultiTaskDataset`](super::MultiTaskDataset)
/// (the order in which the tasks were added).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TaskId(pub usize);

/// One example with its task and class label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskItem<X> {
    /// The task this example belongs to.
    pub task: TaskId,
    /// The model input (features, token ids, ...).
    pub input: X,
    /// The class label, in `0..num_classes` of the task.
    pub label: usize,
}
