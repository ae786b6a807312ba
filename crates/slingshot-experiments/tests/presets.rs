//! The shared flags: the add-mod-113 preset is issue 17's command line, the grokking preset
//! the demo with `--train-fraction 0.8 --steps 60000`, `--train-fraction`
//! reaches the task and is checked, and each precision sets the spike detector's resolution.

use clap::Parser;
use slingshot_experiments::cli::TrainArgs;
use slingshot_experiments::config::TaskConfig;
use slingshot_experiments::{Precision, TrainConfig};

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    train: TrainArgs,
}

fn config(args: &[&str]) -> TrainConfig {
    let cli = Cli::try_parse_from(std::iter::once("test").chain(args.iter().copied())).unwrap();
    cli.train.config("test", "arm")
}

#[test]
fn the_add_mod_113_preset_is_the_issues_command_line() {
    let preset = config(&["--preset", "add-mod-113"]);
    let flags = config(&[
        "--op",
        "add",
        "--p",
        "113",
        "--width",
        "200",
        "--depth",
        "2",
        "--batch",
        "full",
        "--lr",
        "5e-4",
        "--beta2",
        "0.99",
        "--eps",
        "1e-25",
        "--no-classifier-bias",
        "--steps",
        "8000",
        "--log-every",
        "50",
    ]);
    assert_eq!(
        serde_json::to_value(&preset).unwrap(),
        serde_json::to_value(&flags).unwrap()
    );
    assert!(preset.validate().is_ok());
}

#[test]
fn the_grokking_preset_is_the_demo_with_more_training_pairs_and_steps() {
    let preset = config(&["--preset", "grokking"]);
    let flags = config(&["--train-fraction", "0.8", "--steps", "60000"]);
    assert_eq!(
        serde_json::to_value(&preset).unwrap(),
        serde_json::to_value(&flags).unwrap()
    );
    assert!(preset.validate().is_ok());
}

#[test]
fn train_fraction_reaches_the_task_and_is_checked() {
    let c = config(&["--train-fraction", "0.7"]);
    match &c.task {
        TaskConfig::Modular(m) => assert_eq!(m.train_fraction, 0.7),
        other => panic!("{other:?}"),
    }
    let err = config(&["--train-fraction", "1.0"]).validate().unwrap_err();
    assert!(err.to_string().contains("train fraction 1"), "{err}");
}

#[test]
fn each_precision_sets_the_detector_resolution_of_its_loss_format() {
    let resolution = |p: &str| config(&["--precision", p]).spikes.loss_resolution;
    assert_eq!(resolution("f32"), f64::from(f32::EPSILON));
    assert_eq!(resolution("f64-loss"), f64::EPSILON);
    assert_eq!(resolution("bf16-loss"), 2f64.powi(-7));
    assert_eq!(resolution("e4m3-loss"), 0.125);
    assert_eq!(resolution("bf16-logits"), f64::from(f32::EPSILON));
}

#[test]
fn a_16_bit_model_needs_flex() {
    let err = config(&["--precision", "bf16", "--backend", "ndarray"])
        .validate()
        .unwrap_err();
    assert!(err.to_string().contains("use --backend flex"), "{err}");
    assert!(config(&["--precision", "bf16"]).validate().is_ok());
    // Every precision round-trips through its name.
    for p in Precision::ALL {
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, format!("\"{p}\""));
        assert_eq!(serde_json::from_str::<Precision>(&json).unwrap(), p);
    }
}
