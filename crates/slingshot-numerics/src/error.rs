//! Errors for values supplied by users of the numerics crate.

use thiserror::Error;

/// What was wrong with a value passed to `slingshot-numerics`, and what is allowed.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum NumericsError {
    /// A softmax needs at least two classes to have any residual mass.
    #[error("a softmax needs at least 2 classes, got {classes} {}", classes_noun(*.classes))]
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
    #[error(
        "label {label} is out of range for {classes} {} (expected 0..{classes})",
        classes_noun(*.classes)
    )]
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

/// "class" for one, "classes" otherwise, so that messages read "got 1 class".
fn classes_noun(count: usize) -> &'static str {
    if count == 1 { "class" } else { "classes" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_counts_are_singular_for_one() {
        let few = |classes| NumericsError::TooFewClasses { classes }.to_string();
        assert_eq!(few(1), "a softmax needs at least 2 classes, got 1 class");
        assert_eq!(few(0), "a softmax needs at least 2 classes, got 0 classes");
        let label = |classes| NumericsError::LabelOutOfRange { label: 3, classes }.to_string();
        assert_eq!(
            label(1),
            "label 3 is out of range for 1 class (expected 0..1)"
        );
        assert_eq!(
            label(3),
            "label 3 is out of range for 3 classes (expected 0..3)"
        );
    }
}
