//! Host-side statistics of the probe, computed in f64 from values read back once.

use serde::{Deserialize, Serialize};

use crate::histogram::{LogBins, UpdateHistogram};

/// Adam's effective learning rate `lr / (sqrt(v_hat) + eps)` over the entries of a tensor (or
/// of the whole model), with `v_hat = v / (1 - beta_2^t)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EffectiveLrStats {
    /// Smallest entry.
    pub min: f64,
    /// Median entry (the mean of the two middle entries for an even count).
    pub median: f64,
    /// Largest entry.
    pub max: f64,
    /// The ceiling `lr / eps`, reached as `v_hat -> 0`.
    pub ceiling: f64,
    /// Fraction of entries within 10% of the ceiling (`>= 0.9 lr / eps`): parameters whose
    /// gradient has been tiny or zero for long enough that any returning gradient is amplified.
    pub near_ceiling_fraction: f64,
    /// Number of entries.
    pub count: usize,
}

/// Magnitudes of the step's parameter changes `|lr * update|`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateStats {
    /// Mean magnitude (f64 over the f32 values).
    pub mean: f64,
    /// Largest magnitude.
    pub max: f64,
    /// Magnitudes in the configured log-spaced bins.
    pub histogram: UpdateHistogram,
}

/// Adam's hyper-parameters as the probe evaluates them: f64 of the f32 values Adam used.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct HostAdam {
    pub(crate) lr: f64,
    pub(crate) beta_2: f64,
    pub(crate) epsilon: f64,
}

impl HostAdam {
    /// The effective learning rate of each entry of a second moment `v` after `time` steps.
    pub(crate) fn effective_lrs(
        &self,
        v: impl IntoIterator<Item = f64>,
        time: usize,
    ) -> impl Iterator<Item = f64> {
        let t = i32::try_from(time).unwrap_or(i32::MAX);
        let bias_correction = 1.0 - self.beta_2.powi(t);
        let (lr, eps) = (self.lr, self.epsilon);
        v.into_iter()
            .map(move |v| lr / ((v / bias_correction).sqrt() + eps))
    }

    pub(crate) fn ceiling(&self) -> f64 {
        self.lr / self.epsilon
    }
}

impl EffectiveLrStats {
    /// Statistics of `values` (reordered in place); `None` if empty.
    pub(crate) fn from_values(values: &mut [f64], ceiling: f64) -> Option<Self> {
        let count = values.len();
        if count == 0 {
            return None;
        }
        let (min, max) = values
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
                (lo.min(x), hi.max(x))
            });
        let near = values.iter().filter(|&&x| x >= 0.9 * ceiling).count();
        // Selection, not a sort: O(n) at every read.
        let mid = count / 2;
        let (left, &mut upper, _) = values.select_nth_unstable_by(mid, f64::total_cmp);
        let median = if count % 2 == 1 {
            upper
        } else {
            let lower = left.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            0.5 * (lower + upper)
        };
        Some(Self {
            min,
            median,
            max,
            ceiling,
            near_ceiling_fraction: near as f64 / count as f64,
            count,
        })
    }
}

impl UpdateStats {
    /// Statistics of the magnitudes `values`; `None` if empty.
    pub(crate) fn from_values(values: &[f64], bins: &LogBins) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let sum: f64 = values.iter().map(|x| x.abs()).sum();
        let max = values.iter().map(|x| x.abs()).fold(0.0, f64::max);
        Some(Self {
            mean: sum / values.len() as f64,
            max,
            histogram: bins.histogram(values.iter().copied()),
        })
    }

    /// Pools per-tensor statistics (counts `n`) into whole-model ones.
    pub(crate) fn pool<'a>(parts: impl IntoIterator<Item = (&'a Self, usize)>) -> Option<Self> {
        let mut pooled: Option<(Self, f64, usize)> = None;
        for (part, n) in parts {
            let sum = part.mean * n as f64;
            pooled = Some(match pooled {
                None => (part.clone(), sum, n),
                Some((mut acc, acc_sum, acc_n)) => {
                    acc.max = acc.max.max(part.max);
                    acc.histogram.merge(&part.histogram);
                    (acc, acc_sum + sum, acc_n + n)
                }
            });
        }
        pooled.map(|(mut stats, sum, n)| {
            stats.mean = sum / n as f64;
            stats
        })
    }
}
