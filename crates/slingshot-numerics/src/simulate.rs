//! What a cross-entropy computes when every operation rounds to one format.

use crate::{FloatFormat, FormatArith, NumericsError, SummationOrder};

/// Simulates PyTorch's (and burn's) max-subtracted `log_softmax` + NLL for one row of logits,
/// with every intermediate rounded to `format` and the softmax denominator summed in `order`.
///
/// The operation sequence, each step rounded:
/// `s_k = z_k - z_max`, `e_k = exp(s_k)`, `S = sum_k e_k` (in `order`), `L = ln S`,
/// `lp_k = s_k - L`, loss `= -lp_r`, gradient `g_k = exp(lp_k) - [k == r]`,
/// log-sum-exp `= z_max + L`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrossEntropySimulator {
    format: FloatFormat,
    order: SummationOrder,
}

/// The outcome of [`CrossEntropySimulator::simulate`]: every value is a value of the format.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulatedCrossEntropy {
    /// The format the computation rounded to.
    pub format: FloatFormat,
    /// The summation order of the denominator.
    pub order: SummationOrder,
    /// The logits after rounding to the format.
    pub logits: Vec<f64>,
    /// The label (correct class).
    pub label: usize,
    /// `z_max`.
    pub max_logit: f64,
    /// The softmax denominator `S = sum_k exp(z_k - z_max)`; exactly 1 under softmax collapse.
    pub softmax_sum: f64,
    /// `z_max + ln S`.
    pub log_sum_exp: f64,
    /// `-log_softmax(z)_r`.
    pub loss: f64,
    /// `d loss / d z_k = softmax_k - onehot_k`, per class (sum reduction over one row).
    pub gradient: Vec<f64>,
}

impl CrossEntropySimulator {
    /// A simulator for `format`, summing the denominator in `order`.
    pub const fn new(format: FloatFormat, order: SummationOrder) -> Self {
        Self { format, order }
    }

    /// The format every operation rounds to.
    pub const fn format(&self) -> FloatFormat {
        self.format
    }

    /// The summation order of the denominator.
    pub const fn order(&self) -> SummationOrder {
        self.order
    }

    /// Rounds `logits` to the format, rejecting rows that are too short, non-finite or overflow.
    pub fn round_logits(&self, logits: &[f64]) -> Result<Vec<f64>, NumericsError> {
        if logits.len() < 2 {
            return Err(NumericsError::TooFewClasses {
                classes: logits.len(),
            });
        }
        logits
            .iter()
            .enumerate()
            .map(|(index, &value)| {
                if !value.is_finite() {
                    return Err(NumericsError::NonFiniteLogit { index, value });
                }
                let r = self.format.round(value);
                if r.is_finite() {
                    Ok(r)
                } else {
                    Err(NumericsError::LogitOverflow {
                        index,
                        value,
                        format: self.format.name().into_owned(),
                        max: self.format.max_finite(),
                    })
                }
            })
            .collect()
    }

    /// The softmax denominator alone, `S = sum_k exp(z_k - z_max)` as the format computes it.
    pub fn softmax_sum(&self, logits: &[f64]) -> Result<f64, NumericsError> {
        let z = self.round_logits(logits)?;
        let a = FormatArith::new(self.format);
        Ok(self.denominator(&a, &z).1)
    }

    fn denominator(&self, a: &FormatArith, z: &[f64]) -> (Vec<f64>, f64) {
        let z_max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let shifted: Vec<f64> = z.iter().map(|&v| a.sub(v, z_max)).collect();
        let exps: Vec<f64> = shifted.iter().map(|&s| a.exp(s)).collect();
        let sum = self
            .order
            .sum(&exps, |x, y| a.add(x, y))
            .expect("at least two logits");
        (shifted, sum)
    }

    /// Runs the whole forward and backward of one row with label `label`.
    pub fn simulate(
        &self,
        logits: &[f64],
        label: usize,
    ) -> Result<SimulatedCrossEntropy, NumericsError> {
        let z = self.round_logits(logits)?;
        if label >= z.len() {
            return Err(NumericsError::LabelOutOfRange {
                label,
                classes: z.len(),
            });
        }
        let a = FormatArith::new(self.format);
        let max_logit = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let (shifted, softmax_sum) = self.denominator(&a, &z);
        let log_sum = a.ln(softmax_sum);
        let log_probs: Vec<f64> = shifted.iter().map(|&s| a.sub(s, log_sum)).collect();
        let gradient = log_probs
            .iter()
            .enumerate()
            .map(|(k, &lp)| {
                let p = a.exp(lp);
                if k == label { a.sub(p, 1.0) } else { p }
            })
            .collect();
        Ok(SimulatedCrossEntropy {
            format: self.format,
            order: self.order,
            max_logit,
            softmax_sum,
            log_sum_exp: a.add(max_logit, log_sum),
            loss: -log_probs[label],
            gradient,
            label,
            logits: z,
        })
    }
}

impl SimulatedCrossEntropy {
    /// The correct-class gradient `softmax_r - 1`; exactly 0 under softmax collapse.
    pub fn correct_class_gradient(&self) -> f64 {
        self.gradient[self.label]
    }

    /// Margin `z_r - max_{k != r} z_k` of the rounded logits, computed in f64.
    pub fn margin(&self) -> f64 {
        margin_of(&self.logits, self.label)
    }

    /// Whether the label holds the largest logit (ties included).
    pub fn label_is_argmax(&self) -> bool {
        self.logits[self.label] == self.max_logit
    }

    /// Softmax collapse: the denominator is exactly 1 and the label is the arg-max.
    pub fn is_collapsed(&self) -> bool {
        self.softmax_sum == 1.0 && self.label_is_argmax()
    }

    /// The row's gradient summed in f64: 0 in exact arithmetic, `epsilon` under collapse.
    pub fn gradient_sum(&self) -> f64 {
        self.gradient.iter().sum()
    }

    /// Residual mass `epsilon = sum_{k != r} p_k` in f64 from the rounded logits: what the
    /// probabilities of the wrong classes are in exact arithmetic.
    pub fn exact_residual_mass(&self) -> f64 {
        let weights: Vec<f64> = self
            .logits
            .iter()
            .map(|&z| (z - self.max_logit).exp())
            .collect();
        let total: f64 = weights.iter().sum();
        let wrong: f64 = weights
            .iter()
            .enumerate()
            .filter(|&(k, _)| k != self.label)
            .map(|(_, w)| w)
            .sum();
        wrong / total
    }
}

/// `z_r - max_{k != r} z_k` in f64.
///
/// # Panics
/// If `label` is not an index of `logits`; the panic names the caller's line.
#[track_caller]
pub fn margin_of(logits: &[f64], label: usize) -> f64 {
    let runner_up = logits
        .iter()
        .enumerate()
        .filter(|&(k, _)| k != label)
        .map(|(_, &z)| z)
        .fold(f64::NEG_INFINITY, f64::max);
    logits[label] - runner_up
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32_seq() -> CrossEntropySimulator {
        CrossEntropySimulator::new(FloatFormat::F32, SummationOrder::Sequential)
    }

    /// The values burn 0.21 and PyTorch report for logits `[m, 0, 0]`, target 0, in f32.
    #[test]
    fn reproduces_the_f32_anchor_values() {
        let r = f32_seq().simulate(&[16.0, 0.0, 0.0], 0).unwrap();
        assert!(!r.is_collapsed());
        assert_eq!(r.loss as f32, 2.384_185_5e-7);
        assert_eq!(r.correct_class_gradient() as f32, -2.384_185_8e-7);
        for (m, wrong) in [(17.0, 4.14e-8), (20.0, 2.06e-9), (30.0, 9.36e-14)] {
            let r = f32_seq().simulate(&[m, 0.0, 0.0], 0).unwrap();
            assert!(r.is_collapsed(), "m = {m}");
            assert_eq!(r.loss, 0.0);
            assert_eq!(r.correct_class_gradient(), 0.0);
            approx::assert_relative_eq!(r.gradient[1], wrong, max_relative = 2e-3);
            // The zero-sum constraint is broken by exactly the wrong-class mass.
            assert_eq!(r.gradient_sum(), r.gradient[1] + r.gradient[2]);
        }
    }

    #[test]
    fn order_decides_between_the_thresholds() {
        // Two terms of e^-17 = 4.1e-8 each: absorbed one at a time into 1 (max first), but
        // pooled to 8.3e-8 > u = 5.96e-8 when added before the 1 (max last).
        let first = f32_seq().simulate(&[17.0, 0.0, 0.0], 0).unwrap();
        let last = f32_seq().simulate(&[0.0, 0.0, 17.0], 2).unwrap();
        assert!(first.is_collapsed());
        assert!(!last.is_collapsed());
        assert_eq!(last.softmax_sum, 1.0 + f32::EPSILON as f64);
    }

    #[test]
    fn f64_does_not_collapse_where_f32_does() {
        let sim = CrossEntropySimulator::new(FloatFormat::F64, SummationOrder::Pairwise);
        let r = sim.simulate(&[20.0, 0.0, 0.0], 0).unwrap();
        assert!(!r.is_collapsed());
        approx::assert_relative_eq!(
            r.correct_class_gradient(),
            -2.0 * (-20f64).exp(),
            max_relative = 1e-9
        );
        approx::assert_relative_eq!(
            r.exact_residual_mass(),
            2.0 * (-20f64).exp(),
            max_relative = 1e-9
        );
    }

    #[test]
    fn bad_rows_are_rejected_with_what_was_wrong() {
        let sim = f32_seq();
        assert_eq!(
            sim.simulate(&[1.0], 0).unwrap_err(),
            NumericsError::TooFewClasses { classes: 1 }
        );
        assert_eq!(
            sim.simulate(&[1.0, 2.0], 2).unwrap_err(),
            NumericsError::LabelOutOfRange {
                label: 2,
                classes: 2
            }
        );
        assert!(matches!(
            sim.simulate(&[1.0, f64::NAN], 0).unwrap_err(),
            NumericsError::NonFiniteLogit { index: 1, .. }
        ));
        let fp8 = CrossEntropySimulator::new(FloatFormat::E4M3, SummationOrder::Sequential);
        let err = fp8.simulate(&[1000.0, 0.0], 0).unwrap_err();
        assert!(err.to_string().contains("overflows e4m3"), "{err}");
    }
}
