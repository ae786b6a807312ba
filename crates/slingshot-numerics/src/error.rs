//! Errors for values supplied by users of the numerics crate.

use thiserror::Error;

/// What was wrong with a value passed to `slingshot-numerics`, and what is allowed.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum NumericsError {
    /// A softmax needs at least two classes to have any residual mass.
    #[error("class count must be at least 2, got {classes}")]
    TooFewClasses {
        /// The class count that was given.
        classes: usize,
    },
    /// A margin (or another real-valued input) was NaN.
    #[error("{what} must be a number, got NaN")]
    NotANumber {
        /// Which input was NaN.
        what: &'static str,
    },
    /// A format name that [`crate::FloatFormat::from_str`](std::str::FromStr) does not know.
    #[error("unknown float format {name:?}; expected one of: {allowed}")]
    UnknownFormat {
        /// The name that was given.
        name: String,
        /// The accepted names.
        allowed: &'static str,
    },
    /// Exponent or mantissa widths the emulator cannot represent.
    #[error("invalid float format e{exponent_bits}m{mantissa_bits}: {reason}")]
    InvalidFormat {
        /// Exponent field width.
        exponent_bits: u32,
        /// Explicit mantissa (fraction) width.
        mantissa_bits: u32,
        /// What is allowed.
        reason: &'static str,
    },
    /// A label outside `0..classes`.
    #[error("label {label} is out of range for {classes} classes (expected 0..{classes})")]
    LabelOutOfRange {
        /// The label that was given.
        label: usize,
        /// The number of classes.
        classes: usize,
    },
    /// A logit that is NaN or infinite.
    #[error("logit {index} is not finite ({value}); logits must be finite numbers")]
    NonFiniteLogit {
        /// Position of the logit in the row.
        index: usize,
        /// Its value.
        value: f64,
    },
    /// A finite logit too large for the target format.
    #[error("logit {index} = {value} overflows {format} (largest finite value {max})")]
    LogitOverflow {
        /// Position of the logit in the row.
        index: usize,
        /// Its value.
        value: f64,
        /// The format's name.
        format: String,
        /// The format's largest finite value.
        max: f64,
    },
    /// An optimizer hyper-parameter outside its valid range.
    #[error("invalid {name} = {value}: expected {expected}")]
    InvalidHyperParameter {
        /// Which hyper-parameter.
        name: &'static str,
        /// Its value.
        value: f64,
        /// The allowed range, in words.
        expected: &'static str,
    },
}
