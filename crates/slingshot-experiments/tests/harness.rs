//! Short runs of the harness on ndarray (f32 models only: burn keeps one default float dtype
//! per device and process, so the f64 arm has its own test binary, `f64_arm.rs`).

use std::path::Path;

use slingshot_experiments::metrics::read_metrics;
use slingshot_experiments::plot::{self, Series};
use slingshot_experiments::{
    BatchSize, ExperimentError, MetricsRow, Precision, RunDir, RunOptions, TrainConfig, run,
};

/// A tiny configuration whose f32 arm reaches softmax collapse within 200 steps.
fn tiny(precision: Precision) -> TrainConfig {
    let mut c = TrainConfig::demo();
    c.experiment = "test".into();
    c.arm = precision.to_string();
    c.precision = precision;
    c.p = 7;
    c.model.width = 64;
    c.model.depth = 2;
    c.lr = 3e-2;
    c.steps = 200;
    c.log_every = 10;
    c.batch = BatchSize::Full;
    c
}

fn quiet() -> RunOptions {
    RunOptions {
        quiet: true,
        ..RunOptions::default()
    }
}

/// Rows without the wall clock, which is the only thing allowed to differ between runs.
fn numbers(rows: &[MetricsRow]) -> Vec<MetricsRow> {
    rows.iter()
        .map(|r| MetricsRow {
            wall_seconds: 0.0,
            ..r.clone()
        })
        .collect()
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
    }];
    plot::draw(&figure, "test", &series, &plot::mechanism_panels(), 3).unwrap();
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
    c.p = 8;
    assert!(run(&c, &dir, &quiet()).is_err(), "p must be prime");
    let mut c = tiny(Precision::F32);
    c.mitigations.label_smoothing = 1.0;
    assert!(c.validate().is_err());

    let file = temp("a-file");
    std::fs::write(&file, b"x").unwrap();
    let err = RunDir::create(&file).unwrap_err();
    assert!(err.to_string().contains("not a directory"), "{err}");
    assert!(RunDir::create(Path::new("/proc/slingshot-cannot-write-here")).is_err());
}
