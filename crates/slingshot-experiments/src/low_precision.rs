//! App. A.3.3's conjecture tested: the arms of the `low-precision` binary, and the report
//! that sets each arm's measured collapse margins against the absorption thresholds of the
//! format its loss computes in.

use std::path::Path;

use serde::{Deserialize, Serialize};
use slingshot_numerics::{collapse_certain_at, collapse_impossible_below};

use crate::cli::ArmSpec;
use crate::config::Precision;
use crate::error::ExperimentError;
use crate::train::RunResult;

/// The precisions compared, f32 first: the loss in each narrow format, bf16 logits with an
/// f32 loss (autocast), and the whole model in bf16 and f16.
pub const PRECISIONS: [Precision; 8] = [
    Precision::F32,
    Precision::Bf16Loss,
    Precision::F16Loss,
    Precision::E4m3Loss,
    Precision::E5m2Loss,
    Precision::Bf16Logits,
    Precision::Bf16,
    Precision::F16,
];

/// The mitigations of each low-precision arm: the loss upcast to f32 (only the 16-bit models
/// have one that differs from the f32 arm: the loss-only arms upcast are the f32 arm itself).
pub const UPCASTS: [(Precision, Precision); 2] = [
    (Precision::Bf16, Precision::Bf16F32Loss),
    (Precision::F16, Precision::F16F32Loss),
];

/// Adam's epsilon for the f16 models: the presets' 1e-8 is below f16's smallest subnormal
/// (6e-8), rounds to 0, and the first step divides by zero (measured: NaN by step 10).
pub const F16_MODEL_EPS: &str = "1e-4";

/// The flags of a precision's arm (the f16 models also set [`F16_MODEL_EPS`]).
fn precision_flags(p: Precision) -> Vec<String> {
    let mut flags = vec!["--precision".to_string(), p.to_string()];
    if p.model_dtype() == Some(burn::tensor::DType::F16) {
        flags.extend(["--eps".to_string(), F16_MODEL_EPS.to_string()]);
    }
    flags
}

/// Every arm: each precision, the upcasts, and each low-precision arm with zero-sum
/// projection (`<precision>+zero-sum`).
pub fn arms() -> Vec<ArmSpec> {
    let arm = |label: &str, flags: Vec<String>| ArmSpec {
        label: label.into(),
        flags,
    };
    let mut arms: Vec<ArmSpec> = PRECISIONS
        .into_iter()
        .map(|p| arm(&p.to_string(), precision_flags(p)))
        .collect();
    arms.extend(
        UPCASTS
            .iter()
            .map(|&(_, up)| arm(&up.to_string(), precision_flags(up))),
    );
    for p in PRECISIONS.into_iter().skip(1) {
        let mut flags = precision_flags(p);
        flags.push("--zero-sum".into());
        arms.push(arm(&format!("{p}+zero-sum"), flags));
    }
    arms
}

/// One arm of the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArmReport {
    /// The arm's label.
    pub arm: String,
    /// The precision (`--precision`).
    pub precision: String,
    /// The format the loss computes in.
    pub loss_format: String,
    /// Classes `K`.
    pub classes: usize,
    /// Below this margin no row can collapse in that format (any order).
    pub impossible_below: f64,
    /// At and above this margin every row collapses in that format (any order), for `K`.
    pub certain_at: f64,
    /// The first logged step with a collapsed row.
    pub first_collapse_step: Option<u64>,
    /// The smallest margin among that step's collapsed rows.
    pub first_collapse_margin: Option<f64>,
    /// The smallest margin of any collapsed row.
    pub min_collapsed_margin: Option<f64>,
    /// The largest margin of any uncollapsed row whose label led.
    pub max_uncollapsed_margin: Option<f64>,
    /// The lowest margin bin where at least half the rows collapsed.
    pub half_collapsed_margin: Option<f64>,
    /// Every collapsed row at or above `impossible_below`, every row at or above
    /// `certain_at` collapsed.
    pub within_band: bool,
    /// Loss spike steps.
    pub spikes: Vec<u64>,
    /// NFI event steps.
    pub nfi_events: Vec<u64>,
    /// The largest `||mu_G||` logged.
    pub max_mu_g_norm: f64,
    /// Test accuracy at the end.
    pub final_test_acc: f64,
    /// Training accuracy at the end.
    pub final_train_acc: f64,
    /// The step where the run stopped on a non-finite loss, if it did.
    pub diverged_at: Option<u64>,
}

/// The report of one arm's result, with `classes` classes.
pub fn arm_report(result: &RunResult, precision: Precision, classes: usize) -> ArmReport {
    let s = &result.summary;
    let format = precision.loss_format();
    let impossible_below = collapse_impossible_below(format);
    let certain_at = collapse_certain_at(format, classes).unwrap_or(f64::INFINITY);
    let m = s.collapse_margins.unwrap_or_default();
    let within_band = m.min_collapsed_margin.is_none_or(|v| v >= impossible_below)
        && m.max_uncollapsed_margin.is_none_or(|v| v < certain_at);
    ArmReport {
        arm: s.arm.clone(),
        precision: precision.to_string(),
        loss_format: format.name().into_owned(),
        classes,
        impossible_below,
        certain_at,
        first_collapse_step: m.first_collapse_step,
        first_collapse_margin: m.first_collapse_margin,
        min_collapsed_margin: m.min_collapsed_margin,
        max_uncollapsed_margin: m.max_uncollapsed_margin,
        half_collapsed_margin: m.half_collapsed_margin,
        within_band,
        spikes: s.spikes.clone(),
        nfi_events: s.nfi_events.clone(),
        max_mu_g_norm: s.max_mu_g_norm,
        final_test_acc: s.final_test_acc,
        final_train_acc: s.final_train_acc,
        diverged_at: s.diverged_at,
    }
}

/// Prints the report as a table.
pub fn print_report(reports: &[ArmReport]) {
    println!(
        "\n{:<22} {:>6} {:>6} {:>7} {:>7} {:>7} {:>6} {:>7} {:>8} {:>9} {:>6}",
        "arm",
        "band",
        "1st SC",
        "margin",
        "min SC",
        "band lo",
        "hi",
        "spikes",
        "nfi",
        "max|muG|",
        "test"
    );
    for r in reports {
        let opt = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
        println!(
            "{:<22} {:>6} {:>6} {:>7} {:>7} {:>7.2} {:>6.2} {:>7} {:>8} {:>9.1} {:>5.1}%",
            r.arm,
            if r.within_band { "ok" } else { "OUT" },
            r.first_collapse_step.map_or("-".into(), |s| s.to_string()),
            opt(r.first_collapse_margin),
            opt(r.min_collapsed_margin),
            r.impossible_below,
            r.certain_at,
            r.spikes.len(),
            r.nfi_events.len(),
            r.max_mu_g_norm,
            100.0 * r.final_test_acc
        );
    }
}

/// Writes the reports to `low-precision.json` in `root`.
pub fn write_report(root: &Path, reports: &[ArmReport]) -> Result<(), ExperimentError> {
    crate::output::write_json(&root.join("low-precision.json"), &reports)
}
