//! Shared by the test binaries: one lock around the backend's global RNG.

use std::cell::Cell;
use std::sync::{Mutex, MutexGuard};

/// The backends' random generator is global to the process, and the tests of
/// one binary run in parallel: a test that reseeds it and expects the same
/// draws holds this lock for as long as it draws.
static RNG: Mutex<()> = Mutex::new(());

thread_local! {
    static HELD: Cell<bool> = const { Cell::new(false) };
}

/// Holds [`rng_lock`] until dropped.
pub struct RngGuard(#[allow(dead_code)] Option<MutexGuard<'static, ()>>);

impl Drop for RngGuard {
    fn drop(&mut self) {
        if self.0.is_some() {
            HELD.with(|h| h.set(false));
        }
    }
}

/// Take the RNG lock. Re-entrant: a helper that reseeds may take it again
/// inside a test that holds it.
pub fn rng_lock() -> RngGuard {
    if HELD.with(Cell::get) {
        return RngGuard(None);
    }
    let guard = RNG.lock().unwrap_or_else(|e| e.into_inner());
    HELD.with(|h| h.set(true));
    RngGuard(Some(guard))
}
