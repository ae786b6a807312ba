//! `proptest` strategies for property-testing losses against the absorption thresholds.
//!
//! Enabled by the `proptest` cargo feature. A typical test draws a format, a row with a known
//! margin and an order, asks [`crate::AbsorptionThresholds`] what must happen, and checks the
//! loss under test:
//!
//! ```
//! use proptest::prelude::*;
//! use slingshot_numerics::strategies::{logit_rows, LogitRowConfig};
//! use slingshot_numerics::{AbsorptionThresholds, CollapsePrediction, FloatFormat};
//!
//! proptest!(|(row in logit_rows(FloatFormat::F32, LogitRowConfig::default()))| {
//!     let t = AbsorptionThresholds::new(FloatFormat::F32, row.logits.len()).unwrap();
//!     let logits: Vec<f32> = row.logits.iter().map(|&z| z as f32).collect();
//!     let my_loss = my_cross_entropy(&logits, row.label);
//!     if t.predict(row.margin).unwrap() == CollapsePrediction::Certain {
//!         prop_assert_eq!(my_loss, 0.0);
//!     }
//! });
//! # fn my_cross_entropy(z: &[f32], r: usize) -> f32 {
//! #     let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
//! #     let sum: f32 = z.iter().map(|&v| (v - max).exp()).sum();
//! #     -((z[r] - max) - sum.ln())
//! # }
//! ```

use std::ops::{Range, RangeInclusive};

use proptest::prelude::*;

use crate::{
    FloatFormat, SummationOrder, collapse_certain_at, collapse_impossible_below, margin_of,
};

/// A row of logits whose values are all exact in `format`, with its label and exact margin.
#[derive(Debug, Clone, PartialEq)]
pub struct LogitRow {
    /// The format every logit is a value of.
    pub format: FloatFormat,
    /// The logits (f64 holding format values).
    pub logits: Vec<f64>,
    /// The correct class.
    pub label: usize,
    /// `z_label - max_{k != label} z_k`, computed in f64 from the rounded logits.
    pub margin: f64,
}

/// How [`logit_rows`] draws rows.
#[derive(Debug, Clone, PartialEq)]
pub struct LogitRowConfig {
    /// Number of classes, drawn log-uniformly.
    pub classes: RangeInclusive<usize>,
    /// Requested margin of the label over the runner-up (before rounding to the format).
    pub margin: Range<f64>,
    /// Value of the runner-up logit: shifts the whole row.
    pub offset: Range<f64>,
    /// The other logits lie up to `spread` below the runner-up.
    pub spread: f64,
}

impl Default for LogitRowConfig {
    /// 2 to 1024 classes, margins in [0, 40), runner-up in [-8, 8), others within 20 below it.
    fn default() -> Self {
        Self {
            classes: 2..=1024,
            margin: 0.0..40.0,
            offset: -8.0..8.0,
            spread: 20.0,
        }
    }
}

/// Every built-in format.
pub fn float_formats() -> impl Strategy<Value = FloatFormat> {
    prop::sample::select(FloatFormat::ALL.to_vec())
}

/// Sequential, pairwise, burn-ndarray's unrolled, or interleaved with 1 to 64 lanes.
pub fn summation_orders() -> impl Strategy<Value = SummationOrder> {
    prop_oneof![
        Just(SummationOrder::Sequential),
        Just(SummationOrder::Pairwise),
        Just(SummationOrder::Unrolled8),
        (1usize..=64).prop_map(|lanes| SummationOrder::Interleaved { lanes }),
    ]
}

/// Class counts drawn log-uniformly from `range` (so 2..=50304 covers small and vocabulary-sized
/// softmaxes alike); shrinks towards the low end.
///
/// # Panics
/// If `range` holds no count of at least 2; the panic names the caller's line.
#[track_caller]
pub fn class_counts(range: RangeInclusive<usize>) -> impl Strategy<Value = usize> {
    let (lo, hi) = (*range.start().max(&2), *range.end());
    assert!(lo <= hi, "empty class range {lo}..={hi}");
    let (a, b) = ((lo as f64).ln(), ((hi + 1) as f64).ln());
    (a..b).prop_map(move |x| (x.exp() as usize).clamp(lo, hi))
}

/// Rows of logits exact in `format`: one runner-up at `offset`, the label `margin` above it,
/// the rest spread below, the label at a random position.
///
/// # Panics
/// As [`class_counts`] does, for `config.classes`.
#[track_caller]
pub fn logit_rows(format: FloatFormat, config: LogitRowConfig) -> BoxedStrategy<LogitRow> {
    let LogitRowConfig {
        classes,
        margin,
        offset,
        spread,
    } = config;
    (
        class_counts(classes),
        margin,
        offset,
        any::<(f64, f64, u64)>(),
    )
        .prop_map(move |(k, margin, offset, (label_at, runner_at, seed))| {
            build_row(format, k, margin, offset, spread, label_at, runner_at, seed)
        })
        .boxed()
}

/// Rows whose margin sits just below or just above [`collapse_impossible_below`] or
/// [`collapse_certain_at`] for their class count: relative offsets from 1e-8 to 3e-2, where a
/// loss that gets the rounding slightly wrong disagrees with the thresholds. `config.margin` is
/// ignored; the other fields apply as in [`logit_rows`].
///
/// # Panics
/// As [`logit_rows`] does.
#[track_caller]
pub fn logit_rows_near_thresholds(
    format: FloatFormat,
    config: LogitRowConfig,
) -> BoxedStrategy<LogitRow> {
    let LogitRowConfig {
        classes,
        offset,
        spread,
        ..
    } = config;
    (
        class_counts(classes),
        any::<bool>(),
        any::<bool>(),
        -8.0..-1.5f64,
        offset,
        any::<(f64, f64, u64)>(),
    )
        .prop_map(
            move |(k, certain, above, log_rel, offset, (label_at, runner_at, seed))| {
                let anchor = if certain {
                    collapse_certain_at(format, k).expect("k >= 2")
                } else {
                    collapse_impossible_below(format)
                };
                let delta = anchor * 10f64.powf(log_rel);
                let margin = if above {
                    anchor + delta
                } else {
                    anchor - delta
                };
                build_row(format, k, margin, offset, spread, label_at, runner_at, seed)
            },
        )
        .boxed()
}

/// Half [`logit_rows`] (margins uniform in `config.margin`), half
/// [`logit_rows_near_thresholds`]: both the bulk and the edges, which is what a property test
/// of a loss against the thresholds usually wants.
///
/// # Panics
/// As [`logit_rows`] does.
#[track_caller]
pub fn logit_rows_mixed(format: FloatFormat, config: LogitRowConfig) -> BoxedStrategy<LogitRow> {
    prop_oneof![
        logit_rows(format, config.clone()),
        logit_rows_near_thresholds(format, config),
    ]
    .boxed()
}

/// One row: `label_at` and `runner_at` in [0, 1) pick the positions, `seed` the other logits.
#[allow(clippy::too_many_arguments)]
fn build_row(
    format: FloatFormat,
    k: usize,
    margin: f64,
    offset: f64,
    spread: f64,
    label_at: f64,
    runner_at: f64,
    seed: u64,
) -> LogitRow {
    let unit = |x: f64| if x.is_finite() { x.abs().fract() } else { 0.0 };
    let label = ((unit(label_at) * k as f64) as usize).min(k - 1);
    // The runner-up takes one of the other k-1 positions.
    let mut runner = ((unit(runner_at) * (k - 1) as f64) as usize).min(k - 2);
    if runner >= label {
        runner += 1;
    }
    let mut rng = SplitMix64(seed);
    let top = format.round(offset);
    let logits: Vec<f64> = (0..k)
        .map(|i| {
            if i == label {
                format.round(offset + margin)
            } else if i == runner {
                top
            } else {
                // Monotone rounding keeps every other logit at or below the runner-up.
                format.round(offset - spread * rng.next_unit())
            }
        })
        .collect();
    LogitRow {
        format,
        margin: margin_of(&logits, label),
        logits,
        label,
    }
}

/// A tiny deterministic generator, so that a 50k-class row is one `u64` of proptest state.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}
