//! [`SeededEpochLoader`]: a training data loader whose epoch `e` depends on
//! `(seed, e)` alone, so that a run resumed at epoch `e` repeats an
//! uninterrupted one bit for bit.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataloader::{DataLoader, DataLoaderIterator, Progress};
use burn::data::dataset::transform::PartialDataset;
use burn::data::dataset::Dataset;
use burn::tensor::backend::Backend;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// The seed of epoch `epoch` of a run seeded with `seed` (SplitMix64 of both):
/// what [`SeededEpochLoader`] shuffles with and reseeds the backend with.
pub fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    let mut z = seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A burn `DataLoader` for training whose every epoch is a function of the
/// seed and the epoch number alone.
///
/// burn's own shuffling loader draws each epoch's order from one generator
/// that advances from epoch to epoch, and the backend's random numbers
/// (dropout masks) continue from wherever the previous epoch left them: a run
/// resumed from a checkpoint sees other orders and other masks than the run
/// it continues. This loader instead, each time an epoch starts (each `iter`):
///
/// * shuffles the items with [`epoch_seed`]`(seed, epoch)`, and
/// * reseeds the backend's global generator (`B::seed`) with the same value,
///
/// with epochs counted from [`starting_epoch`](Self::starting_epoch) (1 by
/// default; `n + 1` when resuming from checkpoint `n`). Batches are built on
/// the calling thread, in order.
///
/// The reseeding makes a run reproducible only if nothing else draws from the
/// backend's generator meanwhile: one run at a time per process, one device.
pub struct SeededEpochLoader<B: Backend, I, O> {
    dataset: Arc<dyn Dataset<I>>,
    batcher: Arc<dyn Batcher<B, I, O>>,
    batch_size: usize,
    seed: u64,
    reseed_backend: bool,
    device: B::Device,
    next_epoch: Arc<AtomicUsize>,
}

impl<B: Backend, I, O> SeededEpochLoader<B, I, O>
where
    I: Send + Sync + Clone + 'static,
    O: Send + 'static,
{
    /// Batches of `batch_size` (at least 1) of `dataset`, made by `batcher`,
    /// shuffled per epoch under `seed`, on the default device.
    pub fn new<D, Bt>(batcher: Bt, dataset: D, batch_size: usize, seed: u64) -> Self
    where
        D: Dataset<I> + 'static,
        Bt: Batcher<B, I, O> + 'static,
    {
        Self {
            dataset: Arc::new(dataset),
            batcher: Arc::new(batcher),
            batch_size: batch_size.max(1),
            seed,
            reseed_backend: true,
            device: Default::default(),
            next_epoch: Arc::new(AtomicUsize::new(1)),
        }
    }

    /// The first epoch this loader serves (its first `iter`).
    pub fn starting_epoch(self, epoch: usize) -> Self {
        self.next_epoch.store(epoch, Ordering::SeqCst);
        self
    }

    /// Shuffle only; leave the backend's generator alone.
    pub fn without_backend_reseed(mut self) -> Self {
        self.reseed_backend = false;
        self
    }

    /// The epoch the next `iter` will serve.
    pub fn next_epoch(&self) -> usize {
        self.next_epoch.load(Ordering::SeqCst)
    }

    /// The item order of `epoch` (indices into the dataset).
    pub fn order(&self, epoch: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.dataset.len()).collect();
        order.shuffle(&mut StdRng::seed_from_u64(epoch_seed(self.seed, epoch)));
        order
    }

    fn with_parts(&self, dataset: Arc<dyn Dataset<I>>, seed: u64, device: B::Device) -> Self {
        Self {
            dataset,
            batcher: self.batcher.clone(),
            batch_size: self.batch_size,
            seed,
            reseed_backend: self.reseed_backend,
            device,
            next_epoch: Arc::new(AtomicUsize::new(self.next_epoch())),
        }
    }
}

struct SeededEpochIter<B: Backend, I, O> {
    dataset: Arc<dyn Dataset<I>>,
    batcher: Arc<dyn Batcher<B, I, O>>,
    batch_size: usize,
    device: B::Device,
    order: Vec<usize>,
    position: usize,
}

impl<B: Backend, I, O> Iterator for SeededEpochIter<B, I, O> {
    type Item = O;

    fn next(&mut self) -> Option<O> {
        let end = (self.position + self.batch_size).min(self.order.len());
        if self.position >= end {
            return None;
        }
        let items: Vec<I> = self.order[self.position..end]
            .iter()
            .filter_map(|&i| self.dataset.get(i))
            .collect();
        self.position = end;
        Some(self.batcher.batch(items, &self.device))
    }
}

impl<B: Backend, I, O> DataLoaderIterator<O> for SeededEpochIter<B, I, O> {
    fn progress(&self) -> Progress {
        Progress::new(self.position, self.order.len())
    }
}

impl<B, I, O> DataLoader<B, O> for SeededEpochLoader<B, I, O>
where
    B: Backend,
    I: Send + Sync + Clone + 'static,
    O: Send + 'static,
{
    fn iter<'a>(&'a self) -> Box<dyn DataLoaderIterator<O> + 'a> {
        let epoch = self.next_epoch.fetch_add(1, Ordering::SeqCst);
        if self.reseed_backend {
            B::seed(&self.device, epoch_seed(self.seed, epoch));
        }
        Box::new(SeededEpochIter {
            dataset: self.dataset.clone(),
            batcher: self.batcher.clone(),
            batch_size: self.batch_size,
            device: self.device.clone(),
            order: self.order(epoch),
            position: 0,
        })
    }

    fn num_items(&self) -> usize {
        self.dataset.len()
    }

    fn to_device(&self, device: &B::Device) -> Arc<dyn DataLoader<B, O>> {
        Arc::new(self.with_parts(self.dataset.clone(), self.seed, device.clone()))
    }

    fn slice(&self, start: usize, end: usize) -> Arc<dyn DataLoader<B, O>> {
        let part: Arc<dyn Dataset<I>> =
            Arc::new(PartialDataset::new(self.dataset.clone(), start, end));
        Arc::new(self.with_parts(part, epoch_seed(self.seed, start), self.device.clone()))
    }
}
