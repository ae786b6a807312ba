//! Cost of emulating a format: the simulator's cross-entropy row against the same row computed
//! natively in f32, and the threshold search.
//!
//! `cargo bench -p slingshot-benches --bench numerics`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use slingshot::numerics::{
    CrossEntropySimulator, FloatFormat, SummationOrder, collapse_certain_at,
};
use slingshot_benches::bench_logits;
use std::hint::black_box;

fn native_f32_row(z: &[f32], label: usize) -> (f32, Vec<f32>) {
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let shifted: Vec<f32> = z.iter().map(|&v| v - max).collect();
    let log_sum = shifted.iter().map(|&s| s.exp()).sum::<f32>().ln();
    let grad = shifted
        .iter()
        .enumerate()
        .map(|(k, &s)| {
            let p = (s - log_sum).exp();
            if k == label { p - 1.0 } else { p }
        })
        .collect();
    (-(shifted[label] - log_sum), grad)
}

fn simulator(c: &mut Criterion) {
    let mut group = c.benchmark_group("cross_entropy_row");
    for k in [97usize, 32_768] {
        let logits = bench_logits(k);
        let z32: Vec<f32> = logits.iter().map(|&v| v as f32).collect();
        group.throughput(Throughput::Elements(k as u64));
        group.bench_with_input(BenchmarkId::new("native_f32", k), &z32, |b, z| {
            b.iter(|| native_f32_row(black_box(z), 3))
        });
        for format in [FloatFormat::F32, FloatFormat::BF16, FloatFormat::E4M3] {
            let sim = CrossEntropySimulator::new(format, SummationOrder::Sequential);
            group.bench_with_input(
                BenchmarkId::new(format!("simulated_{format}"), k),
                &logits,
                |b, z| b.iter(|| sim.simulate(black_box(z), 3).unwrap()),
            );
        }
    }
    group.finish();
}

fn thresholds(c: &mut Criterion) {
    c.bench_function("collapse_certain_at_f32_k50304", |b| {
        b.iter(|| collapse_certain_at(black_box(FloatFormat::F32), black_box(50_304)).unwrap())
    });
}

criterion_group!(benches, simulator, thresholds);
criterion_main!(benches);
