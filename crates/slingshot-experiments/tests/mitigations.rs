//! Mitigations as transforms: the first `config.json` format reads into the same list, every
//! first-format key is still written, `--mitigation` parses, and Prieto et al.'s StableMax and
//! ⊥Grad arms train and act where the paper says.

use slingshot_experiments::mitigation::{
    GdSwitch, GradClip, KEYS, LabelSmoothing, Mitigation, Mitigations, OrthoGrad, StableMax,
    SwitchToGd, ZeroSum, solo_arms,
};
use slingshot_experiments::{Precision, RunDir, RunOptions, TrainConfig, run};

mod common;

#[test]
fn the_first_config_format_reads_into_the_same_list() {
    let mut config = TrainConfig::demo();
    config.mitigations = Mitigations::none()
        .with(ZeroSum)
        .with(LabelSmoothing { amount: 0.1 })
        .with(SwitchToGd(GdSwitch {
            lr: 1e5,
            loss_at_most: 0.0,
        }));
    let mut first = serde_json::to_value(TrainConfig::demo()).unwrap();
    first["mitigations"] = serde_json::json!({
        "zero_sum": true,
        "label_smoothing": 0.1,
        "post_step_mean_removal": false,
        "mu_loss": 0.0,
        "logit_clamp": null,
        "switch_to_gd": {"lr": 1e5, "loss_at_most": 0.0}
    });
    let read: TrainConfig = serde_json::from_value(first.clone()).unwrap();
    assert_eq!(read, config);
    // Written back, the first format's keys keep their names and values.
    let written = serde_json::to_value(&read).unwrap();
    for key in [
        "zero_sum",
        "label_smoothing",
        "post_step_mean_removal",
        "mu_loss",
        "logit_clamp",
        "switch_to_gd",
    ] {
        assert_eq!(
            written["mitigations"][key], first["mitigations"][key],
            "{key}"
        );
    }
}

#[test]
fn mitigation_flags_parse_and_unknown_ones_are_named() {
    assert_eq!(Mitigation::from_flag("stablemax"), Ok(StableMax.into()));
    assert_eq!(Mitigation::from_flag("orthograd"), Ok(OrthoGrad.into()));
    assert_eq!(
        Mitigation::from_flag("switch-to-gd=1e5@1e-7"),
        Ok(SwitchToGd(GdSwitch {
            lr: 1e5,
            loss_at_most: 1e-7
        })
        .into())
    );
    let err = Mitigation::from_flag("magic").unwrap_err();
    assert!(
        err.contains("unknown mitigation") && err.contains("stablemax"),
        "{err}"
    );
    assert!(Mitigation::from_flag("label_smoothing=x").is_err());
    let solo: Vec<&str> = solo_arms().iter().map(|a| a.0).collect();
    assert_eq!(solo, ["stablemax", "orthograd"]);
    assert!(KEYS.contains(&"stablemax") && KEYS.contains(&"orthograd"));
}

fn tiny_with(m: Mitigations, name: &str) -> slingshot_experiments::RunResult {
    let mut c = common::tiny(Precision::F32, 200);
    c.arm = name.into();
    c.mitigations = m;
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "slingshot-mitigations-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let options = RunOptions {
        quiet: true,
        ..RunOptions::default()
    };
    run(&c, &RunDir::create(&dir).unwrap(), &options).unwrap()
}

/// The tiny f32 run collapses; StableMax keeps the correct-class probability below 1, and
/// ⊥Grad removes the gradient along the weights that grows the logits without bound.
#[test]
fn stablemax_and_orthograd_keep_the_tiny_run_out_of_collapse() {
    let baseline = tiny_with(Mitigations::none(), "baseline");
    let stablemax = tiny_with(Mitigations::none().with(StableMax), "stablemax");
    let orthograd = tiny_with(Mitigations::none().with(OrthoGrad), "orthograd");
    let collapsed = |r: &slingshot_experiments::RunResult| r.summary.max_collapsed_fraction;
    eprintln!(
        "max collapsed: baseline {}, stablemax {}, orthograd {}; |mu_G|: {} {} {}",
        collapsed(&baseline),
        collapsed(&stablemax),
        collapsed(&orthograd),
        baseline.summary.max_mu_g_norm,
        stablemax.summary.max_mu_g_norm,
        orthograd.summary.max_mu_g_norm
    );
    assert!(collapsed(&baseline) > 0.3, "{}", collapsed(&baseline));
    assert!(collapsed(&stablemax) < collapsed(&baseline));
    assert!(collapsed(&orthograd) < collapsed(&baseline));
}

/// A mitigation added after the framework, in one file and one registry line: the clipped
/// run's probe sees no gradient norm above the bound.
#[test]
fn grad_clip_bounds_the_gradient_the_optimizer_sees() {
    assert_eq!(
        Mitigation::from_flag("grad-clip=0.05"),
        Ok(GradClip { max_norm: 0.05 }.into())
    );
    let clipped = tiny_with(
        Mitigations::none().with(GradClip { max_norm: 0.05 }),
        "clipped",
    );
    let norms: Vec<f64> = clipped.rows.iter().filter_map(|r| r.grad_norm).collect();
    assert!(!norms.is_empty());
    assert!(norms.iter().all(|&n| n <= 0.05 * (1.0 + 1e-5)), "{norms:?}");
    let plain = tiny_with(Mitigations::none(), "unclipped");
    assert!(
        plain
            .rows
            .iter()
            .filter_map(|r| r.grad_norm)
            .any(|n| n > 0.05)
    );
}
