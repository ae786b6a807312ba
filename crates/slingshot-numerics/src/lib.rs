//! Floating-point formats, absorption thresholds and a rounding simulator for softmax collapse.
//!
//! This crate is the arithmetic behind slingshot, in plain Rust with no burn dependency:
//!
//! * [`FloatFormat`]: f64, f32, TF32, bf16, f16 and the OCP FP8 formats E4M3 and E5M2, with
//!   their precision, epsilon, unit roundoff and range, and [`FloatFormat::round`] into each.
//! * Absorption margins ([`AbsorptionThresholds`]): below [`collapse_impossible_below`] no
//!   summation order makes the softmax denominator exactly 1, at [`collapse_certain_at`] every
//!   order does; the paper's `(p-1) ln 2` and the underflow margins are given beside them.
//! * [`CrossEntropySimulator`]: what the softmax sum, log-sum-exp, loss and gradient of one row
//!   come out as when every operation rounds to a format, summed in a chosen
//!   [`SummationOrder`].
//! * Adam arithmetic ([`AdamHyper`], [`estimate_reemergence_update`]): the effective learning
//!   rate, its ceiling `lr/eps`, and the §4.1 estimate of the update at gradient re-emergence.
//! * With the `proptest` feature, [`strategies`] for property-testing your own losses.
//!
//! ```
//! use slingshot_numerics::{AbsorptionThresholds, CrossEntropySimulator, FloatFormat, SummationOrder};
//!
//! let t = AbsorptionThresholds::new(FloatFormat::F32, 3)?;
//! assert!(t.impossible_below > 16.63 && t.certain_at < 17.4);
//! let sim = CrossEntropySimulator::new(FloatFormat::F32, SummationOrder::Sequential);
//! let row = sim.simulate(&[20.0, 0.0, 0.0], 0)?;
//! assert!(row.is_collapsed());
//! assert_eq!(row.correct_class_gradient(), 0.0); // the correct class gets no gradient…
//! assert!(row.gradient[1] > 0.0); // …while the wrong classes still do: zero-sum is broken.
//! # Ok::<(), slingshot_numerics::NumericsError>(())
//! ```

#![warn(missing_docs)]

mod absorption;
mod adam;
mod arith;
mod error;
mod format;
mod order;
mod round;
mod simulate;
#[cfg(feature = "proptest")]
pub mod strategies;

pub use absorption::{
    AbsorptionThresholds, CollapsePrediction, collapse_certain_at, collapse_impossible_below,
    paper_threshold, underflow_margin, zero_probability_margin,
};
pub use adam::{
    AdamHyper, BiasCorrection, ReemergenceEstimate, effective_lr, estimate_reemergence_update,
};
pub use arith::FormatArith;
pub use error::NumericsError;
pub use format::{Encoding, FloatFormat};
pub use order::SummationOrder;
pub use simulate::{CrossEntropySimulator, SimulatedCrossEntropy, margin_of};
