//! The update statistics around a spike and §4.1's estimate (`update_analysis`), on small
//! hand-computed inputs; the report's JSON contract; and `run`'s refusals before any training.

use approx::assert_relative_eq;
use slingshot_experiments::update_analysis::{
    self, Estimate, G_AFTER, RecordedStep, Report, SpikeSteps, SpikeWindow, Stage, StepUpdates,
    analyse, check_same_numbers, first_spike, gradient_rms, pick_steps,
};
use slingshot_experiments::{MetricsRow, RunOptions, TrainConfig};

/// A logged row with the given step, loss, `||mu_G||` and classifier gradient norm.
fn row(step: u64, loss: f64, mu_g_norm: f64, classifier_grad_norm: Option<f64>) -> MetricsRow {
    MetricsRow {
        step,
        loss,
        train_acc: 1.0,
        test_loss: 0.5,
        test_acc: 0.9,
        collapsed_fraction: 0.0,
        zero_loss_fraction: 0.0,
        mean_residual_mass: 0.0,
        min_margin: 1.0,
        mean_logit: 0.0,
        max_logit: 1.0,
        mean_correct_logit: 0.0,
        w_g_norm: 0.0,
        mu_g_norm,
        cos_wg_mug: 0.0,
        last_layer_norm: 1.0,
        eff_lr_median: None,
        eff_lr_max: None,
        eff_lr_ceiling_fraction: None,
        update_mean: None,
        update_ratio: None,
        grad_norm: None,
        classifier_grad_norm,
        sharpness: None,
        preconditioned_sharpness: None,
        wall_seconds: 0.0,
    }
}

/// Adam with the given learning rate and warm-up, betas 0.9/`beta2`, eps 1e-8.
fn adam(lr: f64, warmup: u64, beta2: f64) -> TrainConfig {
    let mut c = TrainConfig::demo();
    c.lr = lr;
    c.warmup = warmup;
    c.beta1 = 0.9;
    c.beta2 = beta2;
    c.eps = 1e-8;
    c
}

/// Recorded steps `first, first + 1, ...` with the given updates.
fn recorded(first: u64, values: &[&[f64]]) -> Vec<RecordedStep> {
    (first..)
        .zip(values)
        .map(|(s, v)| (s, v.to_vec()))
        .collect()
}

#[test]
fn step_statistics_are_of_magnitudes() {
    let even = StepUpdates::of(7, &[-3.0, 1.0, -2.0, 4.0]);
    assert_eq!(
        even,
        StepUpdates {
            step: 7,
            mean_abs: 2.5,
            // The upper median: sorted |values| [1, 2, 3, 4], index 4 / 2.
            median_abs: 3.0,
            max_abs: 4.0,
        }
    );
    let odd = StepUpdates::of(8, &[0.5, -0.25, 0.0]);
    assert_eq!(
        (odd.mean_abs, odd.median_abs, odd.max_abs),
        (0.25, 0.25, 0.5)
    );
    let none = StepUpdates::of(9, &[]);
    assert_eq!(none.mean_abs, 0.0);
    assert!(none.median_abs.is_nan() && none.max_abs.is_nan());
}

#[test]
fn the_spike_is_the_largest_finite_mean_and_its_neighbours_are_clamped() {
    // Mean |update| 1, 2, 3, 100, 5, 6, 7 at steps 10..=16.
    let updates = recorded(
        10,
        &[
            &[1.0],
            &[-2.0],
            &[3.0],
            &[-100.0, 100.0],
            &[5.0],
            &[6.0],
            &[7.0],
        ],
    );
    let at_3 = |before, after| SpikeSteps {
        before,
        at: 3,
        after,
    };
    assert_eq!(pick_steps(&updates, 2).unwrap(), at_3(1, 5));
    assert_eq!(pick_steps(&updates, 3).unwrap(), at_3(0, 6));
    assert_eq!(pick_steps(&updates, 10).unwrap(), at_3(0, 6));

    // A non-finite mean is never the spike: the largest finite one (step 16) is.
    let mut broken = updates.clone();
    broken[3].1 = vec![f64::INFINITY];
    broken[4].1 = vec![f64::NAN, 1e9];
    let s = pick_steps(&broken, 2).unwrap();
    assert_eq!((s.before, s.at, s.after), (4, 6, 6));

    // A tie goes to the later step.
    let tie = recorded(1, &[&[5.0], &[-5.0], &[1.0]]);
    assert_eq!(pick_steps(&tie, 1).unwrap().at, 1);

    for nothing in [vec![], recorded(1, &[&[f64::NAN]])] {
        let err = pick_steps(&nothing, 1).unwrap_err().to_string();
        assert_eq!(err, "invalid configuration: no update was recorded");
    }
}

#[test]
fn the_gradient_before_is_the_classifier_gradient_rms() {
    let rows = [row(5, 1.0, 1.0, Some(6.0)), row(6, 1.0, 1.0, None)];
    assert_eq!(gradient_rms(&rows, 5, 4), Some(3.0));
    assert_eq!(gradient_rms(&rows, 5, 9), Some(2.0));
    assert_eq!(gradient_rms(&rows, 6, 4), None, "not probed");
    assert_eq!(gradient_rms(&rows, 7, 4), None, "not logged");
}

#[test]
fn the_estimate_matches_a_hand_computation_at_step_2() {
    // Warm-up 10: the spike step 2 (one step taken before it) has lr 1e-2 * 2/10.
    let config = adam(1e-2, 10, 0.95);
    let (gb, ga) = (3e-9, G_AFTER);
    let e = Estimate::new(&config, 2, gb, ga).unwrap();
    let lr = 1e-2 * 0.2;
    assert_eq!(e.lr, lr);
    assert_eq!((e.beta1, e.beta2, e.eps), (0.9, 0.95, 1e-8));
    assert_eq!((e.g_before, e.g_after), (gb, ga));
    // Bias-corrected Adam: m1 = 0.1 gb, v1 = 0.05 gb^2, then ga at step 2.
    let m2 = (0.9 * 0.1 * gb + 0.1 * ga) / (1.0 - 0.9 * 0.9);
    let v2 = (0.95 * 0.05 * gb * gb + 0.05 * ga * ga) / (1.0 - 0.95 * 0.95);
    let update = lr * m2 / (v2.sqrt() + 1e-8);
    // The step before: m_hat = gb, sqrt(v_hat) = gb.
    let update_before = lr * gb / (gb + 1e-8);
    assert_relative_eq!(e.update, update, max_relative = 1e-12);
    assert_relative_eq!(
        e.amplification,
        update / update_before,
        max_relative = 1e-12
    );
    // After warm-up, the configured learning rate.
    assert_eq!(Estimate::new(&config, 100, gb, ga).unwrap().lr, 1e-2);
}

#[test]
fn late_in_training_the_estimate_is_section_4_1s() {
    // §4.1: lr 1e-3, betas 0.9/0.95, eps 1e-8, 3e-9 held, then 2^-23 (the paper: 1.19e-7):
    // m = 1.462e-8, sqrt(v) = 2.682e-8, update 3.9714e-4 (the paper rounds to 4e-4), 1.72x the
    // update 2.3077e-4 of the step before.
    let e = Estimate::new(&adam(1e-3, 0, 0.95), 1_000_000, 3e-9, G_AFTER).unwrap();
    assert_relative_eq!(e.update, 3.971_362_144_091_463e-4, max_relative = 1e-9);
    assert_relative_eq!(e.amplification, 1.720_923_595_772_967, max_relative = 1e-9);
    assert!((e.update - 4e-4).abs() / 4e-4 < 0.01);
    assert_eq!(G_AFTER, 2f64.powi(-23));
}

#[test]
fn the_estimate_refuses_what_adam_cannot_take() {
    let config = adam(1e-3, 0, 0.999);
    for (step, g) in [(1, 1e-9), (0, 1e-9), (5, f64::NAN)] {
        let err = Estimate::new(&config, step, g, G_AFTER).unwrap_err();
        assert!(
            err.to_string().starts_with("invalid configuration"),
            "{err}"
        );
    }
}

/// Steps 20..=24, four entries each: a small step, the spike at 22 and decaying steps.
fn spike_updates() -> Vec<RecordedStep> {
    let small = 2f64.powi(-12);
    recorded(
        20,
        &[
            &[small, -small, 2.0 * small, -2.0 * small],
            &[small, small, small, small],
            &[0.125, -0.25, 0.375, -0.5],
            &[0.0625, 0.0625, -0.0625, 0.0625],
            &[0.03125, 0.0, 0.0, 0.0],
        ],
    )
}

#[test]
fn the_analysis_reports_before_at_and_after() {
    let config = adam(1e-2, 0, 0.999);
    let updates = spike_updates();
    // The "before" step (20) holds a gradient of norm 4e-7 over 4 entries: RMS 2e-7.
    let rows = [row(20, 1.0, 1.0, Some(4e-7)), row(22, 2.0, 1.0, Some(1.0))];
    let analysis = analyse(&config, 23, &updates, &rows, 2).unwrap();
    assert_eq!(
        analysis.steps,
        SpikeSteps {
            before: 0,
            at: 2,
            after: 4,
        }
    );
    let r = analysis.report;
    assert_eq!(r.first_spike, 23);
    let small = 2f64.powi(-12);
    assert_eq!(
        r.before,
        StepUpdates {
            step: 20,
            mean_abs: 1.5 * small,
            median_abs: 2.0 * small,
            max_abs: 2.0 * small,
        }
    );
    assert_eq!(
        r.at,
        StepUpdates {
            step: 22,
            mean_abs: 0.3125,
            median_abs: 0.375,
            max_abs: 0.5,
        }
    );
    assert_eq!(
        (r.after.step, r.after.mean_abs, r.after.median_abs),
        (24, 0.03125 / 4.0, 0.0)
    );
    assert_eq!(r.measured_amplification, 0.3125 / (1.5 * small));
    assert_relative_eq!(r.measured_amplification, 2560.0 / 3.0, max_relative = 1e-15);
    assert_relative_eq!(r.estimate.g_before, 2e-7, max_relative = 1e-15);
    assert_eq!(r.estimate.g_after, G_AFTER);
    assert_eq!(
        r.estimate,
        Estimate::new(&config, 22, r.estimate.g_before, G_AFTER).unwrap()
    );

    // Without the classifier gradient at the "before" step there is no estimate.
    let err = analyse(&config, 23, &updates, &rows[1..], 2).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid configuration: no probe before the spike"
    );
}

/// The report exactly as the binary wrote it before the analysis moved into the library (the
/// test configuration of `examples/tests/binaries.rs`).
const WRITTEN_REPORT: &str = r#"{
  "first_spike": 5510,
  "before": {
    "step": 5497,
    "mean_abs": 0.0002482755522318517,
    "median_abs": 2.9802322387695312e-8,
    "max_abs": 0.015756607055664062
  },
  "at": {
    "step": 5507,
    "mean_abs": 0.13729244612789313,
    "median_abs": 0.03249514102935791,
    "max_abs": 0.42351073026657104
  },
  "after": {
    "step": 5517,
    "mean_abs": 0.05449519108099464,
    "median_abs": 0.03754162788391113,
    "max_abs": 0.43979907035827637
  },
  "measured_amplification": 552.9841536700432,
  "estimate": {
    "lr": 0.1,
    "beta1": 0.9,
    "beta2": 0.999,
    "eps": 1e-8,
    "g_before": 5.343423642310582e-8,
    "g_after": 1.1920928955078125e-7,
    "update": 0.09444596680023819,
    "amplification": 1.1212114532293496
  }
}"#;

/// Every number in `value`, in order.
fn numbers(value: &serde_json::Value) -> Vec<f64> {
    match value {
        serde_json::Value::Number(n) => vec![n.as_f64().unwrap()],
        serde_json::Value::Object(map) => map.values().flat_map(numbers).collect(),
        _ => vec![],
    }
}

#[test]
fn earlier_reports_read_back_and_write_the_same_fields() {
    let report: Report = serde_json::from_str(WRITTEN_REPORT).unwrap();
    assert_eq!(report.first_spike, 5510);
    assert_eq!(report.at.step, 5507);
    assert_eq!(report.estimate.g_after, G_AFTER);
    let written = serde_json::to_string_pretty(&report).unwrap();
    // The same fields, nesting and order: every line up to its value.
    let keys = |text: &str| -> Vec<String> {
        text.lines()
            .map(|l| l.split(':').next().unwrap().to_string())
            .collect()
    };
    assert_eq!(keys(&written), keys(WRITTEN_REPORT));
    // The same values (serde_json's default float parsing may be off by an ulp).
    let parse = |text: &str| numbers(&serde_json::from_str(text).unwrap());
    let (again, before) = (parse(&written), parse(WRITTEN_REPORT));
    assert_eq!(again.len(), 22);
    for (a, b) in again.iter().zip(&before) {
        assert_relative_eq!(*a, *b, max_relative = 1e-15);
    }
}

#[test]
fn non_finite_statistics_are_written_as_null_and_read_back_as_nan() {
    let empty = StepUpdates::of(3, &[]);
    let text = serde_json::to_string(&empty).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["step"], 3);
    assert_eq!(value["mean_abs"].as_f64(), Some(0.0));
    assert!(
        value["median_abs"].is_null() && value["max_abs"].is_null(),
        "{text}"
    );
    let back: StepUpdates = serde_json::from_str(&text).unwrap();
    assert_eq!(back.mean_abs, 0.0);
    assert!(back.median_abs.is_nan() && back.max_abs.is_nan());
}

#[test]
fn the_rerun_must_repeat_the_first_runs_numbers_bit_for_bit() {
    let first = [row(10, 0.5, 2.0, None), row(20, 0.25, 3.0, None)];
    // Step 25 was not logged by the first run: nothing to compare.
    let same = [row(20, 0.25, 3.0, Some(1.0)), row(25, 9.0, 9.0, None)];
    check_same_numbers(&first, &same).unwrap();

    let next_up = f64::from_bits(0.25f64.to_bits() + 1);
    let loss = [row(20, next_up, 3.0, None)];
    let err = check_same_numbers(&first, &loss).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "invalid configuration: the re-run differs from the first run at step 20: loss {next_up} vs 0.25"
        )
    );
    assert!(check_same_numbers(&first, &[row(20, 0.25, 3.0 + 1e-15, None)]).is_err());
    // Bits, not values: -0 is not 0, and NaN is itself.
    let zero = [row(1, 0.0, f64::NAN, None)];
    assert!(check_same_numbers(&zero, &[row(1, -0.0, f64::NAN, None)]).is_err());
    check_same_numbers(&zero, &zero).unwrap();
}

#[test]
fn the_window_is_checked_and_placed_around_the_spike() {
    for (window, offset) in [(2, 1), (40, 10), (40, 39)] {
        SpikeWindow { window, offset }.validate().unwrap();
    }
    for (window, offset) in [(1, 0), (1, 1), (40, 0), (40, 40), (5, 6)] {
        assert!(SpikeWindow { window, offset }.validate().is_err());
    }
    assert_eq!(
        SpikeWindow {
            window: 5,
            offset: 5
        }
        .validate()
        .unwrap_err()
        .to_string(),
        "invalid configuration: --window 5 and --offset 5: need window >= 2 and 0 < offset < window"
    );

    let mut config = adam(1e-3, 0, 0.999);
    config.steps = 100;
    config.arm = "run".into();
    let w = SpikeWindow {
        window: 20,
        offset: 5,
    };
    let (rerun, range) = w.rerun(&config, 50);
    assert_eq!((rerun.steps, range), (70, 30..=70));
    assert_eq!(rerun.arm, "window");
    assert_eq!(
        TrainConfig {
            arm: "run".into(),
            steps: 100,
            ..rerun
        },
        config
    );
    // Capped at the configured steps, and starting at step 1 at the earliest.
    assert_eq!(w.rerun(&config, 90).1, 70..=100);
    assert_eq!(w.rerun(&config, 10).1, 1..=30);
}

#[test]
fn no_spike_says_to_train_longer() {
    assert_eq!(
        first_spike(&[7, 9], 40, "x".as_ref()).unwrap(),
        7,
        "the first spike"
    );
    let err = first_spike(&[], 40, "runs/x/run".as_ref()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid configuration: the run had no loss spike in 40 steps: try more --steps (see runs/x/run)"
    );
}

/// The binary tests' configuration without a spike: division mod 7, MLP 16 x 1, 40 steps.
fn no_spike() -> TrainConfig {
    let mut c = TrainConfig::demo();
    c.experiment = "update-spike".into();
    c.modular_mut().expect("the modular task").p = 7;
    c.model.network =
        slingshot_experiments::model::NetworkConfig::Mlp(slingshot_experiments::model::MlpConfig {
            width: 16,
            depth: 1,
        });
    c.steps = 40;
    c.log_every = 10;
    c
}

fn out_dir(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("slingshot-update-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn run_refuses_a_bad_window_before_writing_anything() {
    let out = out_dir("bad-window");
    let mut stages = Vec::new();
    let err = update_analysis::run(
        &no_spike(),
        SpikeWindow {
            window: 5,
            offset: 5,
        },
        &RunOptions::default(),
        &out,
        |s| stages.push(s),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("--window 5 and --offset 5"),
        "{err}"
    );
    assert!(stages.is_empty());
    assert!(!out.exists());
}

/// 40 steps of [`no_spike`] have no spike: the first run is reported, the re-run
/// never starts.
#[test]
fn run_stops_after_the_first_run_without_a_spike() {
    let out = out_dir("no-spike");
    let mut stages = Vec::new();
    let options = RunOptions {
        quiet: true,
        ..RunOptions::default()
    };
    let window = SpikeWindow {
        window: 10,
        offset: 2,
    };
    let err =
        update_analysis::run(&no_spike(), window, &options, &out, |s| stages.push(s)).unwrap_err();
    assert!(
        err.to_string().contains("no loss spike in 40 steps"),
        "{err}"
    );
    assert_eq!(stages, [Stage::FirstRun]);
    assert!(out.join("run/summary.json").is_file());
    assert!(!out.join("window/summary.json").exists());
    assert!(!out.join(update_analysis::REPORT_FILE).exists());
}
