//! The absorption thresholds and the simulator against real rounding: native `f32`/`f64`
//! operations and `half`'s `bf16`/`f16`, over random margins, class counts (2..=50304),
//! summation orders and label positions.

use half::{bf16, f16};
use proptest::prelude::*;
use slingshot_numerics::strategies::{
    LogitRow, LogitRowConfig, logit_rows_mixed, summation_orders,
};
use slingshot_numerics::{
    AbsorptionThresholds, CollapsePrediction, CrossEntropySimulator, FloatFormat, SummationOrder,
};

/// A native type with its own rounding: the reference the emulator must agree with.
trait Native: Copy + PartialEq + std::fmt::Debug {
    const FORMAT: FloatFormat;
    fn from_f64(x: f64) -> Self;
    fn to_f64(self) -> f64;
    fn add(self, b: Self) -> Self;
    fn sub(self, b: Self) -> Self;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
}

/// Rust's own floats: every operation is the hardware's, `exp`/`ln` the platform libm's.
macro_rules! native_float {
    ($t:ty, $fmt:expr) => {
        impl Native for $t {
            const FORMAT: FloatFormat = $fmt;
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn add(self, b: Self) -> Self {
                self + b
            }
            fn sub(self, b: Self) -> Self {
                self - b
            }
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
        }
    };
}
native_float!(f32, FloatFormat::F32);
native_float!(f64, FloatFormat::F64);

/// `half`'s types: arithmetic through f32 and one rounding, transcendentals via f32's libm,
/// exactly what a bf16/f16 kernel on a CPU does.
macro_rules! native_half {
    ($t:ty, $fmt:expr) => {
        impl Native for $t {
            const FORMAT: FloatFormat = $fmt;
            fn from_f64(x: f64) -> Self {
                <$t>::from_f64(x)
            }
            fn to_f64(self) -> f64 {
                <$t>::to_f64(self)
            }
            fn add(self, b: Self) -> Self {
                self + b
            }
            fn sub(self, b: Self) -> Self {
                self - b
            }
            fn exp(self) -> Self {
                <$t>::from_f32(self.to_f32().exp())
            }
            fn ln(self) -> Self {
                <$t>::from_f32(self.to_f32().ln())
            }
        }
    };
}
native_half!(bf16, FloatFormat::BF16);
native_half!(f16, FloatFormat::F16);

/// Native max-subtracted log-softmax + NLL of one row, written out op by op.
struct NativeRow<T> {
    sum: T,
    loss: T,
    log_sum_exp: T,
    gradient: Vec<T>,
}

fn native_row<T: Native>(logits: &[f64], label: usize, order: SummationOrder) -> NativeRow<T> {
    let z: Vec<T> = logits.iter().map(|&v| T::from_f64(v)).collect();
    let max = z
        .iter()
        .copied()
        .fold(z[0], |a, b| if b.to_f64() > a.to_f64() { b } else { a });
    let shifted: Vec<T> = z.iter().map(|&v| v.sub(max)).collect();
    let exps: Vec<T> = shifted.iter().map(|&s| s.exp()).collect();
    let sum = order.sum(&exps, T::add).unwrap();
    let log_sum = sum.ln();
    let log_probs: Vec<T> = shifted.iter().map(|&s| s.sub(log_sum)).collect();
    let one = T::from_f64(1.0);
    let gradient = log_probs
        .iter()
        .enumerate()
        .map(|(k, &lp)| {
            if k == label {
                lp.exp().sub(one)
            } else {
                lp.exp()
            }
        })
        .collect();
    NativeRow {
        sum,
        loss: T::from_f64(-log_probs[label].to_f64()),
        log_sum_exp: max.add(log_sum),
        gradient,
    }
}

/// Native denominator only (cheaper, for the threshold checks on 50k-class rows).
fn native_sum<T: Native>(logits: &[f64], order: SummationOrder) -> f64 {
    let z: Vec<T> = logits.iter().map(|&v| T::from_f64(v)).collect();
    let max = z
        .iter()
        .copied()
        .fold(z[0], |a, b| if b.to_f64() > a.to_f64() { b } else { a });
    let exps: Vec<T> = z.iter().map(|&v| v.sub(max).exp()).collect();
    order.sum(&exps, T::add).unwrap().to_f64()
}

/// The threshold prediction for `row` must hold for the native sum in `order`.
fn check_prediction(row: &LogitRow, sum: f64, order: SummationOrder) -> Result<(), TestCaseError> {
    let t = AbsorptionThresholds::new(row.format, row.logits.len()).unwrap();
    match t.predict(row.margin).unwrap() {
        // A non-positive margin means the label is not the unique arg-max: no collapse by
        // definition, though the denominator of the true arg-max may still be 1.
        CollapsePrediction::Impossible if row.margin <= 0.0 => {}
        CollapsePrediction::Impossible => prop_assert!(
            sum != 1.0,
            "{}: margin {} < {} yet the sum is exactly 1 ({order}, K = {})",
            row.format,
            row.margin,
            t.impossible_below,
            row.logits.len()
        ),
        CollapsePrediction::Certain => prop_assert!(
            sum == 1.0,
            "{}: margin {} >= {} yet the sum is {sum} ({order}, K = {})",
            row.format,
            row.margin,
            t.certain_at,
            row.logits.len()
        ),
        CollapsePrediction::OrderDependent => {}
    }
    Ok(())
}

/// Rows for `format` with up to 50304 classes: half with margins drawn uniformly from
/// `margins`, half within a relative 3e-2 of one of the two thresholds.
fn rows_near_threshold(
    format: FloatFormat,
    margins: std::ops::Range<f64>,
) -> BoxedStrategy<LogitRow> {
    let config = LogitRowConfig {
        classes: 2..=50_304,
        margin: margins,
        offset: -4.0..4.0,
        spread: 12.0,
    };
    logit_rows_mixed(format, config)
}

fn threshold_case<T: Native>(row: &LogitRow, order: SummationOrder) -> Result<(), TestCaseError> {
    let native = native_sum::<T>(&row.logits, order);
    check_prediction(row, native, order)?;
    // The emulator must agree bit for bit with the native type.
    let sim = CrossEntropySimulator::new(T::FORMAT, order)
        .softmax_sum(&row.logits)
        .unwrap();
    prop_assert_eq!(sim.to_bits(), native.to_bits(), "{} {}", T::FORMAT, order);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn f32_sums_obey_the_thresholds(row in rows_near_threshold(FloatFormat::F32, 12.0..34.0), order in summation_orders()) {
        threshold_case::<f32>(&row, order)?;
    }

    #[test]
    fn f64_sums_obey_the_thresholds(row in rows_near_threshold(FloatFormat::F64, 30.0..50.0), order in summation_orders()) {
        threshold_case::<f64>(&row, order)?;
    }

    #[test]
    fn bf16_sums_obey_the_thresholds(row in rows_near_threshold(FloatFormat::BF16, 3.0..20.0), order in summation_orders()) {
        threshold_case::<bf16>(&row, order)?;
    }

    #[test]
    fn f16_sums_obey_the_thresholds(row in rows_near_threshold(FloatFormat::F16, 4.0..20.0), order in summation_orders()) {
        threshold_case::<f16>(&row, order)?;
    }
}

/// Unstructured rows: any scale, any label, to compare the whole forward and backward.
fn random_rows() -> impl Strategy<Value = (Vec<f64>, usize, SummationOrder)> {
    (2usize..300, -3.0f64..3.0, summation_orders()).prop_flat_map(|(k, log_scale, order)| {
        let scale = 10f64.powf(log_scale);
        (
            prop::collection::vec(-1.0f64..1.0, k)
                .prop_map(move |v| v.iter().map(|x| x * scale).collect::<Vec<_>>()),
            0..k,
            Just(order),
        )
    })
}

fn full_row_case<T: Native>(
    (logits, label, order): &(Vec<f64>, usize, SummationOrder),
) -> Result<(), TestCaseError> {
    let logits: Vec<f64> = logits.iter().map(|&v| T::FORMAT.round(v)).collect();
    let native = native_row::<T>(&logits, *label, *order);
    let sim = CrossEntropySimulator::new(T::FORMAT, *order)
        .simulate(&logits, *label)
        .unwrap();
    prop_assert_eq!(sim.softmax_sum.to_bits(), native.sum.to_f64().to_bits());
    prop_assert_eq!(sim.loss.to_bits(), native.loss.to_f64().to_bits());
    prop_assert_eq!(
        sim.log_sum_exp.to_bits(),
        native.log_sum_exp.to_f64().to_bits()
    );
    for (k, (s, n)) in sim.gradient.iter().zip(&native.gradient).enumerate() {
        prop_assert_eq!(s.to_bits(), n.to_f64().to_bits(), "class {}", k);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn simulator_matches_native_f32_log_softmax_bit_for_bit(case in random_rows()) {
        full_row_case::<f32>(&case)?;
    }

    #[test]
    fn simulator_matches_native_f64_log_softmax_bit_for_bit(case in random_rows()) {
        full_row_case::<f64>(&case)?;
    }

    #[test]
    fn simulator_matches_half_bf16_and_f16_bit_for_bit(case in random_rows()) {
        full_row_case::<bf16>(&case)?;
        full_row_case::<f16>(&case)?;
    }

    /// `FloatFormat::round` is the native cast: f64 to f32 for any f64, and f32 to bf16/f16
    /// for any f32 (`half`'s conversions from f32 round to nearest even; its conversions from
    /// f64 do not: bf16 ignores the low 32 bits and f16 goes through f32 on x86).
    #[test]
    fn rounding_matches_native_casts(bits in any::<u64>()) {
        let same = |a: f64, b: f64| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
        let x = f64::from_bits(bits);
        prop_assert!(same(FloatFormat::F32.round(x), x as f32 as f64));
        let y = f32::from_bits((bits >> 32) as u32);
        prop_assert!(same(FloatFormat::F16.round(y as f64), f16::from_f32(y).to_f64()));
        prop_assert!(same(FloatFormat::BF16.round(y as f64), bf16::from_f32(y).to_f64()));
    }
}

/// The threshold properties above are only as strong as the rows they see: every prediction
/// (impossible, order-dependent, certain) must be drawn often, for every format tested.
#[test]
fn threshold_strategies_cover_every_prediction() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    for (format, margins) in [
        (FloatFormat::F32, 12.0..34.0),
        (FloatFormat::F64, 30.0..50.0),
        (FloatFormat::BF16, 3.0..20.0),
        (FloatFormat::F16, 4.0..20.0),
    ] {
        let strategy = rows_near_threshold(format, margins);
        let mut runner = TestRunner::deterministic();
        let mut counts = [0usize; 3];
        for _ in 0..400 {
            let row = strategy.new_tree(&mut runner).unwrap().current();
            let t = AbsorptionThresholds::new(format, row.logits.len()).unwrap();
            counts[match t.predict(row.margin).unwrap() {
                CollapsePrediction::Impossible => 0,
                CollapsePrediction::OrderDependent => 1,
                CollapsePrediction::Certain => 2,
            }] += 1;
        }
        assert!(counts.iter().all(|&c| c >= 40), "{format}: {counts:?}");
    }
}

/// The file where `f` panicked. The hook records only this thread's panics and passes the
/// others on, because the tests of this binary run in parallel and share one hook.
fn panic_file(f: impl FnOnce()) -> String {
    use std::panic::{self, AssertUnwindSafe, PanicHookInfo};
    use std::sync::{Arc, Mutex};
    type Hook = dyn Fn(&PanicHookInfo<'_>) + Send + Sync;
    let me = std::thread::current().id();
    let seen = Arc::new(Mutex::new(None));
    let previous: Arc<Hook> = Arc::from(panic::take_hook());
    let (record, others) = (Arc::clone(&seen), Arc::clone(&previous));
    panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() == me {
            *record.lock().unwrap() = info.location().map(|l| l.file().to_string());
        } else {
            others(info);
        }
    }));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    panic::set_hook(Box::new(move |info| previous(info)));
    assert!(result.is_err(), "expected a panic");
    seen.lock().unwrap().take().expect("the hook saw the panic")
}

/// The panicking forms carry `#[track_caller]`: their panics name the caller's file, not
/// slingshot-numerics'.
#[test]
fn panics_name_the_callers_file() {
    use slingshot_numerics::margin_of;
    use slingshot_numerics::strategies::class_counts;
    let config = LogitRowConfig {
        classes: 0..=1,
        ..LogitRowConfig::default()
    };
    let files = [
        panic_file(|| drop(class_counts(0..=1))),
        panic_file(|| drop(logit_rows_mixed(FloatFormat::F32, config))),
        panic_file(|| {
            let _ = margin_of(&[1.0, 2.0], 2);
        }),
    ];
    for file in files {
        assert_eq!(file, file!());
    }
}
