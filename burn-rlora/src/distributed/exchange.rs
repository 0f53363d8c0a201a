//! [`Exchange`]: the collective operations data-parallel training needs.

/// The collective operations of a group of ranks that train together.
///
/// Every rank must make the same calls in the same order with buffers of the
/// same length; an implementation may block until all ranks have called.
pub trait Exchange {
    /// This process's rank, `0..size()`.
    fn rank(&self) -> usize;

    /// The number of ranks.
    fn size(&self) -> usize;

    /// Replace `buf` on every rank by the element-wise sum of all ranks' `buf`.
    fn all_reduce_sum(&self, buf: &mut [f32]);

    /// Replace `buf` on every rank by rank 0's `buf`.
    fn broadcast_from_root(&self, buf: &mut [f32]);

    /// Stop every rank of the job after printing `message`; never returns.
    fn abort(&self, message: &str) -> !;
}

/// The exchange of a job with one rank: every operation is the identity.
#[derive(Debug, Clone, Copy, Default)]
pub struct SingleProcess;

impl Exchange for SingleProcess {
    fn rank(&self) -> usize {
        0
    }

    fn size(&self) -> usize {
        1
    }

    fn all_reduce_sum(&self, _buf: &mut [f32]) {}

    fn broadcast_from_root(&self, _buf: &mut [f32]) {}

    fn abort(&self, message: &str) -> ! {
        eprintln!("error: {message}");
        std::process::exit(1)
    }
}
