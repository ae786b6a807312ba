//! Short runs of the harness on ndarray (f32 models only: burn keeps one default float dtype
//! per device and process, so the f64 arm has its own test binary, `f64_arm.rs`).

use std::path::Path;

use slingshot_experiments::metrics::read_metrics;
use slingshot_experiments::plot::{self, Series};
use slingshot_experiments::{
    BatchSize, ExperimentError, MetricsRow, Precision, RunDir, RunOptions, TrainConfig, run,
};

mod common;

use slingshot_experiments::mitigation::{GdSwitch, LabelSmoothing, LogitClamp, SwitchToGd};
use slingshot_experiments::model::NetworkConfig;

use common::numbers;

/// The tiny configuration at 200 steps.
fn tiny(precision: Precision) -> TrainConfig {
    common::tiny(precision, 200)
}

fn quiet() -> RunOptions {
    RunOptions {
        quiet: true,
        ..RunOptions::default()
    }
}

/// Runs `config` as if killed after `kill_at` steps, then resumes it to the end.
fn kill_and_resume(
    config: &TrainConfig,
    dir: &RunDir,
    options: &RunOptions,
    kill_at: u64,
) -> slingshot_experiments::RunResult {
    let killed = RunOptions {
        stop_after: Some(kill_at),
        ..options.clone()
    };
    run(config, dir, &killed).unwrap();
    let resumed = RunOptions {
        resume: true,
        stop_after: None,
        ..options.clone()
    };
    run(config, dir, &resumed).unwrap()
}

fn temp(name: &str) -> std::path::PathBuf {
    // Inside target/, so that runs do not accumulate in the system temp directory.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("slingshot-harness-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn a_short_run_writes_every_output() {
    let root = temp("outputs");
    let dir = RunDir::create(&root).unwrap();
    let result = run(&tiny(Precision::F32), &dir, &quiet()).unwrap();
    for file in ["metrics.csv", "summary.json", "config.json"] {
        assert!(root.join(file).is_file(), "{file} missing");
    }
    let rows = read_metrics(&dir.metrics()).unwrap();
    assert_eq!(rows.len(), 20, "one row per 10 steps");
    assert_eq!(numbers(&rows), numbers(&result.rows));
    assert_eq!(rows.last().unwrap().step, 200);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.summary()).unwrap()).unwrap();
    for key in [
        "experiment",
        "arm",
        "model",
        "backend",
        "precision",
        "steps",
        "spikes",
        "n_spikes",
        "first_sc_step",
        "max_collapsed_fraction",
        "max_mu_g_norm",
        "final_cos_wg_mug",
        "final_train_acc",
        "final_test_acc",
        "max_update_ratio",
        "wall_seconds",
        "steps_per_second",
    ] {
        assert!(summary.get(key).is_some(), "summary.json lacks {key}");
    }
    assert_eq!(summary["steps"], 200);
    assert_eq!(summary["precision"], "f32");
    // The probe is on: Adam's statistics are logged.
    let last = rows.last().unwrap();
    assert!(last.eff_lr_median.is_some() && last.update_mean.is_some());
    assert_eq!(last.train_acc, 1.0, "the tiny task is memorized");

    let figure = root.join("figure.png");
    let series = [Series {
        label: "f32",
        rows: &rows,
        spikes: &result.summary.spikes,
        nfi_events: &result.summary.nfi_events,
    }];
    plot::draw_panels(
        &figure,
        "test",
        3,
        &plot::metric_panels(&plot::mechanism_panels(), &series),
    )
    .unwrap();
    let bytes = std::fs::read(&figure).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert!(bytes.len() > 10_000, "a drawn figure, not an empty canvas");
}

/// Fig. 1(a)'s contrast at test scale: the f32 loss collapses, the f64 loss on the same f32
/// model has no collapsed row.
#[test]
fn the_f64_loss_arm_has_no_collapse_where_f32_does() {
    let f32_run = run(
        &tiny(Precision::F32),
        &RunDir::create(&temp("sc-f32")).unwrap(),
        &quiet(),
    )
    .unwrap();
    let f64_loss = run(
        &tiny(Precision::F64Loss),
        &RunDir::create(&temp("sc-f64loss")).unwrap(),
        &quiet(),
    )
    .unwrap();
    assert!(f32_run.summary.max_collapsed_fraction > 0.3);
    assert!(f32_run.summary.first_sc_step.is_some());
    assert_eq!(f64_loss.summary.max_collapsed_fraction, 0.0);
    assert!(f64_loss.rows.iter().all(|r| r.collapsed_fraction == 0.0));
}

#[test]
fn the_same_seed_gives_identical_metrics() {
    let a = run(
        &tiny(Precision::F32),
        &RunDir::create(&temp("seed-a")).unwrap(),
        &quiet(),
    )
    .unwrap();
    let b = run(
        &tiny(Precision::F32),
        &RunDir::create(&temp("seed-b")).unwrap(),
        &quiet(),
    )
    .unwrap();
    assert_eq!(numbers(&a.rows), numbers(&b.rows));
    let mut other = tiny(Precision::F32);
    other.seed = 1;
    let c = run(&other, &RunDir::create(&temp("seed-c")).unwrap(), &quiet()).unwrap();
    assert_ne!(numbers(&a.rows), numbers(&c.rows));
}

/// A run killed after its checkpoint at step 60 and resumed equals an uninterrupted run,
/// mini-batches included.
#[test]
fn resume_after_a_kill_equals_an_uninterrupted_run() {
    let mut config = tiny(Precision::F32);
    config.batch = BatchSize::Rows(8);
    config.steps = 120;
    let checkpoints = RunOptions {
        quiet: true,
        checkpoint_every: Some(30),
        ..RunOptions::default()
    };
    let whole = run(
        &config,
        &RunDir::create(&temp("whole")).unwrap(),
        &checkpoints,
    )
    .unwrap();

    let root = temp("killed");
    let dir = RunDir::create(&root).unwrap();
    let killed = RunOptions {
        stop_after: Some(75),
        ..checkpoints.clone()
    };
    run(&config, &dir, &killed).unwrap();
    assert!(!dir.summary().exists(), "a killed run has no summary");
    // Rows 70 was logged after the checkpoint at 60; the resume logs it again.
    assert_eq!(read_metrics(&dir.metrics()).unwrap().len(), 7);
    let resumed = RunOptions {
        resume: true,
        ..checkpoints
    };
    let result = run(&config, &dir, &resumed).unwrap();
    assert_eq!(numbers(&result.rows), numbers(&whole.rows));
    assert_eq!(
        numbers(&read_metrics(&dir.metrics()).unwrap()),
        numbers(&whole.rows)
    );
    assert_eq!(result.summary.spikes, whole.summary.spikes);
}

#[test]
fn resume_with_another_configuration_is_refused() {
    let config = tiny(Precision::F32);
    let dir = RunDir::create(&temp("refuse")).unwrap();
    let options = RunOptions {
        quiet: true,
        checkpoint_every: Some(50),
        stop_after: Some(60),
        ..RunOptions::default()
    };
    run(&config, &dir, &options).unwrap();
    let mut other = config.clone();
    other.lr = 1e-3;
    let resume = RunOptions {
        resume: true,
        stop_after: None,
        ..options
    };
    let err = run(&other, &dir, &resume).unwrap_err();
    assert!(matches!(err, ExperimentError::Resume { .. }), "{err}");
    assert!(err.to_string().contains("another configuration"), "{err}");
}

#[test]
fn bad_flags_and_outputs_fail_before_training() {
    let mut c = tiny(Precision::F32);
    c.lr = f64::NAN;
    let dir = RunDir::create(&temp("bad")).unwrap();
    assert!(matches!(
        run(&c, &dir, &quiet()),
        Err(ExperimentError::InvalidConfig(_))
    ));
    assert!(!dir.metrics().exists(), "nothing was trained or written");
    let mut c = tiny(Precision::F32);
    c.modular_mut().expect("the modular task").p = 8;
    assert!(run(&c, &dir, &quiet()).is_err(), "p must be prime");
    let mut c = tiny(Precision::F32);
    c.mitigations.set(LabelSmoothing { amount: 1.0 });
    assert!(c.validate().is_err());

    let file = temp("a-file");
    std::fs::write(&file, b"x").unwrap();
    let err = RunDir::create(&file).unwrap_err();
    assert!(err.to_string().contains("not a directory"), "{err}");
    assert!(RunDir::create(Path::new("/proc/slingshot-cannot-write-here")).is_err());
}

/// App. A.1.4 at test scale: a margin clamp of 100 keeps every probability above underflow,
/// yet the f32 loss still collapses (absorption, not underflow).
#[test]
fn the_logit_clamp_leaves_collapse_in_place() {
    let mut c = tiny(Precision::F32);
    c.mitigations.set(LogitClamp { margin: 100.0 });
    let result = run(&c, &RunDir::create(&temp("clamp")).unwrap(), &quiet()).unwrap();
    assert!(result.summary.max_collapsed_fraction > 0.3);
    assert!(
        result
            .rows
            .iter()
            .all(|r| r.min_margin <= 100.0 + 1e-3 || r.min_margin.is_nan())
    );
    let mut bad = tiny(Precision::F32);
    bad.mitigations.set(LogitClamp { margin: 0.0 });
    assert!(matches!(
        bad.validate(),
        Err(ExperimentError::InvalidConfig(_))
    ));
}

/// §4.2 at test scale: once the logged loss is small enough the run steps with gradient
/// descent at a huge learning rate, which the summary records; a kill and resume after the
/// switch continues in gradient descent.
#[test]
fn the_switch_to_gradient_descent_is_taken_recorded_and_resumed() {
    let mut c = tiny(Precision::F32);
    c.mitigations.set(SwitchToGd(GdSwitch {
        lr: 1e5,
        loss_at_most: 1e-3,
    }));
    let options = RunOptions {
        quiet: true,
        checkpoint_every: Some(5),
        ..RunOptions::default()
    };
    let whole = run(&c, &RunDir::create(&temp("gd-whole")).unwrap(), &options).unwrap();
    let at = whole
        .summary
        .switched_to_gd_at
        .expect("the loss gets below 1e-3");
    let switch_row = whole.rows.iter().find(|r| r.step == at).unwrap();
    assert!(switch_row.loss <= 1e-3);
    assert!(
        whole
            .rows
            .iter()
            .filter(|r| r.step < at)
            .all(|r| r.loss > 1e-3)
    );
    // Adam's probe is read before the switch and left unread after it.
    assert!(switch_row.eff_lr_median.is_some());
    let after: Vec<_> = whole.rows.iter().filter(|r| r.step > at).collect();
    assert!(!after.is_empty() && after.iter().all(|r| r.eff_lr_median.is_none()));
    // The first gradient step at lr 1e5 moves the model far: the loss jumps or diverges.
    assert!(
        whole.summary.diverged_at.is_some()
            || after.iter().any(|r| r.loss > 100.0 * switch_row.loss),
        "{:?}",
        whole.summary
    );

    // Killed two steps after a checkpoint taken in the gradient-descent phase: the resume
    // must continue with gradient descent, not Adam.
    let root = temp("gd-killed");
    let dir = RunDir::create(&root).unwrap();
    let kill_at = at + 7;
    assert!(
        whole.summary.diverged_at.is_none_or(|d| d > kill_at),
        "{:?}",
        whole.summary
    );
    let resumed = kill_and_resume(&c, &dir, &options, kill_at);
    assert_eq!(numbers(&resumed.rows), numbers(&whole.rows));
    assert_eq!(resumed.summary.switched_to_gd_at, Some(at));
    assert_eq!(resumed.summary.diverged_at, whole.summary.diverged_at);
}

/// Fig. 5's measurement: a finite positive largest Hessian eigenvalue on the steps asked for,
/// none elsewhere; and a bad interval is refused.
#[test]
fn sharpness_is_measured_on_the_steps_asked_for() {
    let mut c = tiny(Precision::F32);
    c.steps = 100;
    c.sharpness_every = Some(50);
    let result = run(&c, &RunDir::create(&temp("sharp")).unwrap(), &quiet()).unwrap();
    for r in &result.rows {
        match r.sharpness {
            Some(l) => {
                assert!(r.step % 50 == 0, "step {}", r.step);
                assert!(l.is_finite() && l > 0.0, "step {}: {l}", r.step);
            }
            None => assert!(r.step % 50 != 0, "step {} lacks sharpness", r.step),
        }
    }
    // Each estimate starts from the previous one's eigenvector, which the checkpoint keeps:
    // a run killed between two estimates and resumed measures the same values.
    let options = RunOptions {
        quiet: true,
        checkpoint_every: Some(30),
        ..RunOptions::default()
    };
    let dir = RunDir::create(&temp("sharp-killed")).unwrap();
    let resumed = kill_and_resume(&c, &dir, &options, 75);
    assert_eq!(numbers(&resumed.rows), numbers(&result.rows));
    let mut bad = tiny(Precision::F32);
    bad.sharpness_every = Some(15);
    assert!(
        bad.validate().is_err(),
        "15 is not a multiple of log-every 10"
    );
}

/// Fig. 2(a)'s raw data: the recorded classifier updates of a logged step have the classifier's
/// size, and their mean magnitude equals the probe's `|lr * update|` mean up to f32 rounding
/// of the weights.
#[test]
fn recorded_classifier_updates_agree_with_the_probe() {
    let c = tiny(Precision::F32);
    let root = temp("updates");
    let dir = RunDir::create(&root).unwrap();
    let options = RunOptions {
        quiet: true,
        record_updates: Some(100..=120),
        ..RunOptions::default()
    };
    let result = run(&c, &dir, &options).unwrap();
    let updates = slingshot_experiments::metrics::read_updates(
        &root.join(slingshot_experiments::metrics::UPDATES_FILE),
    )
    .unwrap();
    assert_eq!(
        updates.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        (100..=120).collect::<Vec<_>>(),
        "every step of the range is logged and recorded"
    );
    for (step, values) in &updates {
        let NetworkConfig::Mlp(mlp) = c.model.network else {
            panic!("the tiny run is an MLP")
        };
        assert_eq!(values.len(), mlp.width * c.classes(), "step {step}");
        let mean = values.iter().map(|v| v.abs()).sum::<f64>() / values.len() as f64;
        let probe = result
            .rows
            .iter()
            .find(|r| r.step == *step)
            .and_then(|r| r.update_mean)
            .unwrap();
        assert!(
            (mean - probe).abs() <= 1e-3 * probe,
            "step {step}: weights moved {mean:e}, probe says {probe:e}"
        );
    }
    // Logging every step of the range changed no number of the steps logged anyway (the
    // update ratio's window is per logging interval, so it is left out).
    let plain = run(
        &c,
        &RunDir::create(&temp("updates-plain")).unwrap(),
        &quiet(),
    )
    .unwrap();
    let same = |r: &MetricsRow| MetricsRow {
        wall_seconds: 0.0,
        update_ratio: None,
        ..r.clone()
    };
    let dense: Vec<MetricsRow> = result
        .rows
        .iter()
        .filter(|r| r.step % 10 == 0)
        .map(same)
        .collect();
    assert_eq!(dense, plain.rows.iter().map(same).collect::<Vec<_>>());
    let resume = RunOptions {
        resume: true,
        ..options
    };
    assert!(run(&c, &dir, &resume).is_err());
}

#[test]
fn a_centered_head_reports_the_logits_it_outputs() {
    // `h (W - W_G) + b - mean(b)` sums to zero over the classes of every row, so the mean
    // logit is zero up to rounding, whatever the stored `W` drifted to.
    let mut config = common::tiny(Precision::F32, 60);
    config.model.head.centered = true;
    let result = run(
        &config,
        &RunDir::create(&temp("centered")).unwrap(),
        &quiet(),
    )
    .unwrap();
    assert_eq!(result.rows.len(), 6);
    for r in &result.rows {
        assert!(
            r.mean_logit.abs() <= 1e-5 * r.max_logit.abs().max(1.0),
            "step {}: mean logit {} (max {})",
            r.step,
            r.mean_logit,
            r.max_logit
        );
        // The largest logit bounds every correct-class logit, so their mean too.
        assert!(r.max_logit >= r.mean_correct_logit, "step {}", r.step);
    }
    // The stored classifier's mean is not constrained by the centered forward.
    assert!(result.rows.last().unwrap().w_g_norm > 0.0);
}
