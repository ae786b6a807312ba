//! Round-to-nearest-even into any [`FloatFormat`], with subnormals and per-format overflow.

use crate::FloatFormat;
use crate::format::{Encoding, pow2};

impl FloatFormat {
    /// Rounds `x` to the nearest value of this format, ties to even, as IEEE 754 conversion does.
    ///
    /// Subnormals are kept (gradual underflow). Values beyond the largest finite value round to
    /// ±infinity in IEEE formats once they pass the half-way point to the next power of two, and
    /// to NaN in E4M3 (which has no infinity). The result is returned as the f64 that holds the
    /// rounded value exactly.
    pub fn round(&self, x: f64) -> f64 {
        if *self == FloatFormat::F64 || x.is_nan() {
            return x;
        }
        if x.is_infinite() {
            return if self.has_infinity() { x } else { f64::NAN };
        }
        let a = x.abs();
        if a == 0.0 {
            return x;
        }
        // Quantum of the binade holding `a`, clamped at the subnormal quantum.
        let e = exponent_of(a).max(self.min_exponent());
        let quantum = pow2(e - self.mantissa_bits() as i32);
        // Division and multiplication by a power of two are exact here.
        let r = (a / quantum).round_ties_even() * quantum;
        let r = if r > self.max_finite() {
            match self.encoding() {
                Encoding::Ieee => f64::INFINITY,
                Encoding::FiniteOnly => f64::NAN,
            }
        } else {
            r
        };
        r.copysign(x)
    }

    /// Like [`FloatFormat::round`], but values beyond the largest finite value (infinities
    /// included) clamp to `±max_finite`, as CUDA's `__NV_SATFINITE` conversions and the
    /// `float8` crate do. NaN stays NaN.
    pub fn round_saturating(&self, x: f64) -> f64 {
        if x.is_nan() {
            return x;
        }
        let max = self.max_finite();
        let r = self.round(x.clamp(-max, max));
        if r.is_nan() { max.copysign(x) } else { r }
    }

    /// Whether `x` is exactly a value of this format.
    pub fn is_representable(&self, x: f64) -> bool {
        let r = self.round(x);
        r == x || (r.is_nan() && x.is_nan())
    }

    /// Gap between `x` (a value of this format) and the next value of larger magnitude.
    pub fn ulp(&self, x: f64) -> f64 {
        let a = x.abs();
        let e = if a == 0.0 {
            self.min_exponent()
        } else {
            exponent_of(a).max(self.min_exponent())
        };
        pow2(e - self.mantissa_bits() as i32)
    }
}

/// `floor(log2(a))` for a finite positive f64, subnormals included.
fn exponent_of(a: f64) -> i32 {
    let bits = a.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    if biased == 0 {
        // Subnormal f64: the leading one sits in the fraction.
        let frac = bits & ((1u64 << 52) - 1);
        -1074 + (63 - frac.leading_zeros() as i32)
    } else {
        biased - 1023
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_rounding_matches_the_native_cast_on_edge_cases() {
        let f = FloatFormat::F32;
        let cases = [
            1.0 + 2f64.powi(-24),                     // tie: stays at 1
            1.0 + 3.0 * 2f64.powi(-24),               // tie: rounds up to even
            1.0 + 2f64.powi(-24) + 2f64.powi(-60),    // just above the tie
            f32::MAX as f64 * (1.0 + 2f64.powi(-25)), // below the overflow midpoint
            f32::MAX as f64 * (1.0 + 2f64.powi(-24)), // at the midpoint: overflows
            2f64.powi(-150),                          // half the smallest subnormal: to 0
            2f64.powi(-150) * 1.5,                    // rounds to the smallest subnormal
            2f64.powi(-149) * 2.5,                    // subnormal tie: to even (2)
            -3.3e-39,
            1e-300,
            -1e300,
            0.1,
            -0.0,
        ];
        for x in cases {
            let expect = x as f32 as f64;
            let got = f.round(x);
            assert!(
                got == expect && got.is_sign_negative() == expect.is_sign_negative(),
                "round({x:e}) = {got:e}, native gives {expect:e}"
            );
        }
    }

    #[test]
    fn e4m3_overflows_to_nan_and_e5m2_to_infinity() {
        let e4 = FloatFormat::E4M3;
        assert_eq!(e4.round(448.0), 448.0);
        assert_eq!(e4.round(464.0), 448.0); // tie between 448 and the NaN slot: to even
        assert!(e4.round(465.0).is_nan());
        assert!(e4.round(f64::INFINITY).is_nan());
        assert_eq!(e4.round(2f64.powi(-10)), 0.0); // tie at half the smallest subnormal
        assert_eq!(e4.round(1.5 * 2f64.powi(-10)), 2f64.powi(-9));
        let e5 = FloatFormat::E5M2;
        assert_eq!(e5.round(57344.0), 57344.0);
        assert_eq!(e5.round(61439.0), 57344.0);
        assert_eq!(e5.round(61440.0), f64::INFINITY);
        assert_eq!(e5.round(-1e9), f64::NEG_INFINITY);
        assert_eq!(e4.round_saturating(1e9), 448.0);
        assert_eq!(e5.round_saturating(f64::NEG_INFINITY), -57344.0);
        assert_eq!(FloatFormat::F32.round_saturating(1e300), f32::MAX as f64);
        assert_eq!(e4.round_saturating(3.3), 3.25);
    }

    #[test]
    fn rounding_is_idempotent_and_representable() {
        for f in FloatFormat::ALL {
            for x in [0.3, 1.0 / 3.0, 7.77, 1e-5, 123.456, -2.5e-3] {
                let r = f.round(x);
                assert_eq!(f.round(r), r, "{f}: {x}");
                assert!(f.is_representable(r));
            }
        }
    }

    #[test]
    fn ulp_is_the_gap_to_the_next_value() {
        let b = FloatFormat::BF16;
        assert_eq!(b.ulp(1.0), 2f64.powi(-7));
        assert_eq!(b.round(1.0 + b.ulp(1.0)), 1.0 + 2f64.powi(-7));
        assert_eq!(FloatFormat::F32.ulp(0.0), 2f64.powi(-149));
    }
}
