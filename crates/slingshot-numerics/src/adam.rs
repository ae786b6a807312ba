//! Adam's effective learning rate and the §4.1 estimate of the update at gradient re-emergence.

use crate::NumericsError;

/// Adam's hyper-parameters, validated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamHyper {
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
}

impl AdamHyper {
    /// The §4.1 toy model: lr 1e-3, betas (0.9, 0.95), eps 1e-8.
    pub const PAPER_SECTION_4_1: Self = Self {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
    };

    /// PyTorch's defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8 (burn's default eps is 1e-5).
    pub const PYTORCH_DEFAULT: Self = Self {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
    };

    /// Checks `lr > 0`, `0 <= beta1, beta2 < 1`, `eps > 0`, all finite.
    pub fn try_new(lr: f64, beta1: f64, beta2: f64, eps: f64) -> Result<Self, NumericsError> {
        let bad = |name, value, expected| {
            Err(NumericsError::InvalidHyperParameter {
                name,
                value,
                expected,
            })
        };
        if !(lr.is_finite() && lr > 0.0) {
            return bad("learning rate", lr, "a finite value > 0");
        }
        if !(0.0..1.0).contains(&beta1) {
            return bad("beta1", beta1, "a value in [0, 1)");
        }
        if !(0.0..1.0).contains(&beta2) {
            return bad("beta2", beta2, "a value in [0, 1)");
        }
        if !(eps.is_finite() && eps > 0.0) {
            return bad("eps", eps, "a finite value > 0");
        }
        Ok(Self {
            lr,
            beta1,
            beta2,
            eps,
        })
    }

    /// Learning rate.
    pub const fn lr(&self) -> f64 {
        self.lr
    }
    /// First-moment decay.
    pub const fn beta1(&self) -> f64 {
        self.beta1
    }
    /// Second-moment decay.
    pub const fn beta2(&self) -> f64 {
        self.beta2
    }
    /// Denominator epsilon.
    pub const fn eps(&self) -> f64 {
        self.eps
    }

    /// Effective learning rate `lr / (sqrt(v_hat) + eps)` for a (bias-corrected) second moment.
    pub fn effective_lr(&self, v_hat: f64) -> f64 {
        effective_lr(self.lr, v_hat, self.eps)
    }

    /// The ceiling `lr / eps` the effective learning rate reaches as `v_hat -> 0` (1e5 for the
    /// paper's settings).
    pub fn effective_lr_ceiling(&self) -> f64 {
        self.lr / self.eps
    }
}

/// `lr / (sqrt(v_hat) + eps)`.
pub fn effective_lr(lr: f64, v_hat: f64, eps: f64) -> f64 {
    lr / (v_hat.sqrt() + eps)
}

/// Whether the §4.1 estimate applies Adam's bias correction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BiasCorrection {
    /// The paper's steady-state calculation: the moments before the spike are exactly
    /// `m = g_before`, `v = g_before^2`, and the spike step is not bias-corrected (the limit of
    /// long training, where `1 - beta^t -> 1`).
    None,
    /// Adam as implemented (PyTorch, burn): moments start at zero, `step - 1` steps see
    /// `g_before`, step `step` sees `g_after`, and both moments are divided by `1 - beta^step`.
    AtStep(u64),
}

/// The update of one scalar parameter on the step where its gradient jumps from `g_before`
/// (held for a long time) to `g_after` (§4.1, "Gradient re-emergence and loss spikes").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReemergenceEstimate {
    /// First moment after the spike step (bias-corrected if asked).
    pub m: f64,
    /// Square root of the second moment after the spike step (bias-corrected if asked).
    pub sqrt_v: f64,
    /// The update `lr * m / (sqrt_v + eps)` at the spike step.
    pub update: f64,
    /// The update on the step before, when the gradient was still `g_before`.
    pub update_before: f64,
    /// The effective learning rate on the step before, `lr / (sqrt(v) + eps)`.
    pub effective_lr_before: f64,
    /// The effective learning rate at the spike step.
    pub effective_lr: f64,
}

impl ReemergenceEstimate {
    /// `|update| / |update_before|`: how many times larger the spike update is.
    pub fn amplification(&self) -> f64 {
        (self.update / self.update_before).abs()
    }
}

/// Estimates the update when a gradient re-emerges from `g_before` to `g_after`.
///
/// With the paper's numbers (`AdamHyper::PAPER_SECTION_4_1`, 3e-9 then 1.19e-7, no bias
/// correction): `m = 1.46e-8`, `sqrt(v) = 2.7e-8`, update ≈ 4e-4.
pub fn estimate_reemergence_update(
    hyper: &AdamHyper,
    g_before: f64,
    g_after: f64,
    bias: BiasCorrection,
) -> Result<ReemergenceEstimate, NumericsError> {
    for (name, g) in [("gradient before", g_before), ("gradient after", g_after)] {
        if !g.is_finite() {
            return Err(NumericsError::InvalidHyperParameter {
                name,
                value: g,
                expected: "a finite gradient",
            });
        }
    }
    let (b1, b2, lr, eps) = (hyper.beta1, hyper.beta2, hyper.lr, hyper.eps);
    let (m_prev, v_prev, c1_prev, c2_prev, c1, c2) = match bias {
        BiasCorrection::None => (g_before, g_before * g_before, 1.0, 1.0, 1.0, 1.0),
        BiasCorrection::AtStep(step) => {
            if step < 2 {
                return Err(NumericsError::InvalidHyperParameter {
                    name: "step",
                    value: step as f64,
                    expected: "a step >= 2 (one step before the re-emergence at least)",
                });
            }
            let t = i32::try_from(step).unwrap_or(i32::MAX);
            let (p1, p2) = (b1.powi(t - 1), b2.powi(t - 1));
            (
                (1.0 - p1) * g_before,
                (1.0 - p2) * g_before * g_before,
                1.0 - p1,
                1.0 - p2,
                1.0 - p1 * b1,
                1.0 - p2 * b2,
            )
        }
    };
    let m = (b1 * m_prev + (1.0 - b1) * g_after) / c1;
    let v = (b2 * v_prev + (1.0 - b2) * g_after * g_after) / c2;
    let (m_hat_prev, v_hat_prev) = (m_prev / c1_prev, v_prev / c2_prev);
    Ok(ReemergenceEstimate {
        m,
        sqrt_v: v.sqrt(),
        update: lr * m / (v.sqrt() + eps),
        update_before: lr * m_hat_prev / (v_hat_prev.sqrt() + eps),
        effective_lr_before: effective_lr(lr, v_hat_prev, eps),
        effective_lr: effective_lr(lr, v, eps),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    #[test]
    fn reproduces_the_section_4_1_example() {
        let h = AdamHyper::PAPER_SECTION_4_1;
        let e = estimate_reemergence_update(&h, 3e-9, 1.19e-7, BiasCorrection::None).unwrap();
        // The paper rounds to m = 1.46e-8, sqrt(v) = 2.7e-8, update = 4e-4.
        assert_relative_eq!(e.m, 1.46e-8, max_relative = 1e-3);
        assert_relative_eq!(e.sqrt_v, 2.677e-8, max_relative = 1e-3);
        assert_relative_eq!(e.update, 3.97e-4, max_relative = 2e-3);
        assert!((e.update - 4e-4).abs() / 4e-4 < 0.01);
        assert_relative_eq!(h.effective_lr_ceiling(), 1e5, max_relative = 1e-12);
        // Before the spike the effective LR is already 77% of its ceiling.
        assert_relative_eq!(e.effective_lr_before, 1e-3 / 1.3e-8, max_relative = 1e-12);
    }

    #[test]
    fn bias_correction_converges_to_the_steady_state() {
        let h = AdamHyper::PAPER_SECTION_4_1;
        let none = estimate_reemergence_update(&h, 3e-9, 1.19e-7, BiasCorrection::None).unwrap();
        let late =
            estimate_reemergence_update(&h, 3e-9, 1.19e-7, BiasCorrection::AtStep(10_000)).unwrap();
        assert_relative_eq!(late.update, none.update, max_relative = 1e-12);
        // Early in training the correction shrinks the second moment less than the first.
        let early =
            estimate_reemergence_update(&h, 3e-9, 1.19e-7, BiasCorrection::AtStep(5)).unwrap();
        assert!(early.update.is_finite() && early.update > 0.0);
        assert!((early.update - none.update).abs() > 1e-6);
        // Hand computation at step 2: m1 = 0.1 g_b, v1 = 0.05 g_b^2, then g_a.
        let (gb, ga) = (3e-9, 1.19e-7);
        let m2 = (0.9 * 0.1 * gb + 0.1 * ga) / (1.0 - 0.81);
        let v2 = (0.95 * 0.05 * gb * gb + 0.05 * ga * ga) / (1.0 - 0.9025);
        let two = estimate_reemergence_update(&h, gb, ga, BiasCorrection::AtStep(2)).unwrap();
        assert_relative_eq!(
            two.update,
            1e-3 * m2 / (v2.sqrt() + 1e-8),
            max_relative = 1e-12
        );
        assert_relative_eq!(
            two.update_before,
            1e-3 * gb / (gb + 1e-8),
            max_relative = 1e-12
        );
    }

    #[test]
    fn invalid_values_are_rejected() {
        assert!(AdamHyper::try_new(0.0, 0.9, 0.999, 1e-8).is_err());
        assert!(AdamHyper::try_new(f64::NAN, 0.9, 0.999, 1e-8).is_err());
        assert!(AdamHyper::try_new(1e-3, 1.0, 0.999, 1e-8).is_err());
        assert!(AdamHyper::try_new(1e-3, 0.9, -0.1, 1e-8).is_err());
        let err = AdamHyper::try_new(1e-3, 0.9, 0.999, 0.0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid eps = 0: expected a finite value > 0"
        );
        let h = AdamHyper::PYTORCH_DEFAULT;
        assert!(estimate_reemergence_update(&h, f64::INFINITY, 1.0, BiasCorrection::None).is_err());
        assert!(estimate_reemergence_update(&h, 1.0, 1.0, BiasCorrection::AtStep(1)).is_err());
    }
}
