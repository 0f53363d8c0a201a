//! Deterministic shards of a dataset for data-parallel training.
//!
//! [`shard_indices`] draws one permutation of the dataset from the seed (the
//! same on every rank) and gives rank `r` the `r`-th of `ranks` equal,
//! disjoint chunks of it: no example is in two shards, and every rank has
//! the same number of examples, so every rank takes the same number of steps
//! per epoch (an all-reduce per step needs that). The `len % ranks` examples
//! left over are not used.
//!
//! When every rank's data loader shuffles its shard with the same seed, the
//! ranks visit the same positions of their shards in the same order, so step
//! `k` of the job trains on the examples at those positions in every shard.
//! [`GroupedDataset`] and [`GroupBatcher`] replay exactly those combined
//! batches in one process.

use std::sync::Arc;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::tensor::backend::Backend;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// Why shards could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    /// Zero ranks, or a rank not below the rank count.
    #[error("rank {rank} of {ranks} ranks: need ranks >= 1 and rank < ranks")]
    BadRank {
        /// The rank asked for.
        rank: usize,
        /// The rank count.
        ranks: usize,
    },
    /// Fewer examples than ranks.
    #[error("{len} examples cannot be split over {ranks} ranks")]
    TooFewExamples {
        /// The dataset's length.
        len: usize,
        /// The rank count.
        ranks: usize,
    },
}

/// The indices of rank `rank`'s shard of a dataset of `len` examples split
/// over `ranks` ranks under `seed` (see the module docs).
///
/// # Errors
///
/// A rank out of range, or fewer examples than ranks.
pub fn shard_indices(
    len: usize,
    ranks: usize,
    rank: usize,
    seed: u64,
) -> Result<Vec<usize>, ShardError> {
    if ranks == 0 || rank >= ranks {
        return Err(ShardError::BadRank { rank, ranks });
    }
    let per = len / ranks;
    if per == 0 {
        return Err(ShardError::TooFewExamples { len, ranks });
    }
    let mut order: Vec<usize> = (0..len).collect();
    order.shuffle(&mut StdRng::seed_from_u64(seed));
    Ok(order[rank * per..(rank + 1) * per].to_vec())
}

/// The examples of a dataset at the given indices.
pub struct ShardDataset<D> {
    inner: Arc<D>,
    indices: Vec<usize>,
}

impl<D> ShardDataset<D> {
    /// The items of `inner` at `indices`, in that order.
    pub fn new(inner: Arc<D>, indices: Vec<usize>) -> Self {
        Self { inner, indices }
    }
}

impl<I, D: Dataset<I>> Dataset<I> for ShardDataset<D> {
    fn get(&self, index: usize) -> Option<I> {
        self.inner.get(*self.indices.get(index)?)
    }

    fn len(&self) -> usize {
        self.indices.len()
    }
}

/// Item `i` is the list of every shard's item `i`: one position of all
/// ranks' shards at once.
pub struct GroupedDataset<D> {
    inner: Arc<D>,
    shards: Vec<Vec<usize>>,
}

impl<D> GroupedDataset<D> {
    /// Group `shards` (of equal length, as [`shard_indices`] makes them) of `inner`.
    pub fn new(inner: Arc<D>, shards: Vec<Vec<usize>>) -> Self {
        Self { inner, shards }
    }
}

impl<I, D: Dataset<I>> Dataset<Vec<I>> for GroupedDataset<D> {
    fn get(&self, index: usize) -> Option<Vec<I>> {
        self.shards
            .iter()
            .map(|s| self.inner.get(*s.get(index)?))
            .collect()
    }

    fn len(&self) -> usize {
        self.shards.iter().map(Vec::len).min().unwrap_or(0)
    }
}

/// Batches groups of items ([`GroupedDataset`]) by flattening them and
/// batching the items with the inner batcher.
#[derive(Debug, Clone)]
pub struct GroupBatcher<T>(pub T);

impl<B: Backend, I, O, T: Batcher<B, I, O>> Batcher<B, Vec<I>, O> for GroupBatcher<T> {
    fn batch(&self, items: Vec<Vec<I>>, device: &B::Device) -> O {
        self.0.batch(items.into_iter().flatten().collect(), device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::data::dataset::InMemDataset;

    #[test]
    fn shards_are_disjoint_equal_and_deterministic() {
        let shards: Vec<Vec<usize>> = (0..3)
            .map(|r| shard_indices(10, 3, r, 7).unwrap())
            .collect();
        assert!(shards.iter().all(|s| s.len() == 3));
        let mut all: Vec<usize> = shards.concat();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 9, "an example is in two shards");
        assert_eq!(shards[1], shard_indices(10, 3, 1, 7).unwrap());
        assert_ne!(shard_indices(10, 3, 1, 8).unwrap(), shards[1]);
    }

    #[test]
    fn bad_shards_are_errors() {
        assert_eq!(
            shard_indices(10, 2, 2, 0),
            Err(ShardError::BadRank { rank: 2, ranks: 2 })
        );
        assert_eq!(
            shard_indices(10, 0, 0, 0),
            Err(ShardError::BadRank { rank: 0, ranks: 0 })
        );
        assert_eq!(
            shard_indices(1, 2, 0, 0),
            Err(ShardError::TooFewExamples { len: 1, ranks: 2 })
        );
    }

    #[test]
    fn groups_hold_every_shards_item_at_a_position() {
        let data = Arc::new(InMemDataset::new(
            (0..8).map(|i| i * 10).collect::<Vec<i32>>(),
        ));
        let shards = vec![vec![3, 1], vec![0, 5]];
        let shard1 = ShardDataset::new(data.clone(), shards[1].clone());
        assert_eq!(shard1.get(1), Some(50));
        assert_eq!(shard1.get(2), None);
        let grouped = GroupedDataset::new(data, shards);
        assert_eq!(grouped.len(), 2);
        assert_eq!(grouped.get(0), Some(vec![30, 0]));
        assert_eq!(grouped.get(1), Some(vec![10, 50]));
        assert_eq!(grouped.get(2), None);
    }
}
