//! Property-tests a cross-entropy you wrote against slingshot's absorption thresholds.
//!
//! The thresholds say, for any row of logits, when an f32 softmax *must* collapse (the loss and
//! the correct-class gradient are exactly 0) and when it *cannot*. A loss that disagrees is
//! losing precision somewhere. Two example losses are checked:
//!
//! * `stable`: max-subtracted log-sum-exp, as PyTorch and burn compute it. Passes.
//! * `naive`: `ln(sum_k exp(z_k)) - z_r` without subtracting the max. Fails: the small residual
//!   is absorbed into the large `ln(sum)`, so the loss reads exactly 0 at margins where collapse is
//!   impossible; proptest shrinks the row to a minimal counter-example.
//!
//! `cargo run -p slingshot-examples --bin property-test-loss -- --loss naive`

use clap::{Parser, ValueEnum};
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use slingshot::numerics::strategies::{LogitRow, LogitRowConfig, logit_rows};
use slingshot::numerics::{AbsorptionThresholds, CollapsePrediction, FloatFormat};

/// Which example loss to test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Loss {
    /// Max-subtracted log-sum-exp (correct).
    Stable,
    /// log-sum-exp without the max subtraction (loses the residual).
    Naive,
}

/// Property-test an f32 cross-entropy against the absorption thresholds.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The loss to test.
    #[arg(long, value_enum, default_value_t = Loss::Stable)]
    loss: Loss,
    /// Number of random rows.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    cases: u32,
}

/// Loss and correct-class gradient of one f32 row, as a user's own code might compute them.
fn cross_entropy(loss: Loss, z: &[f32], label: usize) -> (f32, f32) {
    let shift = match loss {
        Loss::Stable => z.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        Loss::Naive => 0.0,
    };
    let sum: f32 = z.iter().map(|&v| (v - shift).exp()).sum();
    let log_prob = (z[label] - shift) - sum.ln();
    (-log_prob, log_prob.exp() - 1.0)
}

/// The property: the thresholds' predictions hold for `loss` on `row`.
fn check(loss: Loss, row: &LogitRow) -> Result<(), TestCaseError> {
    let t = AbsorptionThresholds::new(FloatFormat::F32, row.logits.len())
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let z: Vec<f32> = row.logits.iter().map(|&v| v as f32).collect();
    let (value, grad) = cross_entropy(loss, &z, row.label);
    match t.predict(row.margin).expect("margins are finite") {
        CollapsePrediction::Certain if value != 0.0 || grad != 0.0 => {
            Err(TestCaseError::fail(format!(
                "margin {} >= {}: collapse is certain, yet loss = {value:e}, grad = {grad:e}",
                row.margin, t.certain_at
            )))
        }
        CollapsePrediction::Impossible if row.margin > 0.0 && (value == 0.0 || grad == 0.0) => {
            Err(TestCaseError::fail(format!(
                "margin {} < {}: collapse is impossible, yet loss = {value:e}, grad = {grad:e}",
                row.margin, t.impossible_below
            )))
        }
        _ => Ok(()),
    }
}

/// Runs `cases` random rows; the minimal failing row if the property fails.
fn run(loss: Loss, cases: u32) -> Result<(), TestError<LogitRow>> {
    let rows = logit_rows(
        FloatFormat::F32,
        LogitRowConfig {
            classes: 2..=4096,
            margin: 0.0..40.0,
            offset: 0.0..16.0,
            spread: 20.0,
        },
    );
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    runner.run(&rows, |row| check(loss, &row))
}

fn main() {
    let args = Args::parse();
    match run(args.loss, args.cases) {
        Ok(()) => println!(
            "{:?} loss: {} random rows agree with the absorption thresholds",
            args.loss, args.cases
        ),
        Err(TestError::Fail(reason, row)) => {
            println!("{:?} loss FAILS: {reason}", args.loss);
            println!(
                "minimal row: {} classes, label {}, margin {}, label logit {}",
                row.logits.len(),
                row.label,
                row.margin,
                row.logits[row.label]
            );
            std::process::exit(1);
        }
        Err(TestError::Abort(reason)) => {
            eprintln!("error: proptest aborted: {reason}");
            std::process::exit(2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stable_loss_passes() {
        run(Loss::Stable, 256).unwrap();
    }

    #[test]
    fn the_naive_loss_is_caught_and_shrunk() {
        match run(Loss::Naive, 512) {
            Err(TestError::Fail(reason, row)) => {
                assert!(reason.message().contains("impossible"), "{reason}");
                // Absorbed by ln(sum) ~ z_r: a margin well below the collapse threshold.
                assert!(row.margin < 16.6, "{}", row.margin);
            }
            other => panic!("the naive loss should fail, got {other:?}"),
        }
    }
}
