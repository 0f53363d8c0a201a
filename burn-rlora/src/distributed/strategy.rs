//! [`DataParallel`]: burn-train's training loop with a gradient all-reduce
//! between the backward pass and the optimizer step.

use std::rc::Rc;
use std::sync::{Arc, Mutex};

use crate::multitask::MultiTaskOutput;
use burn::data::dataloader::Progress;
use burn::module::AutodiffModule;
use burn::prelude::ElementConversion;
use burn::tensor::backend::Backend;
use burn::train::{
    EventProcessorTraining, InferenceStep, Learner, LearnerEvent, LearningComponentsTypes,
    SupervisedLearningStrategy, SupervisedTrainingEventProcessor, TrainLoader, TrainStep,
    TrainingComponents, TrainingItem, TrainingModel, ValidLoader,
};

use super::exchange::Exchange;
use super::flat::GradLayout;

/// What the gradient exchange needs from a training step's output: how many
/// examples the step saw and its mean loss, so that the ranks' gradients can
/// be weighted by their batch sizes.
pub trait StepStats {
    /// Examples in the batch.
    fn examples(&self) -> usize;
    /// The batch's mean loss (reads it back from the device).
    fn loss_value(&self) -> f64;
}

impl<B: Backend> StepStats for MultiTaskOutput<B> {
    fn examples(&self) -> usize {
        self.per_task.iter().map(|(_, _, t)| t.dims()[0]).sum()
    }

    fn loss_value(&self) -> f64 {
        self.loss.clone().into_scalar().elem::<f64>()
    }
}

/// The global mean loss of every step, shared between the strategy (which
/// records it) and the caller (which reads it after training).
#[derive(Debug, Clone, Default)]
pub struct LossLog(Arc<Mutex<Vec<f64>>>);

impl LossLog {
    /// The losses recorded so far, one per step.
    pub fn values(&self) -> Vec<f64> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }

    fn push(&self, loss: f64) {
        if let Ok(mut v) = self.0.lock() {
            v.push(loss);
        }
    }
}

type StepHook = Box<dyn Fn(usize, usize)>;

/// A burn-train training strategy (use it as `TrainingStrategy::Custom`) for
/// one rank of a data-parallel job.
///
/// Each step runs the Learner's `train_step` on this rank's batch, packs the
/// trainable parameters' gradients into one flat buffer
/// ([`GradLayout::pack`]), sums it over the ranks with **one**
/// [`Exchange::all_reduce_sum`], and hands the batch-size-weighted mean
/// gradient to the Learner's `optimizer_step`. Every rank thus applies the
/// same update; started from the same weights (broadcast them first, see
/// [`crate::distributed::flat::broadcast_from_root`]) they stay identical.
///
/// Rank 0 alone validates after each epoch and saves the Learner's
/// checkpoints (configure the checkpointer there only). The training metrics
/// a rank shows are those of its own batches; the global mean loss of every
/// step is in [`LossLog`].
///
/// Not supported: gradient accumulation, early stopping, and interrupting
/// one rank (the others would wait for it at the next all-reduce). Every
/// rank must take the same number of steps per epoch (equal shards, see
/// [`crate::distributed::shard`]).
pub struct DataParallel<B: Backend, X> {
    device: B::Device,
    exchange: Rc<X>,
    losses: LossLog,
    hook: Option<StepHook>,
}

impl<B: Backend, X: Exchange> DataParallel<B, X> {
    /// A strategy training on `device`, exchanging gradients through `exchange`
    /// and recording the global loss of every step in `losses`.
    pub fn new(device: B::Device, exchange: Rc<X>, losses: LossLog) -> Self {
        Self {
            device,
            exchange,
            losses,
            hook: None,
        }
    }

    /// Call `hook(rank, steps_done)` after every optimizer step.
    pub fn with_step_hook(mut self, hook: impl Fn(usize, usize) + 'static) -> Self {
        self.hook = Some(Box::new(hook));
        self
    }
}

impl<LC, X> SupervisedLearningStrategy<LC> for DataParallel<LC::Backend, X>
where
    LC: LearningComponentsTypes,
    X: Exchange,
    <LC::TrainingModel as TrainStep>::Output: StepStats,
{
    fn fit(
        &self,
        components: TrainingComponents<LC>,
        mut learner: Learner<LC>,
        dataloader_train: TrainLoader<LC>,
        dataloader_valid: ValidLoader<LC>,
        starting_epoch: usize,
    ) -> (TrainingModel<LC>, SupervisedTrainingEventProcessor<LC>) {
        let train = dataloader_train.to_device(&self.device);
        let valid = dataloader_valid.to_device(&self.device);
        learner.fork(&self.device);
        let mut processor = components.event_processor;
        let mut checkpointer = components.checkpointer;
        let rank = self.exchange.rank();
        let layout = GradLayout::of::<LC::Backend, _>(&learner.model());
        let mut steps = 0;

        for epoch in starting_epoch..=components.num_epochs {
            let global = Progress {
                items_processed: epoch,
                items_total: components.num_epochs,
            };
            let mut iterator = train.iter();
            let mut iteration = 0;
            while let Some(batch) = iterator.next() {
                iteration += 1;
                learner.lr_step();
                let progress = iterator.progress();
                let output = learner.train_step(batch);
                let model = learner.model();
                let (n, loss) = (output.item.examples(), output.item.loss_value());
                let mut buf = layout
                    .pack::<LC::Backend, _>(&model, output.grads, n, loss)
                    .unwrap_or_else(|e| self.exchange.abort(&format!("rank {rank}: {e}")));
                self.exchange.all_reduce_sum(&mut buf);
                let (grads, global_step) = layout
                    .unpack::<LC::Backend, _>(&model, &buf)
                    .unwrap_or_else(|e| self.exchange.abort(&format!("rank {rank}: {e}")));
                self.losses.push(global_step.loss);
                learner.optimizer_step(grads);
                steps += 1;
                if let Some(hook) = &self.hook {
                    hook(rank, steps);
                }
                let item = TrainingItem::new(
                    output.item,
                    progress,
                    global.clone(),
                    Some(iteration),
                    Some(learner.lr_current()),
                );
                processor.process_train(LearnerEvent::ProcessedItem(item));
            }
            processor.process_train(LearnerEvent::EndEpoch(epoch));

            if rank == 0 {
                let model = learner.model().valid();
                let mut iterator = valid.iter();
                let mut iteration = 0;
                while let Some(batch) = iterator.next() {
                    iteration += 1;
                    let progress = iterator.progress();
                    let item = TrainingItem::new(
                        model.step(batch),
                        progress,
                        global.clone(),
                        Some(iteration),
                        None,
                    );
                    processor.process_valid(LearnerEvent::ProcessedItem(item));
                }
                processor.process_valid(LearnerEvent::EndEpoch(epoch));
                if let Some(checkpointer) = &mut checkpointer {
                    checkpointer.checkpoint(&learner, epoch, &components.event_store);
                }
            }
        }
        (learner.model(), processor)
    }
}
