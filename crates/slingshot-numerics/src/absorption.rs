//! When does the softmax denominator absorb to exactly 1? Margins for every format.
//!
//! Let `r` be the arg-max, `m_k = z_r - z_k > 0` the margins, and `u = 2^-p` the unit roundoff.
//! The computed denominator is `S = 1 (+) e_1 (+) … (+) e_{K-1}` with `e_k = fl(exp(-m_k))`, in
//! some order. `docs/numerics.md` has the full derivation; in short:
//!
//! * **Impossible.** Rounded addition of non-negative values is monotone, so whichever node of
//!   the summation tree first joins the `1` with the largest term `e*` computes at least
//!   `fl(1 + e*)`, and `fl(1 + e*) > 1` as soon as `e* > u (1 + u)` (the tie at `1 + u` goes to
//!   the even value 1). So if the smallest margin is below [`collapse_impossible_below`], no order
//!   collapses.
//! * **Certain.** If every subtree of small terms that meets the running `1` is at most `u`,
//!   each such addition returns exactly 1. A subtree of `n` terms each at most `e*` computes at
//!   most `n e* (1 + (n-1) u)` in any order (Rump 2012; Jeannerod & Rump 2013: no condition on
//!   `n`), so `(K-1) e* (1 + (K-2) u) <= u` guarantees collapse in every order:
//!   [`collapse_certain_at`], about `p ln 2 + ln(K-1)` for large `p`.
//! * Between the two, the order decides (f32, `[17, 0, 0]`: collapsed if the max is added
//!   first, not if last).
//!
//! Both bounds allow for the rounding of `z_k - z_max` (relative `u`) and of the library `exp`
//! (1 ulp of the type it runs in), so they hold for real kernels, not only for exact `exp`.
//! The paper's `(p-1) ln 2` (15.94 for f32) uses the machine epsilon `2u` instead of `u`: at
//! that margin a single term `e^-15.94 = 2u` still rounds `1 + 2u` up, so collapse is impossible
//! there; the true single-term threshold is `p ln 2` (16.64 for f32).

use crate::{FloatFormat, NumericsError};

const LN_2: f64 = std::f64::consts::LN_2;

/// The paper's threshold `(p-1) ln 2` (Prieto et al.; §3.1): 15.94 for f32, 36.04 for f64.
pub fn paper_threshold(format: FloatFormat) -> f64 {
    (format.precision() - 1) as f64 * LN_2
}

/// Margin below which softmax collapse is impossible in any summation order, for any number
/// of classes: just under `p ln 2` (16.636 for f32, 5.52 for bf16).
pub fn collapse_impossible_below(format: FloatFormat) -> f64 {
    let u = format.unit_roundoff();
    let c = format.compute_unit_roundoff();
    // fl(exp(-m')) > u(1+u) for every m' <= m(1+u) when e^{-m(1+u)} (1-2c) > u(1+u).
    (-u.ln() - u.ln_1p() + (-2.0 * c).ln_1p()) / (1.0 + u)
}

/// Margin at and above which softmax collapse is certain in every summation order with
/// `classes` classes, or `f64::INFINITY` if no margin guarantees it (only for absurd `classes`).
///
/// "Margin" is the lead of the arg-max over every other logit. For f32: 16.64 at K = 2,
/// 21.20 at K = 97, 27.46 at K = 50304.
pub fn collapse_certain_at(format: FloatFormat, classes: usize) -> Result<f64, NumericsError> {
    if classes < 2 {
        return Err(NumericsError::TooFewClasses { classes });
    }
    let u = format.unit_roundoff();
    let c = format.compute_unit_roundoff();
    let s_c = format.compute_min_subnormal();
    let n = (classes - 1) as f64;
    let growth = 1.0 + (n - 1.0) * u;
    // Largest value any wrong-class term can take at margin m: exp evaluated at -m(1-u) (the
    // shift may round the margin down), 1 ulp of library error, then rounded (monotone) to
    // the format.
    let certain = |m: f64| {
        let exact = (-m * (1.0 - u)).exp();
        let widened = (exact * (1.0 + 2.0 * c) + s_c).min(format.max_finite());
        let term = format.round(widened);
        n * term * growth <= u
    };
    let mut hi = 1.0;
    while !certain(hi) {
        hi *= 2.0;
        if hi > 1.0e6 {
            return Ok(f64::INFINITY);
        }
    }
    let mut lo = 0.0;
    // Bisect to adjacent f64 values; `certain` is monotone in m.
    loop {
        let mid = lo + (hi - lo) / 2.0;
        if mid <= lo || mid >= hi {
            return Ok(hi);
        }
        if certain(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
}

/// App. A.1.4's underflow margin: beyond it `exp(-m)` is below the smallest subnormal
/// `2^-(p-1+2^(E-1)-2)`. 149 ln 2 = 103.28 for f32.
pub fn underflow_margin(format: FloatFormat) -> f64 {
    -format.min_positive_subnormal().ln()
}

/// Margin beyond which a wrong-class probability `exp(-m)` rounds to exactly 0 (below half the
/// smallest subnormal; the tie rounds to the even value 0): 150 ln 2 = 103.97 for f32.
pub fn zero_probability_margin(format: FloatFormat) -> f64 {
    underflow_margin(format) + LN_2
}

/// What a margin implies for softmax collapse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CollapsePrediction {
    /// No summation order collapses (or the label is not the unique arg-max).
    Impossible,
    /// Some orders collapse and others do not, depending on the other margins too.
    OrderDependent,
    /// Every summation order collapses.
    Certain,
}

/// The absorption margins of one format and class count, side by side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AbsorptionThresholds {
    /// The format.
    pub format: FloatFormat,
    /// The number of classes.
    pub classes: usize,
    /// The paper's `(p-1) ln 2`.
    pub paper: f64,
    /// Below this margin collapse is impossible ([`collapse_impossible_below`]).
    pub impossible_below: f64,
    /// At or above this margin collapse is certain ([`collapse_certain_at`]).
    pub certain_at: f64,
    /// Exponent underflow of the smallest wrong-class term (App. A.1.4).
    pub underflow: f64,
    /// A wrong-class probability rounds to exactly 0.
    pub zero_probability: f64,
}

impl AbsorptionThresholds {
    /// All margins for `format` with `classes` classes.
    pub fn new(format: FloatFormat, classes: usize) -> Result<Self, NumericsError> {
        Ok(Self {
            format,
            classes,
            paper: paper_threshold(format),
            impossible_below: collapse_impossible_below(format),
            certain_at: collapse_certain_at(format, classes)?,
            underflow: underflow_margin(format),
            zero_probability: zero_probability_margin(format),
        })
    }

    /// Classifies a label margin `z_r - max_{k != r} z_k`.
    ///
    /// Non-positive margins are [`CollapsePrediction::Impossible`]: collapse needs the label to
    /// be the unique arg-max. NaN is an error.
    pub fn predict(&self, margin: f64) -> Result<CollapsePrediction, NumericsError> {
        if margin.is_nan() {
            return Err(NumericsError::NotANumber { what: "margin" });
        }
        Ok(if margin < self.impossible_below {
            CollapsePrediction::Impossible
        } else if margin >= self.certain_at {
            CollapsePrediction::Certain
        } else {
            CollapsePrediction::OrderDependent
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    #[test]
    fn pins_the_papers_numbers() {
        // §3.1: 23 ln 2 ≈ 15.94 (Prieto et al.'s "≈ 16") for f32.
        assert_abs_diff_eq!(paper_threshold(FloatFormat::F32), 15.942, epsilon = 5e-4);
        // App. A.1.4: 149 ln 2 ≈ 103.28.
        assert_abs_diff_eq!(
            underflow_margin(FloatFormat::F32),
            149.0 * LN_2,
            epsilon = 1e-12
        );
        assert_abs_diff_eq!(underflow_margin(FloatFormat::F32), 103.28, epsilon = 5e-3);
        assert_abs_diff_eq!(
            zero_probability_margin(FloatFormat::F32),
            150.0 * LN_2,
            epsilon = 1e-12
        );
        // §4.1: the re-emerged gradient exp(-(p-1) ln 2) = 1.19e-7.
        assert_abs_diff_eq!(
            (-paper_threshold(FloatFormat::F32)).exp(),
            1.19e-7,
            epsilon = 5e-10
        );
    }

    #[test]
    fn thresholds_bracket_p_ln2_and_grow_with_ln_k() {
        for f in FloatFormat::ALL {
            let p_ln2 = f.precision() as f64 * LN_2;
            let imp = collapse_impossible_below(f);
            let two = collapse_certain_at(f, 2).unwrap();
            // The allowances for rounding the shift and exp are about u (p ln 2 + 1); for f64
            // they are below f64's own resolution at 36.7.
            let allowance = 2.0 * f.unit_roundoff() * (p_ln2 + 1.0);
            assert!(
                imp <= p_ln2 && p_ln2 - imp < allowance,
                "{f}: {imp} vs {p_ln2}"
            );
            assert!(imp < two, "{f}");
            assert!(
                paper_threshold(f) < imp,
                "{f}: the paper's figure is one bit low"
            );
            let k97 = collapse_certain_at(f, 97).unwrap();
            assert!(k97 > two, "{f}");
        }
        let f32f = FloatFormat::F32;
        // K = 2: the two thresholds differ only by the rounding allowances.
        let two = collapse_certain_at(f32f, 2).unwrap();
        assert!(two - collapse_impossible_below(f32f) < 1e-5);
        // Large p: certain ≈ p ln 2 + ln(K-1).
        let k = 50_304;
        let cert = collapse_certain_at(f32f, k).unwrap();
        let approx = 24.0 * LN_2 + ((k - 1) as f64).ln();
        assert!(cert > approx && cert - approx < 5e-3, "{cert} vs {approx}");
    }

    #[test]
    fn predictions_and_errors() {
        let t = AbsorptionThresholds::new(FloatFormat::F32, 3).unwrap();
        assert_eq!(t.predict(16.0).unwrap(), CollapsePrediction::Impossible);
        assert_eq!(t.predict(17.0).unwrap(), CollapsePrediction::OrderDependent);
        assert_eq!(t.predict(20.0).unwrap(), CollapsePrediction::Certain);
        assert_eq!(t.predict(-3.0).unwrap(), CollapsePrediction::Impossible);
        assert_eq!(
            t.predict(f64::INFINITY).unwrap(),
            CollapsePrediction::Certain
        );
        assert_eq!(
            t.predict(f64::NAN).unwrap_err(),
            NumericsError::NotANumber { what: "margin" }
        );
        assert_eq!(
            AbsorptionThresholds::new(FloatFormat::F32, 1).unwrap_err(),
            NumericsError::TooFewClasses { classes: 1 }
        );
    }
}
