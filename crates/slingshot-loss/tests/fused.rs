//! burn-ndarray's fused host kernel against the portable kernel: the same bits for the loss,
//! the gradient and every statistic, across precisions, reductions, zero-sum projection,
//! upstream gradients, and rows in and out of collapse.

mod common;

use burn::backend::Autodiff;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{DType, Int, Tensor, TensorData};
use burn_ndarray::NdArray;
use common::compare::outputs;
use common::{Ad32, Ad64};
use proptest::prelude::*;
use slingshot_loss::{
    CollapseAwareCrossEntropy, CollapseAwareCrossEntropyConfig, LossError, LossPrecision,
    LossReduction,
};

/// Every output of one forward + backward, as raw bits.
#[derive(Debug, PartialEq)]
struct Bits {
    loss: Vec<u64>,
    grad: Vec<u64>,
    collapsed: Vec<bool>,
    zero_loss: Vec<bool>,
    margin: Vec<u64>,
    residual: Vec<u64>,
    lse: Vec<u64>,
    batch: Vec<u64>,
}

fn bits<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<u64> {
    let data = t.into_data();
    match data.dtype {
        DType::F64 => data.iter::<f64>().map(f64::to_bits).collect(),
        DType::F32 => data
            .to_vec::<f32>()
            .unwrap()
            .into_iter()
            .map(|v| v.to_bits() as u64)
            .collect(),
        other => panic!("unexpected dtype {other:?}"),
    }
}

fn bools<B: Backend>(t: Tensor<B, 1, burn::tensor::Bool>) -> Vec<bool> {
    t.into_data().to_vec::<bool>().unwrap()
}

/// Runs `loss` and backpropagates `sum(loss * weights)` (one weight per loss value). The values
/// are read as f64, an exact widening of f32, so equal bits here are equal bits there.
fn run<B: AutodiffBackend>(
    loss: &CollapseAwareCrossEntropy<B>,
    logits: &[f64],
    k: usize,
    targets: &[usize],
    weights: &[f64],
) -> Bits {
    let o = outputs(loss, logits, k, targets, weights);
    let to_bits = |v: Vec<f64>| v.into_iter().map(f64::to_bits).collect();
    Bits {
        loss: to_bits(o.loss),
        grad: to_bits(o.grad),
        collapsed: o.collapsed,
        zero_loss: o.zero_loss,
        margin: to_bits(o.margin),
        residual: to_bits(o.residual),
        lse: to_bits(o.lse),
        batch: to_bits(o.batch),
    }
}

/// Batches mixing ordinary rows and rows with one dominant logit (collapsed in f32 from a
/// margin of about 16, in f64 from about 37), with positive upstream weights.
#[allow(clippy::type_complexity)]
fn batches() -> impl Strategy<Value = (Vec<f64>, Vec<usize>, usize, Vec<f64>)> {
    (2usize..140, 1usize..12).prop_flat_map(|(k, n)| {
        (
            prop::collection::vec((-1.0f64..1.0, 0.0f64..1.0), n * k),
            prop::collection::vec((0..k, 0.0f64..45.0, prop::bool::ANY), n),
            prop::collection::vec(0.1f64..3.0, n),
            -1.0f64..1.5,
        )
            .prop_map(move |(noise, rows, weights, log_scale)| {
                let scale = 10f64.powf(log_scale);
                let mut logits: Vec<f64> = noise.iter().map(|(x, _)| x * scale).collect();
                let targets: Vec<usize> = rows.iter().map(|r| r.0).collect();
                for (i, &(label, lead, dominant)) in rows.iter().enumerate() {
                    if dominant {
                        logits[i * k + label] += lead;
                    }
                }
                // f32-exact, so that both backends see the same values.
                let logits = logits.iter().map(|&x| (x as f32) as f64).collect();
                (logits, targets, k, weights)
            })
    })
}

fn configs() -> impl Strategy<Value = CollapseAwareCrossEntropyConfig> {
    (
        prop::sample::select(vec![
            LossPrecision::Native,
            LossPrecision::F32,
            LossPrecision::F64,
        ]),
        prop::sample::select(vec![
            LossReduction::Mean,
            LossReduction::Sum,
            LossReduction::None,
        ]),
        prop::bool::ANY,
    )
        .prop_map(|(precision, reduction, zero_sum)| {
            CollapseAwareCrossEntropyConfig::new()
                .with_precision(precision)
                .with_reduction(reduction)
                .with_zero_sum_projection(zero_sum)
        })
}

fn assert_same<B: AutodiffBackend>(
    config: &CollapseAwareCrossEntropyConfig,
    (logits, targets, k, weights): &(Vec<f64>, Vec<usize>, usize, Vec<f64>),
) -> Result<(), TestCaseError> {
    let device = Default::default();
    let fused = config.init::<B>(&device);
    let portable = config.init::<B>(&device).with_portable_kernel();
    let a = run(&fused, logits, *k, targets, weights);
    let b = run(&portable, logits, *k, targets, weights);
    prop_assert_eq!(a, b);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn fused_equals_portable_bit_for_bit_f32_model(config in configs(), b in batches()) {
        assert_same::<Ad32>(&config, &b)?;
    }

    #[test]
    fn fused_equals_portable_bit_for_bit_f64_model(config in configs(), b in batches()) {
        assert_same::<Ad64>(&config, &b)?;
    }
}

/// Rows of 8192 classes exercise the eight-accumulator sums and the parallel split over many
/// tasks.
#[test]
fn fused_equals_portable_on_long_rows() {
    let (n, k) = (24, 8192);
    let logits: Vec<f64> = (0..n * k)
        .map(|i| (((i * 7919) % 1000) as f64 / 50.0 - 10.0) as f32 as f64)
        .collect();
    let targets: Vec<usize> = (0..n).map(|i| (i * 331) % k).collect();
    let weights = vec![1.0; n];
    for zero_sum in [false, true] {
        let config = CollapseAwareCrossEntropyConfig::new().with_zero_sum_projection(zero_sum);
        assert_same::<Ad32>(
            &config,
            &(logits.clone(), targets.clone(), k, weights.clone()),
        )
        .unwrap();
    }
}

/// Without autodiff the fused forward gives the portable loss and statistics.
#[test]
fn fused_forward_without_autodiff_equals_portable() {
    type B = NdArray<f32>;
    let device = Default::default();
    let logits = Tensor::<B, 2>::from_data(
        TensorData::new(vec![20.0f32, 0.0, 0.0, 1.0, 2.0, 0.5], [2, 3]),
        (&device, DType::F32),
    );
    let targets = Tensor::<B, 1, Int>::from_ints([0, 1], &device);
    let config = CollapseAwareCrossEntropyConfig::new();
    let a = config
        .init::<B>(&device)
        .forward_with_stats(logits.clone(), targets.clone());
    let b = config
        .init::<B>(&device)
        .with_portable_kernel()
        .forward_with_stats(logits, targets);
    assert_eq!(bits(a.loss), bits(b.loss));
    let (sa, sb) = (a.stats, b.stats);
    assert_eq!(bits(sa.batch), bits(sb.batch));
    assert_eq!(bools(sa.collapsed), vec![true, false]);
}

/// The fused kernel reads the labels on the host, so it range-checks them even when the
/// up-front input checks are off, instead of indexing out of bounds.
#[test]
fn fused_kernel_rejects_out_of_range_labels_even_unchecked() {
    type B = Autodiff<NdArray<f32>>;
    let device = Default::default();
    let logits = Tensor::<B, 2>::from_data(
        TensorData::new(vec![1.0f32, 0.0, 0.0, 1.0, 2.0, 0.5], [2, 3]),
        (&device, DType::F32),
    );
    let targets = Tensor::<B, 1, Int>::from_ints([0, 3], &device);
    let loss = CollapseAwareCrossEntropyConfig::new()
        .with_check_inputs(false)
        .init::<B>(&device);
    let err = loss.try_forward(logits, targets).unwrap_err();
    assert_eq!(
        err,
        LossError::TargetOutOfRange {
            classes: 3,
            count: 1,
            min: 0,
            max: 3
        }
    );
}

/// The order-tolerant comparison that the CubeCL suites run (`common::compare`) accepts the
/// host kernel, which is exact: every difference is zero.
#[test]
fn tolerant_comparison_accepts_the_exact_host_kernel() {
    use common::compare::{Formats, check_fused_against_portable, covered_configs, rows};
    use slingshot_numerics::FloatFormat;
    let (logits, targets) = rows(24, 97, 6.0, 30.0, 3);
    let weights: Vec<f64> = (0..24).map(|i| 0.5 + (i % 5) as f64 * 0.4).collect();
    let formats = Formats {
        compute: FloatFormat::F32,
        logits: FloatFormat::F32,
    };
    for config in covered_configs(&[LossPrecision::Native, LossPrecision::F32]) {
        let c = check_fused_against_portable::<Ad32>(
            &config,
            formats,
            (&logits, &targets, 97, &weights),
        )
        .unwrap();
        assert_eq!(c.worst, 0.0, "{config:?}");
    }
}
