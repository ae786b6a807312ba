//! Issue 17 §6: does removing feature inflation let the model generalize? Every
//! generalization-relevant arm on one task, over several seeds, and when each reaches 50% and
//! 90% test accuracy.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::cli::ArmSpec;
use crate::error::ExperimentError;
use crate::train::RunResult;

/// The arms compared, with their flags: the two precisions, the mitigations that remove or
/// avoid NFI, and AdamW with weight decay 1 as the conventional grokking reference.
pub const ARMS: [(&str, &[&str]); 8] = [
    ("f32", &[]),
    ("f64-loss", &["--precision", "f64-loss"]),
    ("zero-sum", &["--zero-sum"]),
    ("centered", &["--centered"]),
    ("mu-centering", &["--mean-removal"]),
    ("orthograd", &["--mitigation", "orthograd"]),
    ("stablemax", &["--mitigation", "stablemax"]),
    ("adamw", &["--weight-decay", "1"]),
];

/// Every arm for every seed, labelled `<arm>-s<seed>`: every arm of the first seed first, so
/// that an interrupted run has whole seeds.
pub fn arms(seeds: &[u64]) -> Vec<ArmSpec> {
    let mut all = Vec::new();
    for seed in seeds {
        for &(label, flags) in &ARMS {
            let seed_text = seed.to_string();
            let mut with_seed: Vec<&str> = flags.to_vec();
            with_seed.extend(["--seed", seed_text.as_str()]);
            all.push(ArmSpec::new(&format!("{label}-s{seed}"), &with_seed));
        }
    }
    all
}

/// One run's generalization.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeedOutcome {
    /// The arm without its seed (`zero-sum`).
    pub arm: String,
    /// The seed.
    pub seed: u64,
    /// The first logged step with at least 50% test accuracy.
    pub step_to_50: Option<u64>,
    /// The first logged step with at least 90% test accuracy.
    pub step_to_90: Option<u64>,
    /// Test accuracy at the end.
    pub final_test_acc: f64,
    /// Loss spike steps.
    pub spikes: Vec<u64>,
    /// The largest `||mu_G||`.
    pub max_mu_g_norm: f64,
    /// The largest collapsed fraction.
    pub max_collapsed_fraction: f64,
}

/// The outcome of a result labelled `<arm>-s<seed>`.
pub fn outcome(result: &RunResult, seed: u64) -> SeedOutcome {
    let s = &result.summary;
    let first = |acc: f64| {
        result
            .rows
            .iter()
            .find(|r| r.test_acc >= acc)
            .map(|r| r.step)
    };
    let suffix = format!("-s{seed}");
    SeedOutcome {
        arm: s.arm.strip_suffix(&suffix).unwrap_or(&s.arm).to_string(),
        seed,
        step_to_50: first(0.5),
        step_to_90: first(0.9),
        final_test_acc: s.final_test_acc,
        spikes: s.spikes.clone(),
        max_mu_g_norm: s.max_mu_g_norm,
        max_collapsed_fraction: s.max_collapsed_fraction,
    }
}

/// Prints one line per run, grouped by arm.
pub fn print_outcomes(outcomes: &[SeedOutcome]) {
    println!(
        "\n{:<14} {:>5} {:>9} {:>9} {:>7} {:>7} {:>10} {:>7}",
        "arm", "seed", "to 50%", "to 90%", "final", "spikes", "max|muG|", "max SC"
    );
    let step = |v: Option<u64>| v.map_or("never".into(), |s| s.to_string());
    for o in outcomes {
        println!(
            "{:<14} {:>5} {:>9} {:>9} {:>6.1}% {:>7} {:>10.1} {:>6.1}%",
            o.arm,
            o.seed,
            step(o.step_to_50),
            step(o.step_to_90),
            100.0 * o.final_test_acc,
            o.spikes.len(),
            o.max_mu_g_norm,
            100.0 * o.max_collapsed_fraction
        );
    }
}

/// Writes `generalization.json` into `root`.
pub fn write_outcomes(root: &Path, outcomes: &[SeedOutcome]) -> Result<(), ExperimentError> {
    crate::output::write_json(&root.join("generalization.json"), &outcomes)
}
