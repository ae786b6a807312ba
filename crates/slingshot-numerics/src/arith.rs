//! One arithmetic operation at a time, rounded into a format.

use crate::FloatFormat;

/// Arithmetic whose every result is rounded to one [`FloatFormat`].
///
/// Values are carried as f64 holding format values exactly. `+ - *` are computed in f64 and
/// rounded once; for formats with `p <= 25` this double rounding is provably innocuous
/// (53 >= 2p + 2), so each result is the correctly rounded one, as native hardware gives.
/// `exp` and `ln` are evaluated by the platform's f32 library for formats that fit in f32
/// (as bf16/f16/fp8 kernels do: widen, call `expf`, round) and by f64's for f64, then rounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormatArith {
    format: FloatFormat,
}

impl FormatArith {
    /// Arithmetic rounding into `format`.
    pub const fn new(format: FloatFormat) -> Self {
        Self { format }
    }

    /// The format every result is rounded to.
    pub const fn format(&self) -> FloatFormat {
        self.format
    }

    /// `round(a + b)`.
    pub fn add(&self, a: f64, b: f64) -> f64 {
        self.format.round(a + b)
    }

    /// `round(a - b)`.
    pub fn sub(&self, a: f64, b: f64) -> f64 {
        self.format.round(a - b)
    }

    /// `round(a * b)`.
    pub fn mul(&self, a: f64, b: f64) -> f64 {
        self.format.round(a * b)
    }

    /// `round(exp(x))`, `exp` evaluated in f32 or f64 (see the type docs).
    pub fn exp(&self, x: f64) -> f64 {
        if self.format.computes_in_f32() {
            self.format.round((x as f32).exp() as f64)
        } else {
            self.format.round(x.exp())
        }
    }

    /// `round(ln(x))`, `ln` evaluated in f32 or f64 (see the type docs).
    pub fn ln(&self, x: f64) -> f64 {
        if self.format.computes_in_f32() {
            self.format.round((x as f32).ln() as f64)
        } else {
            self.format.round(x.ln())
        }
    }
}
