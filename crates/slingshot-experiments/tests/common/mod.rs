//! What the harness's test binaries share: the tiny configuration and row comparison.

// Each test binary uses a part of it.
#![allow(dead_code)]

use slingshot_experiments::model::{MlpConfig, NetworkConfig};
use slingshot_experiments::{BatchSize, MetricsRow, Precision, TrainConfig};

/// Division mod 7, MLP 64 x 2, full batch, lr 3e-2, `steps` steps logged every 10: the f32 arm
/// reaches softmax collapse within 200 steps.
pub fn tiny(precision: Precision, steps: u64) -> TrainConfig {
    let mut c = TrainConfig::demo();
    c.experiment = "test".into();
    c.arm = precision.to_string();
    c.precision = precision;
    c.modular_mut().expect("the modular task").p = 7;
    c.model.network = NetworkConfig::Mlp(MlpConfig {
        width: 64,
        depth: 2,
    });
    c.lr = 3e-2;
    c.steps = steps;
    c.log_every = 10;
    c.batch = BatchSize::Full;
    c
}

/// Rows without the wall clock, which is the only thing allowed to differ between runs, as
/// text so that NaN (a diverged run's cosine) compares equal to itself.
pub fn numbers(rows: &[MetricsRow]) -> Vec<String> {
    rows.iter()
        .map(|r| {
            format!(
                "{:?}",
                MetricsRow {
                    wall_seconds: 0.0,
                    ..r.clone()
                }
            )
        })
        .collect()
}

/// Two run directories hold the same results except for the clock (the test of "resumes
/// exactly").
pub fn same_files(a: &std::path::Path, b: &std::path::Path) {
    let differences = slingshot_experiments::run::compare::differing_outputs(a, b);
    assert!(differences.is_empty(), "{}: {differences:#?}", b.display());
}
