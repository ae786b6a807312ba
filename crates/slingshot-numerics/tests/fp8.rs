//! The fp8 rounding written here against the published `float8` crate (a port of CUDA's
//! `__nv_cvt_double_to_fp8`), and the thresholds against fp8 arithmetic done with it.
//!
//! The two differ on purpose only in overflow: `float8` saturates (CUDA's `__NV_SATFINITE`),
//! [`FloatFormat::round`] follows the OCP spec's non-saturating conversion (E4M3 -> NaN,
//! E5M2 -> infinity, as PyTorch's `float8_e4m3fn`/`float8_e5m2` casts do), and
//! [`FloatFormat::round_saturating`] matches `float8` exactly.

use float8::{F8E4M3, F8E5M2};
use proptest::prelude::*;
use slingshot_numerics::strategies::{
    LogitRow, LogitRowConfig, logit_rows_mixed, summation_orders,
};
use slingshot_numerics::{
    AbsorptionThresholds, CollapsePrediction, CrossEntropySimulator, FloatFormat, SummationOrder,
};

fn same(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// Every one of the 256 codes decodes to a value our format holds exactly, and the decoded
/// values are exactly the format's values: same count of distinct finite values.
#[test]
fn every_fp8_code_is_a_value_of_the_format() {
    for (format, decode) in [
        (
            FloatFormat::E4M3,
            (|b| F8E4M3::from_bits(b).to_f64()) as fn(u8) -> f64,
        ),
        (FloatFormat::E5M2, |b| F8E5M2::from_bits(b).to_f64()),
    ] {
        let mut finite = Vec::new();
        for code in 0..=255u8 {
            let v = decode(code);
            if v.is_finite() {
                assert!(
                    format.is_representable(v),
                    "{format}: code {code:#04x} = {v}"
                );
                finite.push(v);
            }
        }
        finite.sort_by(f64::total_cmp);
        finite.dedup_by(|a, b| a == b); // +0 and -0 compare equal
        assert_eq!(
            finite.last().copied(),
            Some(format.max_finite()),
            "{format}"
        );
        // 2 * (2^(E+M) minus the codes taken by inf/NaN) - 1 for the shared zero.
        let expected = match format {
            f if f == FloatFormat::E4M3 => 2 * (128 - 1) - 1,
            _ => 2 * (128 - 4) - 1,
        };
        assert_eq!(finite.len(), expected, "{format}");
    }
}

#[test]
fn overflow_semantics_differ_as_documented() {
    assert!(FloatFormat::E4M3.round(1000.0).is_nan());
    assert_eq!(F8E4M3::from_f64(1000.0).to_f64(), 448.0);
    assert_eq!(FloatFormat::E4M3.round_saturating(1000.0), 448.0);
    assert_eq!(FloatFormat::E5M2.round(1e6), f64::INFINITY);
    assert_eq!(F8E5M2::from_f64(1e6).to_f64(), 57344.0);
    assert_eq!(FloatFormat::E5M2.round_saturating(1e6), 57344.0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Round-to-nearest-even of any f64 (ties and subnormals included) agrees with `float8`.
    #[test]
    fn rounding_matches_the_float8_crate(bits in any::<u64>(), scale in -12i32..10) {
        // Random bit patterns are mostly huge or tiny: also draw values near the fp8 range.
        let raw = f64::from_bits(bits);
        let near = (bits as f64 / u64::MAX as f64 - 0.5) * 2f64.powi(scale);
        for x in [raw, near] {
            prop_assert!(same(FloatFormat::E4M3.round_saturating(x), F8E4M3::from_f64(x).to_f64()), "e4m3 {x:e}");
            prop_assert!(same(FloatFormat::E5M2.round_saturating(x), F8E5M2::from_f64(x).to_f64()), "e5m2 {x:e}");
            if x.abs() <= FloatFormat::E4M3.max_finite() {
                prop_assert!(same(FloatFormat::E4M3.round(x), F8E4M3::from_f64(x).to_f64()));
            }
        }
    }
}

/// The softmax denominator computed with `float8`'s own arithmetic (each op: to f32, compute,
/// round to fp8) and `exp` through f32.
fn float8_sum<T: Copy>(
    logits: &[f64],
    order: SummationOrder,
    from: fn(f32) -> T,
    to: fn(T) -> f32,
) -> f64 {
    let z: Vec<T> = logits.iter().map(|&v| from(v as f32)).collect();
    let max = z.iter().map(|&v| to(v)).fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<T> = z
        .iter()
        .map(|&v| from(to(from(to(v) - max)).exp()))
        .collect();
    to(order.sum(&exps, |a, b| from(to(a) + to(b))).unwrap()) as f64
}

fn fp8_case(
    format: FloatFormat,
    row: &LogitRow,
    order: SummationOrder,
    native: f64,
) -> Result<(), TestCaseError> {
    let sim = CrossEntropySimulator::new(format, order)
        .softmax_sum(&row.logits)
        .unwrap();
    prop_assert!(
        same(sim, native),
        "{format} {order}: simulated {sim}, float8 {native}"
    );
    let t = AbsorptionThresholds::new(format, row.logits.len()).unwrap();
    match t.predict(row.margin).unwrap() {
        CollapsePrediction::Impossible if row.margin > 0.0 => prop_assert!(native != 1.0),
        CollapsePrediction::Certain => prop_assert!(native == 1.0),
        _ => {}
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// E4M3 rows stay under 256 classes so the denominator cannot pass 448, where `float8`
    /// would saturate and the OCP conversion gives NaN.
    #[test]
    fn e4m3_sums_obey_the_thresholds(
        row in logit_rows_mixed(FloatFormat::E4M3, LogitRowConfig { classes: 2..=255, margin: 0.5..16.0, offset: -4.0..4.0, spread: 12.0 }),
        order in summation_orders(),
    ) {
        let native = float8_sum(&row.logits, order, F8E4M3::from_f32, |v| v.to_f32());
        fp8_case(FloatFormat::E4M3, &row, order, native)?;
    }

    #[test]
    fn e5m2_sums_obey_the_thresholds(
        row in logit_rows_mixed(FloatFormat::E5M2, LogitRowConfig { classes: 2..=50_304, margin: 0.5..20.0, offset: -4.0..4.0, spread: 12.0 }),
        order in summation_orders(),
    ) {
        let native = float8_sum(&row.logits, order, F8E5M2::from_f32, |v| v.to_f32());
        fp8_case(FloatFormat::E5M2, &row, order, native)?;
    }
}

/// TF32 has no native CPU type: the emulator's sums must still obey the thresholds.
#[test]
fn tf32_sums_obey_the_thresholds() {
    let mut runner = proptest::test_runner::TestRunner::default();
    let rows = logit_rows_mixed(
        FloatFormat::TF32,
        LogitRowConfig {
            classes: 2..=50_304,
            margin: 4.0..20.0,
            offset: -4.0..4.0,
            spread: 12.0,
        },
    );
    runner
        .run(&(rows, summation_orders()), |(row, order)| {
            let sum = CrossEntropySimulator::new(FloatFormat::TF32, order)
                .softmax_sum(&row.logits)
                .unwrap();
            let t = AbsorptionThresholds::new(FloatFormat::TF32, row.logits.len()).unwrap();
            match t.predict(row.margin).unwrap() {
                CollapsePrediction::Impossible if row.margin > 0.0 => prop_assert!(sum != 1.0),
                CollapsePrediction::Certain => prop_assert!(sum == 1.0),
                _ => {}
            }
            Ok(())
        })
        .unwrap();
}
