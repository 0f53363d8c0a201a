//! Peak heap memory of one training step, counted by a global allocator:
//! R-LoRA (multi-head dropout on `A x`, `N x r` masks) against HydraLoRA
//! (one dropout mask on `x`, `d_in` wide), at the same `N` and `r`.
//!
//! ```text
//! cargo run --release -p burn-rlora-benches --bin memory
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::tensor::backend::AutodiffBackend;
use burn_rlora_benches::{input, prepare, step, Variant, SHAPES};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded to the system allocator with the caller's layout.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn run<B: AutodiffBackend>(backend: &str) {
    let device = B::Device::default();
    for s in SHAPES {
        let x = input::<B>(s, &device);
        let mut peaks = Vec::new();
        for v in [Variant::Frozen, Variant::HydraLora, Variant::RLora] {
            let layer = prepare::<B>(v, s, &device);
            step(&layer, &x); // warm caches and pools first
            let before = CURRENT.load(Ordering::Relaxed);
            PEAK.store(before, Ordering::Relaxed);
            step(&layer, &x);
            peaks.push(PEAK.load(Ordering::Relaxed).saturating_sub(before));
        }
        println!(
            "| {backend} | {} | {:.1} | {:.1} | {:.1} | {:.2} |",
            s.name,
            mib(peaks[0]),
            mib(peaks[1]),
            mib(peaks[2]),
            peaks[2] as f64 / peaks[1] as f64
        );
    }
}

fn main() {
    println!("| backend | shape | frozen step peak MiB | hydralora MiB | rlora MiB | rlora / hydralora |");
    println!("|---|---|---|---|---|---|");
    run::<burn::backend::Autodiff<burn::backend::NdArray>>("ndarray");
    run::<burn::backend::Autodiff<burn::backend::Flex>>("flex");
}
