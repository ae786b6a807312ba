//! The collapse and NFI metrics equal `CollapseStats` and `NfiDiagnostics` on the same batch,
//! and their running values are burn-train's row-weighted epoch means.

use burn::data::dataloader::Progress;
use burn::tensor::{DType, Int, Tensor, TensorData};
use burn_flex::Flex;
use burn_train::ClassificationOutput;
use burn_train::ItemLazy;
use burn_train::metric::{Adaptor, LossInput, LossMetric, Metric, MetricMetadata, Numeric};
use slingshot_loss::{CollapseAwareCrossEntropyConfig, LossPrecision};
use slingshot_nn::NfiDiagnostics;
use slingshot_numerics::{AbsorptionThresholds, FloatFormat, collapse_impossible_below};
use slingshot_train::{
    CollapseInput, CollapseMetric, CollapseOutput, CollapseQuantity, NfiInput, NfiMetric,
    NfiQuantity, TrainError,
};

type B = Flex;

fn metadata() -> MetricMetadata {
    MetricMetadata {
        progress: Progress::new(1, 1),
        global_progress: Progress::new(1, 1),
        iteration: Some(1),
        lr: None,
    }
}

fn tensor2(rows: &[[f32; 5]]) -> Tensor<B, 2> {
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), 5]), &Default::default())
}

fn labels(v: &[i64]) -> Tensor<B, 1, Int> {
    Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), &Default::default())
}

/// Four rows: margins 30 and 20 past f32's certain-collapse margin for K = 5, 5 below its
/// impossible margin, and one whose label is not the arg-max.
fn batch() -> (Tensor<B, 2>, Tensor<B, 1, Int>) {
    (
        tensor2(&[
            [30.0, 0.0, 0.0, 0.0, 0.0],
            [5.0, 0.0, 0.0, 0.0, 0.0],
            [0.0, 20.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 1.0, 0.0],
        ]),
        labels(&[0, 0, 1, 2]),
    )
}

#[test]
fn each_collapse_metric_is_the_collapse_stats_field() {
    let (logits, targets) = batch();
    let stats = CollapseAwareCrossEntropyConfig::new()
        .init::<B>(&Default::default())
        .forward_with_stats(logits.clone(), targets.clone())
        .stats
        .summary();
    let input = CollapseInput::compute(logits, targets, LossPrecision::Native);
    let threshold = collapse_impossible_below(FloatFormat::F32);
    let expected = [
        stats.collapsed_fraction,
        stats.zero_loss_fraction,
        stats.mean_residual_mass,
        stats.mean_margin - threshold,
        stats.mean_logit,
    ];
    for (q, want) in CollapseQuantity::ALL.into_iter().zip(expected) {
        let mut metric = CollapseMetric::new(q);
        metric.update(&input, &metadata());
        let got = metric.value().current();
        assert_eq!(got.to_bits(), want.to_bits(), "{q:?}: {got} vs {want}");
    }
    // The rows' fate, from the numerics crate's margins alone.
    let margins = AbsorptionThresholds::new(FloatFormat::F32, 5).unwrap();
    assert!(margins.certain_at < 20.0 && margins.impossible_below > 5.0);
    assert_eq!(input.summary.collapsed_fraction, 0.5);
    assert_eq!(input.rows, 4);
}

#[test]
fn the_running_value_weighs_batches_by_rows() {
    let (logits, targets) = batch();
    let four = CollapseInput::compute(logits, targets, LossPrecision::Native);
    let two = CollapseInput::compute(
        tensor2(&[[40.0, 0.0, 0.0, 0.0, 0.0], [0.0; 5]]),
        labels(&[0, 0]),
        LossPrecision::Native,
    );
    let mut metric = CollapseMetric::collapsed_fraction();
    metric.update(&four, &metadata());
    let entry = metric.update(&two, &metadata());
    // burn-train's log line: the batch value and its rows.
    assert_eq!(entry.serialized, "0.5,2");
    let running = metric.running_value().current();
    assert!(
        (running - (0.5 * 4.0 + 0.5 * 2.0) / 6.0).abs() < 1e-15,
        "{running}"
    );
    metric.clear();
    assert!(metric.running_value().current().is_nan());
}

#[test]
fn collapse_is_judged_in_the_loss_precision() {
    let (logits, targets) = batch();
    let wide = CollapseInput::compute(logits, targets, LossPrecision::F64);
    // Margins of 20 and 30 are far below f64's 36.7.
    assert_eq!(wide.summary.collapsed_fraction, 0.0);
    assert_eq!(wide.threshold, collapse_impossible_below(FloatFormat::F64));
    assert!(wide.threshold > 36.0);
}

#[test]
fn burns_own_output_feeds_the_collapse_metrics() {
    let (logits, targets) = batch();
    let loss = Tensor::<B, 1>::from_floats([1.0], &Default::default());
    let burn_output = ClassificationOutput::new(loss, logits.clone(), targets.clone());
    let adapted: CollapseInput = burn_output.sync().adapt();
    let in_f32 = CollapseInput::compute(logits, targets, LossPrecision::Native);
    assert_eq!(adapted, in_f32);
    assert_eq!(in_f32.summary.collapsed_fraction, 0.5);
}

/// burn-train syncs its `ClassificationOutput` in the metrics device's default dtype (f32):
/// f64 logits are judged at f32's margin there, and only `CollapseOutput` keeps f64.
#[test]
fn burns_own_output_is_judged_in_f32_whatever_the_logits_dtype() {
    let (logits, targets) = batch();
    let wide_logits = logits.clone().cast(DType::F64);
    let loss = Tensor::<B, 1>::from_floats([1.0], &Default::default());
    let burn_output = ClassificationOutput::new(loss.clone(), wide_logits.clone(), targets.clone());
    let adapted: CollapseInput = burn_output.sync().adapt();
    assert_eq!(
        adapted.threshold,
        collapse_impossible_below(FloatFormat::F32)
    );
    assert_eq!(adapted.summary.collapsed_fraction, 0.5);
    let kept = CollapseOutput::try_new(loss, wide_logits, targets, LossPrecision::Native)
        .expect("a valid batch")
        .sync();
    let kept: CollapseInput = kept.adapt();
    assert_eq!(kept.threshold, collapse_impossible_below(FloatFormat::F64));
    assert_eq!(kept.summary.collapsed_fraction, 0.0);
}

#[test]
fn the_step_output_computes_collapse_and_nfi_once_on_sync() {
    let device = Default::default();
    let features = Tensor::<B, 2>::from_data(
        TensorData::new(
            (0..12).map(|v| v as f32 * 0.25 - 1.0).collect::<Vec<_>>(),
            [4, 3],
        ),
        &device,
    );
    let weight = Tensor::<B, 2>::from_data(
        TensorData::new(
            (0..15).map(|v| (v as f32 - 7.0) * 0.5).collect::<Vec<_>>(),
            [3, 5],
        ),
        &device,
    );
    let logits = features.clone().matmul(weight.clone());
    let targets = labels(&[0, 1, 2, 3]);
    let loss = Tensor::<B, 1>::from_floats([0.75], &device);
    let output = CollapseOutput::new(loss, logits.clone(), targets.clone(), LossPrecision::Native)
        .try_with_classifier(features.clone(), weight.clone(), None)
        .unwrap();
    let item = output.sync();
    let nfi = NfiDiagnostics::try_new_inflation(weight, None, features, targets.clone())
        .unwrap()
        .summary();
    let nfi_input: NfiInput = item.adapt();
    // As text: the skipped neural-collapse fields are NaN on both sides.
    assert_eq!(
        format!("{:?}", nfi_input.summary),
        format!("{:?}", Some(&nfi))
    );
    let collapse: CollapseInput = item.adapt();
    assert_eq!(
        collapse,
        CollapseInput::compute(logits, targets, LossPrecision::Native)
    );
    let mut metric = NfiMetric::new(NfiQuantity::MuGNorm);
    metric.update(&nfi_input, &metadata());
    assert_eq!(metric.value().current(), nfi.mu_g_norm);
    // burn's LossMetric still reads the wrapped output.
    let mut burn_loss = LossMetric::<Flex>::new();
    let input: LossInput<Flex> = item.adapt();
    burn_loss.update(&input, &metadata());
    assert_eq!(burn_loss.value().current(), 0.75);
}

#[test]
fn a_classifier_of_the_wrong_shape_is_refused() {
    let device = Default::default();
    let (logits, targets) = batch();
    let loss = Tensor::<B, 1>::from_floats([1.0], &device);
    let output = CollapseOutput::new(loss, logits, targets, LossPrecision::Native);
    let features = Tensor::<B, 2>::zeros([4, 3], &device);
    let weight = Tensor::<B, 2>::zeros([3, 4], &device);
    let err = output
        .try_with_classifier(features, weight, None)
        .err()
        .expect("a [3, 4] weight for 5 classes");
    assert_eq!(
        err,
        TrainError::Shape {
            what: "classifier weight",
            expected: vec![3, 5],
            got: vec![3, 4],
        }
    );
    assert!(err.to_string().contains("classifier weight"), "{err}");
}

#[test]
fn without_a_classifier_the_nfi_metric_is_nan() {
    let mut metric = NfiMetric::new(NfiQuantity::CosWgMuG);
    metric.update(
        &NfiInput {
            rows: 3,
            summary: None,
        },
        &metadata(),
    );
    assert!(metric.value().current().is_nan());
}

#[test]
fn outputs_the_metrics_could_not_read_are_refused() {
    let device = Default::default();
    let loss = || Tensor::<B, 1>::from_floats([1.0], &device);
    let (logits, targets) = batch();
    let short = labels(&[0, 1]);
    let err = CollapseOutput::try_new(loss(), logits.clone(), short, LossPrecision::Native)
        .err()
        .unwrap();
    assert!(err.to_string().contains("targets"), "{err}");
    let one_class = Tensor::<B, 2>::zeros([4, 1], &device);
    let err = CollapseOutput::try_new(loss(), one_class, targets.clone(), LossPrecision::Native)
        .err()
        .unwrap();
    assert!(err.to_string().contains("2 classes"), "{err}");
    let output = CollapseOutput::try_new(loss(), logits, targets, LossPrecision::Native).unwrap();
    let err = output
        .try_with_classifier(
            Tensor::<B, 2>::zeros([4, 0], &device),
            Tensor::<B, 2>::zeros([0, 5], &device),
            None,
        )
        .err()
        .unwrap();
    assert!(matches!(err, TrainError::Zero { .. }), "{err}");
}
