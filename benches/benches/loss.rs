//! Forward + backward of the collapse-aware cross-entropy against burn's `CrossEntropyLoss` on
//! the same logits: the paper's modular task (4656 x 97) and a vocabulary-sized 8192 x 32768.
//!
//! `cargo bench -p slingshot-benches --bench loss` (ndarray);
//! `cargo bench -p slingshot-benches --bench loss --features cuda` adds burn-cuda (filter with
//! `-- cuda`): 4656 x 97, 8192 x 32768 and 16384 x 131072, burn's loss against the portable and
//! the fused CubeCL kernel, with throughput as effective bandwidth at 12 bytes per f32 logit
//! (read forward, read backward, write the gradient).
//! Set `SLINGSHOT_BENCH_SMALL=1` to skip the large shapes (on ndarray each 8192 x 32768
//! iteration takes seconds), and on CUDA `SLINGSHOT_BENCH_HUGE_ALL=1` to run burn's loss and the
//! portable kernel at 16384 x 131072 too (8 GiB of logits; their `[n, k]` temporaries may not fit
//! in the device's memory).

use burn::backend::Autodiff;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{DType, ElementConversion, Int, Tensor, TensorData};
use burn_ndarray::NdArray;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use slingshot::loss::{CollapseAwareCrossEntropyConfig, LossPrecision};
use slingshot_benches::bench_logits;

/// One arm: burn's own loss (`None`), or a configuration of the collapse-aware loss and whether
/// to force its portable kernel.
/// `(name, config (None: burn's loss), force the portable kernel, read statistics)`.
type Arm = (
    &'static str,
    Option<CollapseAwareCrossEntropyConfig>,
    bool,
    bool,
);

/// The arms compared on each shape. On ndarray the collapse-aware loss runs its fused host
/// kernel; the `portable_*` arms force the backend-independent kernel for comparison.
fn arms() -> Vec<Arm> {
    let base = CollapseAwareCrossEntropyConfig::new;
    vec![
        ("burn_cross_entropy", None, false, false),
        ("stats_on", Some(base()), false, true),
        ("stats_off", Some(base()), false, false),
        (
            "stats_on_checked",
            Some(base().with_check_inputs(true)),
            false,
            true,
        ),
        (
            "f64_loss",
            Some(base().with_precision(LossPrecision::F64)),
            false,
            true,
        ),
        ("portable_stats_on", Some(base()), true, true),
        (
            "portable_f64_loss",
            Some(base().with_precision(LossPrecision::F64)),
            true,
            true,
        ),
    ]
}

fn inputs<B: AutodiffBackend>(
    n: usize,
    k: usize,
    device: &B::Device,
) -> (Tensor<B, 2>, Tensor<B, 1, Int>) {
    let values: Vec<f32> = bench_logits(n * k).iter().map(|&v| v as f32).collect();
    let logits = Tensor::<B, 2>::from_data(TensorData::new(values, [n, k]), (device, DType::F32));
    let targets: Vec<i64> = (0..n).map(|i| ((i * 31) % k) as i64).collect();
    let targets = Tensor::<B, 1, Int>::from_data(TensorData::new(targets, [n]), device);
    (logits, targets)
}

/// One forward + backward; returns the gradient so that nothing is optimised away. Reading
/// one element forces asynchronous backends to finish.
fn step<B: AutodiffBackend>(
    config: &Option<CollapseAwareCrossEntropyConfig>,
    portable: bool,
    stats: bool,
    logits: &Tensor<B, 2>,
    targets: &Tensor<B, 1, Int>,
    device: &B::Device,
) -> f32 {
    let z = logits.clone().detach().require_grad();
    let loss = match config {
        None => CrossEntropyLossConfig::new()
            .init(device)
            .forward(z.clone(), targets.clone()),
        Some(c) => {
            let loss = c.init::<B>(device);
            let loss = if portable {
                loss.with_portable_kernel()
            } else {
                loss
            };
            if stats {
                loss.forward_with_stats(z.clone(), targets.clone()).loss
            } else {
                loss.forward(z.clone(), targets.clone())
            }
        }
    };
    let grads = loss.backward();
    let g = z.grad(&grads).expect("gradient");
    g.slice([0..1, 0..1]).into_scalar().elem::<f32>()
}

fn bench_backend<B: AutodiffBackend>(c: &mut Criterion, name: &str, device: B::Device) {
    let small_only = std::env::var_os("SLINGSHOT_BENCH_SMALL").is_some();
    for (n, k) in [(4656usize, 97usize), (8192, 32768)] {
        if small_only && k > 97 {
            continue;
        }
        let (logits, targets) = inputs::<B>(n, k, &device);
        let mut group = c.benchmark_group(format!("ce_forward_backward/{name}/{n}x{k}"));
        group.throughput(Throughput::Elements((n * k) as u64));
        if k > 97 {
            group.sample_size(10);
        }
        for (arm, config, portable, stats) in arms() {
            // The large shape keeps to the headline arms: each f64 copy of it is 2 GiB.
            if k > 97
                && !matches!(
                    arm,
                    "burn_cross_entropy" | "stats_on" | "stats_off" | "f64_loss"
                )
            {
                continue;
            }
            group.bench_function(BenchmarkId::from_parameter(arm), |b| {
                b.iter(|| step::<B>(&config, portable, stats, &logits, &targets, &device))
            });
        }
        group.finish();
    }
}

/// The CUDA arms. Input checks (a host read per forward) are off except in
/// `fused_stats_on_checked`, so that the arms time the kernels.
#[cfg(feature = "cuda")]
fn cuda_arms() -> Vec<Arm> {
    let base = CollapseAwareCrossEntropyConfig::new;
    vec![
        ("burn_cross_entropy", None, false, false),
        ("portable_stats_on", Some(base()), true, true),
        ("fused_stats_on", Some(base()), false, true),
        ("fused_stats_off", Some(base()), false, false),
        (
            "fused_stats_on_checked",
            Some(base().with_check_inputs(true)),
            false,
            true,
        ),
        (
            "fused_f64_loss",
            Some(base().with_precision(LossPrecision::F64)),
            false,
            true,
        ),
        (
            "fused_zero_sum",
            Some(base().with_zero_sum_projection(true)),
            false,
            true,
        ),
    ]
}

/// f32 logits on the device: the shared deterministic values for the shapes that ndarray also
/// runs, device-side uniform values in [-8, 8) for the 8 GiB shape.
#[cfg(feature = "cuda")]
fn device_inputs<B: AutodiffBackend>(
    n: usize,
    k: usize,
    device: &B::Device,
) -> (Tensor<B, 2>, Tensor<B, 1, Int>) {
    if n * k <= 8192 * 32768 {
        return inputs::<B>(n, k, device);
    }
    B::seed(device, 0x5eed);
    let logits = Tensor::<B, 2>::random(
        [n, k],
        burn::tensor::Distribution::Uniform(-8.0, 8.0),
        device,
    );
    let targets: Vec<i64> = (0..n).map(|i| ((i * 31) % k) as i64).collect();
    let targets = Tensor::<B, 1, Int>::from_data(TensorData::new(targets, [n]), device);
    (logits, targets)
}

#[cfg(feature = "cuda")]
fn cuda(c: &mut Criterion) {
    type B = Autodiff<burn_cuda::Cuda<f32, i32>>;
    let device = Default::default();
    let small_only = std::env::var_os("SLINGSHOT_BENCH_SMALL").is_some();
    let huge_all = std::env::var_os("SLINGSHOT_BENCH_HUGE_ALL").is_some();
    for (n, k) in [(4656usize, 97usize), (8192, 32768), (16384, 131072)] {
        if small_only && k > 97 {
            continue;
        }
        let (logits, targets) = device_inputs::<B>(n, k, &device);
        let mut group = c.benchmark_group(format!("ce_forward_backward/cuda/{n}x{k}"));
        // Effective bandwidth: 12 bytes per f32 logit for forward + backward.
        group.throughput(Throughput::BytesDecimal(12 * (n * k) as u64));
        if k > 97 {
            group.sample_size(10);
        }
        for (arm, config, portable, stats) in cuda_arms() {
            let huge = k > 32768;
            if huge && !huge_all && (config.is_none() || portable) {
                continue;
            }
            group.bench_function(BenchmarkId::from_parameter(arm), |b| {
                b.iter(|| step::<B>(&config, portable, stats, &logits, &targets, &device))
            });
        }
        group.finish();
    }
}

fn ndarray(c: &mut Criterion) {
    bench_backend::<Autodiff<NdArray<f32>>>(c, "ndarray", Default::default());
}

#[cfg(not(feature = "cuda"))]
criterion_group!(benches, ndarray);
#[cfg(feature = "cuda")]
criterion_group!(benches, ndarray, cuda);
criterion_main!(benches);
