//! Softmax collapse against the margin, row by row over a run: where rows start to collapse
//! in the loss's precision, to compare with the absorption thresholds (App. A.3.3).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::ExperimentError;

/// Width of one margin bin.
pub const BIN_WIDTH: f64 = 0.25;
/// Bins from margin 0 to 64: past f64's certain-collapse margin at any modulus here.
const BINS: usize = 256;

/// Every logged row of a run, binned by its margin `z_label - max_{k != label} z_k`: how many
/// rows fell in each bin and how many of them were collapsed, plus the extremes that the
/// thresholds bound. Rows whose label is not the arg-max (margin <= 0) cannot collapse and
/// are not binned. Kept in the checkpoint, so a resumed run counts every logged step once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarginHistogram {
    /// Rows per bin (`[i * BIN_WIDTH, (i + 1) * BIN_WIDTH)`; the last bin takes the rest).
    pub rows: Vec<u64>,
    /// Collapsed rows per bin.
    pub collapsed: Vec<u64>,
    /// The smallest margin of any collapsed row.
    pub min_collapsed_margin: Option<f64>,
    /// The largest margin of any row that was not collapsed although its label led.
    pub max_uncollapsed_margin: Option<f64>,
    /// The first logged step with a collapsed row, and that row's (smallest) margin.
    pub first_collapse: Option<(u64, f64)>,
}

impl Default for MarginHistogram {
    fn default() -> Self {
        Self {
            rows: vec![0; BINS],
            collapsed: vec![0; BINS],
            min_collapsed_margin: None,
            max_uncollapsed_margin: None,
            first_collapse: None,
        }
    }
}

impl MarginHistogram {
    /// Counts the rows of one logged step.
    pub fn observe(&mut self, step: u64, margins: &[f64], collapsed: &[bool]) {
        let mut first: Option<f64> = None;
        for (&m, &c) in margins.iter().zip(collapsed) {
            // NaN margins (a diverged row) are skipped with the non-positive ones.
            if m.is_nan() || m <= 0.0 {
                continue;
            }
            let bin = ((m / BIN_WIDTH) as usize).min(BINS - 1);
            self.rows[bin] += 1;
            if c {
                self.collapsed[bin] += 1;
                self.min_collapsed_margin = Some(self.min_collapsed_margin.map_or(m, |v| v.min(m)));
                first = Some(first.map_or(m, |v| v.min(m)));
            } else {
                self.max_uncollapsed_margin =
                    Some(self.max_uncollapsed_margin.map_or(m, |v| v.max(m)));
            }
        }
        if self.first_collapse.is_none() {
            self.first_collapse = first.map(|m| (step, m));
        }
    }

    /// `(bin centre, collapsed fraction)` of every bin with rows.
    pub fn fraction_points(&self) -> Vec<(f64, f64)> {
        (0..BINS)
            .filter(|&i| self.rows[i] > 0)
            .map(|i| {
                let centre = (i as f64 + 0.5) * BIN_WIDTH;
                (centre, self.collapsed[i] as f64 / self.rows[i] as f64)
            })
            .collect()
    }

    /// The lowest bin's lower edge from which at least half the rows are collapsed.
    pub fn half_collapsed_margin(&self) -> Option<f64> {
        (0..BINS)
            .find(|&i| self.rows[i] > 0 && 2 * self.collapsed[i] >= self.rows[i])
            .map(|i| i as f64 * BIN_WIDTH)
    }

    /// Writes `margins.csv`: `margin_low,margin_high,rows,collapsed` for every bin with rows.
    pub fn write_csv(&self, path: &Path) -> Result<(), ExperimentError> {
        let mut text = String::from("margin_low,margin_high,rows,collapsed\n");
        for i in (0..BINS).filter(|&i| self.rows[i] > 0) {
            let (lo, hi) = (i as f64 * BIN_WIDTH, (i + 1) as f64 * BIN_WIDTH);
            let hi = if i == BINS - 1 { f64::INFINITY } else { hi };
            text.push_str(&format!(
                "{lo},{hi},{},{}\n",
                self.rows[i], self.collapsed[i]
            ));
        }
        crate::output::write_atomic(path, text.as_bytes())
    }
}

/// `(bin centre, collapsed fraction)` of every bin in a `margins.csv`.
pub fn read_fraction_points(path: &Path) -> Result<Vec<(f64, f64)>, ExperimentError> {
    let err = |reason: String| ExperimentError::Read {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let mut points = Vec::new();
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        let number = |i: usize| -> Result<f64, ExperimentError> {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .ok_or_else(|| err(format!("bad line {line:?}")))
        };
        let (lo, rows, collapsed) = (number(0)?, number(2)?, number(3)?);
        if rows > 0.0 {
            points.push((lo + BIN_WIDTH / 2.0, collapsed / rows));
        }
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_binned_and_the_extremes_kept() {
        let mut h = MarginHistogram::default();
        h.observe(10, &[-1.0, 0.1, 3.0, 17.0], &[false, false, false, true]);
        h.observe(20, &[16.9, 17.1, 100.0], &[false, true, true]);
        assert_eq!(
            h.rows.iter().sum::<u64>(),
            6,
            "the negative margin is skipped"
        );
        assert_eq!(h.collapsed.iter().sum::<u64>(), 3);
        assert_eq!(
            h.rows[BINS - 1],
            1,
            "past the last edge goes to the last bin"
        );
        assert_eq!(h.min_collapsed_margin, Some(17.0));
        assert_eq!(h.max_uncollapsed_margin, Some(16.9));
        assert_eq!(h.first_collapse, Some((10, 17.0)));
        assert_eq!(h.half_collapsed_margin(), Some(17.0));
        let points = h.fraction_points();
        assert_eq!(points[0], (0.125, 0.0));
        assert!(points.contains(&(17.125, 1.0)));
        let path =
            std::env::temp_dir().join(format!("slingshot-margins-{}.csv", std::process::id()));
        h.write_csv(&path).unwrap();
        assert_eq!(read_fraction_points(&path).unwrap(), points);
        std::fs::remove_file(&path).unwrap();
    }
}
