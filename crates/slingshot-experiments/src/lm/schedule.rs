//! The learning-rate schedule of App. D Table 4: linear warm-up, then cosine decay to a floor.

/// The learning rate at 0-based `step` of `total`: `peak * (step + 1) / warmup` during the
/// warm-up, then a cosine from `peak` (at the end of the warm-up) down to `min` (at the last
/// step).
pub fn cosine_with_warmup(step: u64, total: u64, warmup: u64, peak: f64, min: f64) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    // Steps after the warm-up, counted so that the last step lands exactly on `min`.
    let decay_steps = total.saturating_sub(warmup).saturating_sub(1);
    if decay_steps == 0 {
        return peak;
    }
    let progress = ((step - warmup) as f64 / decay_steps as f64).min(1.0);
    min + 0.5 * (peak - min) * (1.0 + (std::f64::consts::PI * progress).cos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_up_is_linear_and_reaches_the_peak() {
        assert_eq!(cosine_with_warmup(0, 100, 10, 1e-3, 1e-5), 1e-4);
        assert!((cosine_with_warmup(4, 100, 10, 1e-3, 1e-5) - 5e-4).abs() < 1e-18);
        assert_eq!(cosine_with_warmup(9, 100, 10, 1e-3, 1e-5), 1e-3);
    }

    #[test]
    fn cosine_starts_at_the_peak_and_ends_at_the_floor() {
        assert_eq!(cosine_with_warmup(10, 100, 10, 1e-3, 1e-5), 1e-3);
        assert!((cosine_with_warmup(99, 100, 10, 1e-3, 1e-5) - 1e-5).abs() < 1e-18);
        // Halfway through the decay: the midpoint of peak and floor.
        let mid = cosine_with_warmup(10 + 89 / 2, 100, 10, 1e-3, 1e-5);
        assert!((mid - (1e-3 + 1e-5) / 2.0).abs() < 2e-5, "{mid}");
        // Monotone after the warm-up.
        let lrs: Vec<f64> = (10..100)
            .map(|s| cosine_with_warmup(s, 100, 10, 1e-3, 1e-5))
            .collect();
        assert!(lrs.windows(2).all(|w| w[1] <= w[0]));
    }

    #[test]
    fn no_warm_up_starts_at_the_peak() {
        assert_eq!(cosine_with_warmup(0, 50, 0, 2e-3, 1e-5), 2e-3);
        assert!((cosine_with_warmup(49, 50, 0, 2e-3, 1e-5) - 1e-5).abs() < 1e-18);
    }
}
