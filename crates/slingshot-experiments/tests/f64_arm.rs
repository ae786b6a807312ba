//! The f64 arm in its own process (burn keeps one default float dtype per device and
//! process), and the guard that refuses a second dtype in the same process.

use slingshot_experiments::{ExperimentError, Precision, RunDir, RunOptions, TrainConfig, run};

mod common;

fn tiny(precision: Precision) -> TrainConfig {
    common::tiny(precision, 100)
}

#[test]
fn the_f64_arm_trains_in_f64_and_a_second_dtype_is_refused() {
    let root = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("slingshot-f64-{}", std::process::id()));
    let options = RunOptions {
        quiet: true,
        ..RunOptions::default()
    };
    let result = run(
        &tiny(Precision::F64),
        &RunDir::create(&root.join("f64")).unwrap(),
        &options,
    )
    .unwrap();
    // In f64 the margins of 100 steps are far below the f64 absorption threshold (about 37).
    assert_eq!(result.summary.max_collapsed_fraction, 0.0);
    assert_eq!(result.summary.precision, "f64");
    let err = run(
        &tiny(Precision::F32),
        &RunDir::create(&root.join("f32")).unwrap(),
        &options,
    )
    .unwrap_err();
    assert!(matches!(err, ExperimentError::InvalidConfig(_)));
    assert!(err.to_string().contains("separate process"), "{err}");
}
