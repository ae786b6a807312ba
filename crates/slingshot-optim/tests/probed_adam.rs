//! ProbedAdam against burn's Adam (bits), its record, and its probe against host f64
//! computations and the numerics crate's §4.1 estimate.

mod common;

use approx::assert_relative_eq;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::record::{BinBytesRecorder, FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};
use common::{Ad, Mlp, Weights, bits, grads_of, host, ids, mlp, mlp_grads, weights};
use slingshot_numerics::{AdamHyper, BiasCorrection, estimate_reemergence_update};
use slingshot_optim::{
    BurnAdamHyper, OptimError, ProbedAdam, ProbedAdamConfig, burn_adam_effective_lr,
};

fn probed(probe: bool) -> ProbedAdam<Mlp<Ad>, Ad> {
    ProbedAdamConfig::new()
        .with_epsilon(1e-8)
        .with_beta_2(0.99)
        .with_probe(probe)
        .init()
}

fn burn_adam() -> AdamConfig {
    AdamConfig::new()
        .with_epsilon(1e-8)
        .with_beta_1(0.9)
        .with_beta_2(0.99)
}

/// `steps` steps of `optim` from `model` on the fixed batches, starting at batch `from`.
fn train<O: Optimizer<Mlp<Ad>, Ad>>(
    mut model: Mlp<Ad>,
    optim: &mut O,
    from: usize,
    steps: usize,
) -> Mlp<Ad> {
    for step in from..from + steps {
        let grads = mlp_grads(&model, step);
        model = optim.step(1e-2, model, grads);
    }
    model
}

#[test]
fn bit_identical_to_burns_adam_after_100_steps_probe_on_and_off() {
    let start = mlp(7);
    let reference = train(start.clone(), &mut burn_adam().init(), 0, 100);
    let on = train(start.clone(), &mut probed(true), 0, 100);
    let off = train(start.clone(), &mut probed(false), 0, 100);
    let expected = bits(&reference);
    assert_eq!(expected.len(), 4);
    assert_ne!(expected, bits(&start), "the parameters moved");
    assert_eq!(bits(&on), expected, "probe on");
    assert_eq!(bits(&off), expected, "probe off");
}

#[test]
fn bit_identical_with_burns_default_epsilon() {
    let start = mlp(3);
    let reference = train(start.clone(), &mut AdamConfig::new().init(), 0, 30);
    let mut ours = ProbedAdamConfig::new().init::<Ad, Mlp<Ad>>();
    assert_eq!(bits(&train(start, &mut ours, 0, 30)), bits(&reference));
}

#[test]
fn a_record_round_trip_continues_bit_identically() {
    let mut optim = probed(true);
    let model = train(mlp(11), &mut optim, 0, 40);
    let continued = train(model.clone(), &mut optim.clone(), 40, 20);
    // Through bincode and through named MessagePack (what checkpoints on disk use).
    let bin = BinBytesRecorder::<FullPrecisionSettings>::default();
    let named = NamedMpkBytesRecorder::<FullPrecisionSettings>::default();
    let via_bin = bin
        .load(
            bin.record(optim.to_record(), ()).unwrap(),
            &Default::default(),
        )
        .unwrap();
    let via_named = named
        .load(
            named.record(optim.to_record(), ()).unwrap(),
            &Default::default(),
        )
        .unwrap();
    for record in [via_bin, via_named] {
        let mut resumed = probed(true).load_record(record);
        let from_checkpoint = train(model.clone(), &mut resumed, 40, 20);
        assert_eq!(bits(&from_checkpoint), bits(&continued));
    }
}

/// A host f64 Adam on one tensor, for the probe's expected values.
struct HostAdam {
    m: Vec<f64>,
    v: Vec<f64>,
    t: i32,
}

impl HostAdam {
    const LR: f64 = 1e-3;
    const B1: f64 = 0.9;
    const B2: f64 = 0.95;
    const EPS: f64 = 1e-8;

    /// One step; returns `|lr * update|` per entry.
    fn step(&mut self, g: &[f32]) -> Vec<f64> {
        self.t += 1;
        let (c1, c2) = (1.0 - Self::B1.powi(self.t), 1.0 - Self::B2.powi(self.t));
        g.iter()
            .enumerate()
            .map(|(i, &g)| {
                let g = g as f64;
                self.m[i] = Self::B1 * self.m[i] + (1.0 - Self::B1) * g;
                self.v[i] = Self::B2 * self.v[i] + (1.0 - Self::B2) * g * g;
                (Self::LR * (self.m[i] / c1) / ((self.v[i] / c2).sqrt() + Self::EPS)).abs()
            })
            .collect()
    }

    fn effective_lrs(&self) -> Vec<f64> {
        let c2 = 1.0 - Self::B2.powi(self.t);
        self.v
            .iter()
            .map(|v| Self::LR / ((v / c2).sqrt() + Self::EPS))
            .collect()
    }
}

fn median(mut x: Vec<f64>) -> f64 {
    x.sort_by(f64::total_cmp);
    let n = x.len();
    if n % 2 == 1 {
        x[n / 2]
    } else {
        0.5 * (x[n / 2 - 1] + x[n / 2])
    }
}

fn paper_adam(probe: bool) -> ProbedAdam<Weights<Ad>, Ad> {
    ProbedAdamConfig::new()
        .with_beta_1(0.9)
        .with_beta_2(0.95)
        .with_epsilon(1e-8)
        .with_probe(probe)
        .init()
}

/// Gradients spanning 1e-12 to 1, zeros included, changing every step.
fn spread_gradient(step: usize) -> Vec<f32> {
    (0..32)
        .map(|i| {
            if i % 8 == 0 {
                0.0
            } else {
                let sign = if (i + step).is_multiple_of(3) {
                    -1.0
                } else {
                    1.0
                };
                sign * 10f32.powi(-(((i * 7 + step) % 13) as i32))
            }
        })
        .collect()
}

/// Relative tolerance of probe values against f64: the f32 state rounds each of a handful of
/// operations per step to 2^-24 ~ 6e-8; 1e-5 leaves room for a few steps of it.
const REL: f64 = 1e-5;

#[test]
fn probe_statistics_match_a_host_f64_adam() {
    let mut model = weights(common::noise(32, 9), [4, 8]);
    let id = ids(&model)[0];
    let mut optim = paper_adam(true);
    let mut reference = HostAdam {
        m: vec![0.0; 32],
        v: vec![0.0; 32],
        t: 0,
    };
    let mut previous_mean = None;
    for step in 0..6 {
        let g = spread_gradient(step);
        let expected_updates = reference.step(&g);
        let grads = grads_of(&model, &g);
        model = optim.step(1e-3, model, grads);
        let report = optim.take_probe().expect("probed").read();
        let p = report.param(id).expect("the parameter");
        assert_eq!((p.shape.as_slice(), p.time), ([4, 8].as_slice(), step + 1));

        let lrs = reference.effective_lrs();
        let e = &p.effective_lr;
        let min = lrs.iter().copied().fold(f64::INFINITY, f64::min);
        let max = lrs.iter().copied().fold(0.0, f64::max);
        assert_relative_eq!(e.min, min, max_relative = REL);
        assert_relative_eq!(e.max, max, max_relative = REL);
        assert_relative_eq!(e.median, median(lrs.clone()), max_relative = REL);
        assert_relative_eq!(e.ceiling, 1e-3 / 1e-8f32 as f64, max_relative = 1e-12);
        let near = lrs.iter().filter(|&&x| x >= 0.9 * 1e5).count() as f64 / 32.0;
        assert_eq!(e.near_ceiling_fraction, near);
        assert!(
            near > 0.0 && near < 1.0,
            "the test should exercise both sides"
        );

        let mean = expected_updates.iter().sum::<f64>() / 32.0;
        let largest = expected_updates.iter().copied().fold(0.0, f64::max);
        assert_relative_eq!(p.update.mean, mean, max_relative = REL);
        assert_relative_eq!(p.update.max, largest, max_relative = REL);
        assert_eq!(p.update.histogram.total(), 32);
        assert_eq!(p.update.histogram.counts.len(), 12);
        let g_norm = g.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
        assert_relative_eq!(p.grad_norm, g_norm, max_relative = REL);
        match previous_mean {
            None => assert_eq!(p.update_ratio, None),
            Some(before) => {
                assert_relative_eq!(p.update_ratio.unwrap(), mean / before, max_relative = REL)
            }
        }
        // One tensor: the model aggregates are the tensor's.
        assert_eq!(report.model.effective_lr, p.effective_lr);
        assert_eq!(report.model.update, p.update);
        assert_eq!(report.model.numel, 32);
        previous_mean = Some(mean);
    }
}

#[test]
fn histogram_counts_every_entry_of_the_mlp_once() {
    let mut optim = probed(true);
    let model = train(mlp(5), &mut optim, 0, 3);
    let report = optim.probe().unwrap().read();
    let numel: usize = ids(&model).len();
    assert_eq!(report.params.len(), numel);
    for p in &report.params {
        let n: usize = p.shape.iter().product();
        assert_eq!(p.update.histogram.total(), n as u64);
        assert_eq!(p.effective_lr.count, n);
    }
    assert_eq!(report.model.numel, 8 * 16 + 16 + 16 * 4 + 4);
    assert_eq!(
        report.model.update.histogram.total(),
        report.model.numel as u64
    );
    assert_eq!(report.step, 3);
}

/// `read_params` reads only the chosen tensors, with exactly `read`'s values: the same
/// statistics for each chosen tensor, and the same whole-model gradient norm and update ratios.
#[test]
fn read_params_equals_read_for_the_chosen_tensors() {
    let mut optim = probed(true);
    let mut model = mlp(5);
    for round in 0..3 {
        model = train(model, &mut optim, round * 2, 2);
        let probe = optim.probe().unwrap();
        let full = probe.read();
        let all = ids(&model);
        for chosen in [vec![all[0]], vec![all[1], all[3]], all.clone(), vec![]] {
            let part = probe.read_params(&chosen);
            assert_eq!((part.step, part.lr), (full.step, full.lr));
            assert_eq!(part.params.len(), chosen.len());
            for id in &chosen {
                assert_eq!(part.param(*id), full.param(*id));
            }
            assert_eq!(part.grad_norm.to_bits(), full.model.grad_norm.to_bits());
            assert_eq!(part.update_ratio, full.model.update_ratio);
            assert_eq!(part.max_update_ratio, full.model.max_update_ratio);
        }
        assert!(full.model.update_ratio.is_some() && full.model.max_update_ratio.is_some());
    }
}

/// §4.1: 200 steps of gradient 3e-9, then 1.19e-7. Adam's update at that step is what the
/// numerics crate estimates (with bias correction at step 201); f32 state against the f64
/// estimate agrees to 1e-5 relative.
#[test]
fn the_section_4_1_update_matches_the_numerics_estimate() {
    let mut model = weights(vec![0.5], [1, 1]);
    let mut optim = paper_adam(true);
    for _ in 0..200 {
        let grads = grads_of(&model, &[3e-9]);
        model = optim.step(1e-3, model, grads);
    }
    let before = optim.take_probe().unwrap().read();
    let grads = grads_of(&model, &[1.19e-7]);
    model = optim.step(1e-3, model, grads);
    let spike = optim.take_probe().unwrap().read();
    drop(model);

    let hyper = AdamHyper::PAPER_SECTION_4_1;
    let estimate =
        estimate_reemergence_update(&hyper, 3e-9, 1.19e-7, BiasCorrection::AtStep(201)).unwrap();
    assert_relative_eq!(spike.model.update.max, estimate.update, max_relative = 1e-5);
    assert_relative_eq!(
        spike.model.update.mean,
        estimate.update,
        max_relative = 1e-5
    );
    assert_relative_eq!(
        before.model.update.mean,
        estimate.update_before,
        max_relative = 1e-5
    );
    assert_relative_eq!(
        spike.model.effective_lr.median,
        estimate.effective_lr,
        max_relative = 1e-5
    );
    assert_relative_eq!(
        before.model.effective_lr.median,
        estimate.effective_lr_before,
        max_relative = 1e-5
    );
    // The paper's rounded number: an update near 4e-4 (against 2.3e-4 the step before).
    assert!((spike.model.update.mean - 4e-4).abs() / 4e-4 < 0.01);
    let ratio = spike.model.update_ratio.unwrap();
    assert_relative_eq!(ratio, estimate.amplification(), max_relative = 1e-5);
    // The running maximum is an f32 ratio computed on the device.
    assert_relative_eq!(
        spike.model.max_update_ratio.unwrap(),
        ratio,
        max_relative = 1e-6
    );
    // Before the spike the effective LR sits at 77% of its ceiling: not yet "near" it.
    assert_eq!(before.model.effective_lr.near_ceiling_fraction, 0.0);
    assert_relative_eq!(
        before.model.effective_lr.max / before.model.effective_lr.ceiling,
        1e-8 / (1e-8 + 3e-9),
        max_relative = 1e-5
    );
}

#[test]
fn the_running_max_ratio_spans_the_steps_since_the_last_take() {
    let mut model = weights(vec![0.5], [1, 1]);
    let mut optim = paper_adam(true);
    let step = |model, g: f32, optim: &mut ProbedAdam<Weights<Ad>, Ad>| {
        let grads = grads_of(&model, &[g]);
        optim.step(1e-3, model, grads)
    };
    for g in [1e-6; 20].into_iter().chain([0.0; 50]) {
        model = step(model, g, &mut optim);
    }
    let _ = optim.take_probe();
    // After 50 steps of zero gradient the update has decayed like (0.9 / sqrt(0.95))^50, to
    // 2%: a returning gradient makes it jump over tenfold; steady steps after that have ratios
    // near 1. The window's maximum is the jump's (an f32 ratio on the device).
    model = step(model, 1e-6, &mut optim);
    let jump = optim.probe().unwrap().read().model.update_ratio.unwrap();
    for _ in 0..3 {
        model = step(model, 1e-6, &mut optim);
    }
    let report = optim.take_probe().unwrap().read();
    let latest = report.model.update_ratio.unwrap();
    assert!(jump > 10.0 && latest < 1.5, "jump {jump}, latest {latest}");
    let max = report.model.max_update_ratio.unwrap();
    assert_relative_eq!(max, jump, max_relative = 1e-6);
    model = step(model, 1e-6, &mut optim);
    let next = optim.probe().unwrap().read();
    assert_relative_eq!(
        next.model.max_update_ratio.unwrap(),
        next.model.update_ratio.unwrap(),
        max_relative = 1e-6
    );
    drop(model);
}

#[test]
fn probe_off_keeps_nothing() {
    let mut model = weights(vec![0.5, 0.25], [1, 2]);
    let mut optim = paper_adam(false);
    let grads = grads_of(&model, &[1.0, 2.0]);
    model = optim.step(1e-3, model, grads);
    assert!(optim.probe().is_none());
    optim.set_probe(true);
    let grads = grads_of(&model, &[1.0, 2.0]);
    model = optim.step(1e-3, model, grads);
    assert_eq!(optim.probe().unwrap().read().model.numel, 2);
    drop(model);
}

#[test]
fn burns_adam_state_gives_the_same_effective_lr() {
    let start = mlp(21);
    let config = burn_adam();
    let mut adam = config.init::<Ad, Mlp<Ad>>();
    let mut ours = probed(true);
    let model = train(start.clone(), &mut adam, 0, 10);
    let _ = train(start, &mut ours, 0, 10);
    let hyper = BurnAdamHyper::from_config(&config, 1e-2).unwrap();
    assert_eq!(hyper, BurnAdamHyper::try_new(1e-2, 0.99, 1e-8).unwrap());
    let theirs = burn_adam_effective_lr(&adam.to_record(), &hyper);
    let report = ours.probe().unwrap().read();
    assert_eq!(theirs.params.len(), 4);
    for (id, time, stats) in &theirs.params {
        let p = report.param(*id).unwrap();
        assert_eq!((*time, stats), (p.time, &p.effective_lr));
    }
    assert_eq!(theirs.model.unwrap(), report.model.effective_lr);
    drop(model);
}

#[test]
fn bad_configurations_are_errors() {
    let invalid = |c: ProbedAdamConfig| match c.try_init::<Ad, Mlp<Ad>>() {
        Err(OptimError::InvalidConfig { name, .. }) => name,
        other => panic!("expected an error, got {other:?}"),
    };
    let base = ProbedAdamConfig::new;
    assert_eq!(invalid(base().with_epsilon(0.0)), "epsilon");
    assert_eq!(invalid(base().with_epsilon(-1e-8)), "epsilon");
    assert_eq!(invalid(base().with_epsilon(f32::NAN)), "epsilon");
    assert_eq!(invalid(base().with_epsilon(f32::INFINITY)), "epsilon");
    assert_eq!(invalid(base().with_beta_1(1.0)), "beta_1");
    assert_eq!(invalid(base().with_beta_1(-0.1)), "beta_1");
    assert_eq!(invalid(base().with_beta_2(1.0)), "beta_2");
    assert_eq!(invalid(base().with_beta_2(f32::NAN)), "beta_2");
    assert_eq!(invalid(base().with_weight_decay(-0.1)), "weight_decay");
    assert_eq!(invalid(base().with_weight_decay(f32::NAN)), "weight_decay");
    assert_eq!(invalid(base().with_histogram_bins(0)), "histogram_bins");
    assert_eq!(invalid(base().with_histogram_min(0.0)), "histogram_min");
    assert_eq!(invalid(base().with_histogram_max(1e-13)), "histogram_max");
    assert!(base().validate().is_ok());
    let err = base().with_epsilon(0.0).validate().unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid epsilon = 0: expected a finite value > 0"
    );
    assert!(BurnAdamHyper::try_new(1e-3, 1.0, 1e-8).is_err());
    assert!(BurnAdamHyper::try_new(1e-3, 0.9, 0.0).is_err());
    assert!(BurnAdamHyper::try_new(f64::NAN, 0.9, 1e-8).is_err());
}

#[test]
#[should_panic(expected = "invalid beta_2 = 1: expected a value in [0, 1)")]
fn init_panics_with_the_error_message() {
    let _ = ProbedAdamConfig::new()
        .with_beta_2(1.0)
        .init::<Ad, Mlp<Ad>>();
}

/// `init` carries `#[track_caller]`: its panic names the caller's file, not slingshot-optim's.
#[test]
fn init_panics_in_the_callers_file() {
    let file = common::panic_file(|| {
        drop(
            ProbedAdamConfig::new()
                .with_beta_2(1.0)
                .init::<Ad, Mlp<Ad>>(),
        );
    });
    assert_eq!(file, file!());
}

#[test]
fn try_step_rejects_bad_learning_rates() {
    let mut optim = paper_adam(true);
    let model = weights(vec![0.5], [1, 1]);
    for lr in [f64::NAN, f64::INFINITY, -1e-3] {
        let grads: GradientsParams = grads_of(&model, &[1.0]);
        let err = optim.try_step(lr, model.clone(), grads).unwrap_err();
        assert!(
            matches!(err, OptimError::InvalidLearningRate { .. }),
            "{err}"
        );
    }
    assert!(optim.probe().is_none(), "nothing was stepped");
    let stepped = optim
        .try_step(1e-3, model.clone(), grads_of(&model, &[1.0]))
        .unwrap();
    // Adam's first step moves by lr (times m_hat / (|g| + eps) ~ 1).
    let moved = host(model.w.val())[0] - host(stepped.w.val())[0];
    // f32 spacing at 0.5 is 6e-8, 6e-5 of the step.
    assert_relative_eq!(moved, 1e-3, max_relative = 1e-4);
}

#[test]
fn step_multi_with_one_device_is_step() {
    use burn::optim::MultiGradientsParams;
    use burn::tensor::backend::DeviceOps;
    let start = mlp(13);
    let mut single = probed(true);
    let mut multi = probed(true);
    let device: burn::tensor::Device<Ad> = Default::default();
    let (mut a, mut b) = (start.clone(), start);
    for step in 0..5 {
        let grads = mlp_grads(&a, step);
        a = single.step(1e-2, a, grads);
        let grads = MultiGradientsParams {
            grads: vec![(mlp_grads(&b, step), device.id())],
        };
        b = multi.step_multi(1e-2, b, grads);
    }
    assert_eq!(bits(&a), bits(&b));
}

/// Decoupled weight decay (AdamW) against an f64 AdamW on the host, and against burn's own
/// `AdamW`, on gradients spanning 1e-12 to 1: each parameter within `1e-5` relative (plus
/// f32's smallest normal in absolute) after 20 steps. burn's `AdamW` computes the Adam part in
/// another order than burn's `Adam`, so it agrees up to rounding, not bits.
#[test]
fn weight_decay_is_adamw() {
    let (lr, wd) = (1e-2, 0.1f32);
    let start = common::noise(32, 4);
    let mut ours_model = weights(start.clone(), [4, 8]);
    let mut burn_model = weights(start.clone(), [4, 8]);
    let mut ours = ProbedAdamConfig::new()
        .with_beta_2(0.95)
        .with_epsilon(1e-8)
        .with_weight_decay(wd)
        .init();
    let mut burns = burn::optim::AdamWConfig::new()
        .with_beta_2(0.95)
        .with_epsilon(1e-8)
        .with_weight_decay(wd)
        .init();
    let mut p: Vec<f64> = start.iter().map(|&v| v as f64).collect();
    let (mut m, mut v) = (vec![0.0; 32], vec![0.0; 32]);
    for step in 0..20 {
        let g = spread_gradient(step);
        let grads = grads_of(&ours_model, &g);
        ours_model = ours.step(lr, ours_model, grads);
        let grads = grads_of(&burn_model, &g);
        burn_model = burns.step(lr, burn_model, grads);
        let t = step as i32 + 1;
        for i in 0..32 {
            let g = g[i] as f64;
            m[i] = 0.9 * m[i] + 0.1 * g;
            v[i] = 0.95 * v[i] + 0.05 * g * g;
            let update =
                (m[i] / (1.0 - 0.9f64.powi(t))) / ((v[i] / (1.0 - 0.95f64.powi(t))).sqrt() + 1e-8);
            p[i] = p[i] * (1.0 - lr * wd as f64) - lr * update;
        }
    }
    let ours = host(ours_model.w.val());
    let burns = host(burn_model.w.val());
    for i in 0..32 {
        let tol = 1e-5 * p[i].abs() + f32::MIN_POSITIVE as f64;
        assert!(
            (ours[i] - p[i]).abs() <= tol,
            "entry {i}: {} vs f64 {}",
            ours[i],
            p[i]
        );
        assert!(
            (ours[i] - burns[i]).abs() <= tol,
            "entry {i}: {} vs burn {}",
            ours[i],
            burns[i]
        );
    }
    // The decay moved the parameters: without it they differ.
    let mut plain = ProbedAdamConfig::new()
        .with_beta_2(0.95)
        .with_epsilon(1e-8)
        .init();
    let mut plain_model = weights(start, [4, 8]);
    for step in 0..20 {
        let g = spread_gradient(step);
        let grads = grads_of(&plain_model, &g);
        plain_model = plain.step(lr, plain_model, grads);
    }
    assert_ne!(host(plain_model.w.val()), ours);
}
