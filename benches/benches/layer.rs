//! Criterion benchmarks of one training step per variant and shape (flex).
//! The ratio table comes from `--bin ratios`; this gives criterion's
//! statistics and history for each cell.

use burn::backend::{Autodiff, Flex};
use burn_rlora_benches::{input, prepare, step, Variant, SHAPES};
use criterion::{criterion_group, criterion_main, Criterion};

type B = Autodiff<Flex>;

fn bench(c: &mut Criterion) {
    let device = Default::default();
    for s in SHAPES {
        let mut group = c.benchmark_group(format!("step/{}", s.name));
        group.sample_size(10);
        let x = input::<B>(s, &device);
        for v in Variant::ALL {
            let layer = prepare::<B>(v, s, &device);
            group.bench_function(v.name(), |b| b.iter(|| step(&layer, &x)));
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
