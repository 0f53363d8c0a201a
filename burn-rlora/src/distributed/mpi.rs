//! [`MpiExchange`]: the [`Exchange`] of an MPI job (feature `mpi`).

use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives, Root};

use super::exchange::Exchange;

/// The ranks of `MPI_COMM_WORLD`: one process per rank, started by `mpirun`.
///
/// Creating it initializes MPI; dropping it finalizes MPI, so keep it alive
/// until the job's last collective call.
pub struct MpiExchange {
    world: SimpleCommunicator,
    _universe: Universe,
}

impl MpiExchange {
    /// Initialize MPI. `None` when MPI was already initialized in this process.
    pub fn init() -> Option<Self> {
        let universe = mpi::initialize()?;
        Some(Self {
            world: universe.world(),
            _universe: universe,
        })
    }
}

impl Exchange for MpiExchange {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    fn size(&self) -> usize {
        self.world.size() as usize
    }

    /// One `MPI_Allreduce` with `MPI_SUM` over the whole buffer.
    fn all_reduce_sum(&self, buf: &mut [f32]) {
        let send = buf.to_vec();
        self.world
            .all_reduce_into(&send[..], buf, SystemOperation::sum());
    }

    /// One `MPI_Bcast` from rank 0.
    fn broadcast_from_root(&self, buf: &mut [f32]) {
        self.world.process_at_rank(0).broadcast_into(buf);
    }

    /// `MPI_Abort` of the whole job.
    fn abort(&self, message: &str) -> ! {
        eprintln!("error: {message}");
        self.world.abort(1)
    }
}
