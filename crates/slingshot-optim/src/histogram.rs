//! Fixed log-spaced bins for update magnitudes (the paper's Fig. 2(a)).

use serde::{Deserialize, Serialize};

use crate::OptimError;

/// `bins` bins between `min` and `max`, equally spaced in `log10`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogBins {
    edges: Vec<f64>,
}

impl LogBins {
    /// Checks `0 < min < max`, both finite, and `bins >= 1`.
    pub fn try_new(min: f64, max: f64, bins: usize) -> Result<Self, OptimError> {
        let bad = |name, value, expected| {
            Err(OptimError::InvalidConfig {
                name,
                value,
                expected,
            })
        };
        if bins == 0 {
            return bad("histogram_bins", 0.0, "at least 1 bin");
        }
        if !(min.is_finite() && min > 0.0) {
            return bad("histogram_min", min, "a finite value > 0");
        }
        if !(max.is_finite() && max > min) {
            return bad("histogram_max", max, "a finite value > histogram_min");
        }
        let (lo, hi) = (min.log10(), max.log10());
        let mut edges: Vec<f64> = (0..=bins)
            .map(|i| 10f64.powf(lo + (hi - lo) * i as f64 / bins as f64))
            .collect();
        // The end points exactly as given, not as `10^log10(x)` rounds them.
        edges[0] = min;
        edges[bins] = max;
        Ok(Self { edges })
    }

    /// The `bins + 1` edges, increasing.
    pub fn edges(&self) -> &[f64] {
        &self.edges
    }

    /// Counts `values` (magnitudes; the sign is ignored).
    pub fn histogram(&self, values: impl IntoIterator<Item = f64>) -> UpdateHistogram {
        let mut histogram = UpdateHistogram {
            edges: self.edges.clone(),
            counts: vec![0; self.edges.len() - 1],
            below: 0,
            above: 0,
            non_finite: 0,
        };
        for value in values {
            histogram.add(value.abs());
        }
        histogram
    }
}

/// Counts of update magnitudes in fixed bins. Every entry lands in exactly one of `counts`,
/// `below`, `above` or `non_finite`, so their sum is the number of entries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateHistogram {
    /// Bin edges, increasing; bin `i` is `[edges[i], edges[i + 1])`.
    pub edges: Vec<f64>,
    /// Entries per bin.
    pub counts: Vec<u64>,
    /// Entries below `edges[0]`, exact zeros included.
    pub below: u64,
    /// Entries at or above the last edge.
    pub above: u64,
    /// NaN or infinite entries.
    pub non_finite: u64,
}

impl UpdateHistogram {
    fn add(&mut self, magnitude: f64) {
        let last = self.edges.len() - 1;
        if !magnitude.is_finite() {
            self.non_finite += 1;
        } else if magnitude < self.edges[0] {
            self.below += 1;
        } else if magnitude >= self.edges[last] {
            self.above += 1;
        } else {
            // The number of edges <= magnitude, minus one, is the bin.
            let bin = self.edges.partition_point(|&e| e <= magnitude) - 1;
            self.counts[bin] += 1;
        }
    }

    /// Adds another histogram with the same edges.
    pub(crate) fn merge(&mut self, other: &Self) {
        debug_assert_eq!(self.edges, other.edges);
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.below += other.below;
        self.above += other.above;
        self.non_finite += other.non_finite;
    }

    /// Every entry counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum::<u64>() + self.below + self.above + self.non_finite
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_are_log_spaced_and_every_value_lands_once() {
        let bins = LogBins::try_new(1e-12, 1.0, 12).unwrap();
        let edges = bins.edges();
        assert_eq!((edges.len(), edges[0], edges[12]), (13, 1e-12, 1.0));
        for (i, e) in edges.iter().enumerate() {
            let expected = 10f64.powi(i as i32 - 12);
            assert!(
                (e - expected).abs() <= 1e-12 * expected,
                "{e} vs {expected}"
            );
        }
        // An edge belongs to the bin above it; the last edge is above the range.
        let values = [
            0.0,
            5e-13,
            1e-12,
            3e-12,
            edges[5],
            -2e-7,
            0.999,
            1.0,
            7.0,
            f64::NAN,
        ];
        let h = bins.histogram(values);
        assert_eq!((h.below, h.above, h.non_finite), (2, 2, 1));
        assert_eq!(h.counts[0], 2);
        // 1e-7 (an edge) and |-2e-7| share bin [1e-7, 1e-6); nothing falls just below it.
        assert_eq!((h.counts[5], h.counts[4]), (2, 0));
        assert_eq!(h.counts[11], 1);
        assert_eq!(h.total(), values.len() as u64);
    }

    #[test]
    fn invalid_bins_are_errors() {
        assert!(LogBins::try_new(1e-12, 1.0, 0).is_err());
        assert!(LogBins::try_new(0.0, 1.0, 3).is_err());
        assert!(LogBins::try_new(1.0, 1.0, 3).is_err());
        assert!(LogBins::try_new(1e-3, f64::INFINITY, 3).is_err());
    }
}
