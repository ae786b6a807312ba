//! `LearnerAdam` steps as `ProbedAdam` does, publishes the probe's statistics every `every`
//! steps, and its record restores the state exactly.

use burn::backend::Autodiff;
use burn::data::dataloader::Progress;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{GradientsParams, MultiGradientsParams, Optimizer};
use burn::tensor::backend::DeviceOps;
use burn::tensor::{Tensor, TensorData};
use burn_flex::Flex;
use burn_train::metric::{Metric, MetricMetadata, Numeric};
use slingshot_optim::ProbedAdamConfig;
use slingshot_train::{
    EffectiveLrMetric, EffectiveLrQuantity, LearnerAdam, ProbeFeed, ProbeScope, TrainError,
};

type B = Autodiff<Flex>;

fn model() -> Linear<B> {
    let device = Default::default();
    let weight = (0..12).map(|v| (v as f32 - 5.5) * 0.1).collect::<Vec<_>>();
    let mut linear = LinearConfig::new(3, 4).with_bias(false).init::<B>(&device);
    linear.weight = linear
        .weight
        .map(|_| Tensor::from_data(TensorData::new(weight, [3, 4]), &device).require_grad());
    linear
}

/// The gradient of a loss that keeps changing from step to step.
fn grads(linear: &Linear<B>, step: usize) -> GradientsParams {
    let device = Default::default();
    let x = Tensor::<B, 2>::from_data(
        TensorData::new(
            (0..6)
                .map(|v| (v + step) as f32 * 0.3 - 0.7)
                .collect::<Vec<_>>(),
            [2, 3],
        ),
        &device,
    );
    let loss = linear.forward(x).powi_scalar(2).sum();
    GradientsParams::from_grads(loss.backward(), linear)
}

fn weights(linear: &Linear<B>) -> Vec<u32> {
    let data = linear.weight.val().into_data();
    data.iter::<f32>().map(f32::to_bits).collect()
}

fn config() -> ProbedAdamConfig {
    ProbedAdamConfig::new().with_epsilon(1e-8)
}

#[test]
fn steps_are_probed_adams_and_readings_its_probe() {
    let feed = ProbeFeed::new();
    // One model's parameters for both optimizers: the probe is keyed by parameter id.
    let mut a = model();
    let mut b = a.clone();
    let id = a.weight.id;
    let mut learner =
        LearnerAdam::<Linear<B>, B>::try_new(&config(), feed.clone(), ProbeScope::Param(id), 1)
            .unwrap();
    let mut probed = config().init::<B, Linear<B>>();
    for step in 1..=4 {
        a = learner.step(1e-2, a.clone(), grads(&a, step));
        b = probed.step(1e-2, b.clone(), grads(&b, step));
        assert_eq!(weights(&a), weights(&b), "step {step}");
        let report = probed.take_probe().unwrap().read_params(&[id]);
        let reading = feed.at(step as u64).unwrap();
        assert_eq!(reading.step, step as u64);
        assert_eq!(reading.effective_lr, report.param(id).unwrap().effective_lr);
        assert_eq!(reading.grad_norm, report.grad_norm);
    }
}

fn metadata() -> MetricMetadata {
    MetricMetadata {
        progress: Progress::new(1, 1),
        global_progress: Progress::new(1, 1),
        iteration: Some(1),
        lr: Some(1e-2),
    }
}

#[test]
fn every_other_step_is_read_and_the_metric_reports_the_latest_reading() {
    let feed = ProbeFeed::new();
    let mut learner =
        LearnerAdam::<Linear<B>, B>::try_new(&config(), feed.clone(), ProbeScope::Model, 2)
            .unwrap();
    let mut metric = EffectiveLrMetric::new(EffectiveLrQuantity::Median, feed.clone());
    let mut linear = model();
    let mut values = Vec::new();
    for step in 1..=4 {
        linear = learner.step(1e-2, linear.clone(), grads(&linear, step));
        metric.update(&(), &metadata());
        values.push(metric.value().current());
    }
    assert!(feed.at(1).is_none());
    assert_eq!(feed.at(3).unwrap().step, 2);
    assert!(values[0].is_nan(), "no reading before step 2");
    let at = |s| feed.at(s).unwrap().effective_lr.median;
    assert_eq!(values[1..], [at(2), at(2), at(4)]);
    assert_ne!(at(2), at(4));
}

#[test]
fn a_metric_whose_reading_was_dropped_gets_none_not_a_later_one() {
    let feed = ProbeFeed::new();
    let mut learner =
        LearnerAdam::<Linear<B>, B>::try_new(&config(), feed.clone(), ProbeScope::Model, 1)
            .unwrap();
    let mut linear = model();
    for step in 1..=70 {
        linear = learner.step(1e-2, linear.clone(), grads(&linear, step));
    }
    // The feed keeps the last 64 readings: calls 7..=70.
    assert!(feed.at(6).is_none());
    assert_eq!(feed.at(7).unwrap().step, 7);
    assert_eq!(feed.at(70).unwrap().step, 70);
}

#[test]
fn a_restored_record_continues_the_uninterrupted_steps() {
    let feed = ProbeFeed::new();
    let make = || {
        LearnerAdam::<Linear<B>, B>::try_new(&config(), feed.clone(), ProbeScope::Model, 1).unwrap()
    };
    let mut whole = make();
    let mut linear = model();
    for step in 1..=2 {
        linear = whole.step(1e-2, linear.clone(), grads(&linear, step));
    }
    let saved = linear.clone();
    let resumed = make().load_record(whole.to_record());
    let mut resumed = resumed;
    let a = whole.step(1e-2, linear.clone(), grads(&linear, 3));
    let b = resumed.step(1e-2, saved.clone(), grads(&saved, 3));
    assert_eq!(weights(&a), weights(&b));
}

#[test]
fn a_zero_interval_is_refused() {
    let err =
        LearnerAdam::<Linear<B>, B>::try_new(&config(), ProbeFeed::new(), ProbeScope::Model, 0)
            .err()
            .unwrap();
    assert!(matches!(err, TrainError::Zero { .. }), "{err}");
    let bad = ProbedAdamConfig::new().with_epsilon(0.0);
    let err = LearnerAdam::<Linear<B>, B>::try_new(&bad, ProbeFeed::new(), ProbeScope::Model, 1)
        .err()
        .unwrap();
    assert!(err.to_string().contains("epsilon"), "{err}");
}

#[test]
fn a_multi_device_step_is_the_single_device_step() {
    let feed = ProbeFeed::new();
    let make = || {
        LearnerAdam::<Linear<B>, B>::try_new(&config(), feed.clone(), ProbeScope::Model, 1).unwrap()
    };
    let (mut single, mut multi) = (make(), make());
    let mut a = model();
    let mut b = a.clone();
    for step in 1..=3 {
        a = single.step(1e-2, a.clone(), grads(&a, step));
        let mut parts = MultiGradientsParams::default();
        let device = burn::tensor::Device::<B>::default();
        parts.grads.push((grads(&b, step), DeviceOps::id(&device)));
        b = multi.step_multi(1e-2, b.clone(), parts);
        assert_eq!(weights(&a), weights(&b), "step {step}");
    }
}

#[test]
fn after_a_restored_record_the_probe_interval_goes_on_from_t() {
    let feed = ProbeFeed::new();
    let make = |feed: &ProbeFeed| {
        LearnerAdam::<Linear<B>, B>::try_new(&config(), feed.clone(), ProbeScope::Model, 2).unwrap()
    };
    let mut first = make(&feed);
    let mut linear = model();
    for step in 1..=3 {
        linear = first.step(1e-2, linear.clone(), grads(&linear, step));
    }
    let resumed_feed = ProbeFeed::new();
    let mut resumed = make(&resumed_feed).load_record(first.to_record());
    let _ = resumed.step(1e-2, linear.clone(), grads(&linear, 4));
    // Adam's step 4 is even: read, and the resumed process's first call.
    let reading = resumed_feed.at(1).expect("step 4 was probed");
    assert_eq!(reading.step, 4);
}
