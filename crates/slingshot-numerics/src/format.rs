//! Binary floating-point formats and their constants.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use crate::NumericsError;

/// How a format uses its all-ones exponent field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// IEEE 754: the all-ones exponent encodes infinities and NaNs; overflow rounds to infinity.
    Ieee,
    /// OCP FP8 "FN" (E4M3): no infinities; the all-ones exponent holds normal numbers except
    /// the all-ones mantissa, which is NaN. Overflow gives NaN.
    FiniteOnly,
}

/// A binary floating-point format: 1 sign bit, `exponent_bits`, `mantissa_bits` stored fraction bits.
///
/// The built-in formats are associated constants ([`FloatFormat::F32`], [`FloatFormat::BF16`], …);
/// [`FloatFormat::try_new`] builds others (FP6, FP4, …) for the emulator.
///
/// Precision `p` counts the implicit leading bit, as in the paper: `p = 24` for f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FloatFormat {
    exponent_bits: u32,
    mantissa_bits: u32,
    encoding: Encoding,
}

/// Names accepted by [`FloatFormat::from_str`], for error messages.
const ALLOWED_NAMES: &str = "f64 (float64, double), f32 (float32, fp32), tf32, bf16 (bfloat16), \
     f16 (float16, fp16, half), e4m3 (fp8-e4m3, e4m3fn), e5m2 (fp8-e5m2)";

impl FloatFormat {
    /// IEEE binary64.
    pub const F64: Self = Self::ieee(11, 52);
    /// IEEE binary32.
    pub const F32: Self = Self::ieee(8, 23);
    /// NVIDIA TensorFloat-32: f32's range with f16's precision.
    pub const TF32: Self = Self::ieee(8, 10);
    /// bfloat16: f32's range, 8 bits of precision.
    pub const BF16: Self = Self::ieee(8, 7);
    /// IEEE binary16.
    pub const F16: Self = Self::ieee(5, 10);
    /// OCP FP8 E4M3 ("E4M3FN"): no infinities, largest finite 448.
    pub const E4M3: Self = Self {
        exponent_bits: 4,
        mantissa_bits: 3,
        encoding: Encoding::FiniteOnly,
    };
    /// OCP FP8 E5M2: IEEE-like, largest finite 57344.
    pub const E5M2: Self = Self::ieee(5, 2);

    /// Every built-in format, widest first.
    pub const ALL: [Self; 7] = [
        Self::F64,
        Self::F32,
        Self::TF32,
        Self::BF16,
        Self::F16,
        Self::E4M3,
        Self::E5M2,
    ];

    const fn ieee(exponent_bits: u32, mantissa_bits: u32) -> Self {
        Self {
            exponent_bits,
            mantissa_bits,
            encoding: Encoding::Ieee,
        }
    }

    /// A custom format for the emulator.
    ///
    /// The emulator computes in f64 and rounds once, which is exact for `+ - * /` only when
    /// `2p + 2 <= 53`; so custom formats take at most 24 mantissa bits (or exactly f64's 11/52),
    /// 2 to 10 exponent bits, and `FiniteOnly` needs at least 1 mantissa bit (its NaN).
    pub fn try_new(
        exponent_bits: u32,
        mantissa_bits: u32,
        encoding: Encoding,
    ) -> Result<Self, NumericsError> {
        let err = |reason| NumericsError::InvalidFormat {
            exponent_bits,
            mantissa_bits,
            reason,
        };
        let candidate = Self {
            exponent_bits,
            mantissa_bits,
            encoding,
        };
        if candidate == Self::F64 {
            return Ok(candidate);
        }
        if !(2..=10).contains(&exponent_bits) {
            return Err(err("exponent bits must be 2..=10 (or exactly f64's 11/52)"));
        }
        if mantissa_bits > 24 {
            return Err(err(
                "mantissa bits must be at most 24 so that f64 arithmetic rounds exactly once",
            ));
        }
        if encoding == Encoding::FiniteOnly && mantissa_bits == 0 {
            return Err(err(
                "a FiniteOnly format needs a mantissa bit to encode NaN",
            ));
        }
        Ok(candidate)
    }

    /// Width of the exponent field, `E`.
    pub const fn exponent_bits(&self) -> u32 {
        self.exponent_bits
    }

    /// Stored fraction bits (without the implicit bit).
    pub const fn mantissa_bits(&self) -> u32 {
        self.mantissa_bits
    }

    /// How the all-ones exponent is used.
    pub const fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Total storage width in bits.
    pub const fn total_bits(&self) -> u32 {
        1 + self.exponent_bits + self.mantissa_bits
    }

    /// Precision `p` in bits, including the implicit leading bit (24 for f32).
    pub const fn precision(&self) -> u32 {
        self.mantissa_bits + 1
    }

    /// Exponent bias `2^(E-1) - 1`.
    pub const fn bias(&self) -> i32 {
        (1 << (self.exponent_bits - 1)) - 1
    }

    /// Smallest normal exponent `1 - bias`.
    pub const fn min_exponent(&self) -> i32 {
        1 - self.bias()
    }

    /// Largest finite exponent: `bias` for IEEE formats, `bias + 1` for E4M3's finite-only encoding.
    pub const fn max_exponent(&self) -> i32 {
        match self.encoding {
            Encoding::Ieee => self.bias(),
            Encoding::FiniteOnly => self.bias() + 1,
        }
    }

    /// Machine epsilon `2^(1-p)`: the gap between 1 and the next larger value.
    pub fn epsilon(&self) -> f64 {
        pow2(1 - self.precision() as i32)
    }

    /// Unit roundoff `u = 2^-p`: the largest relative error of round-to-nearest, and the
    /// largest `x` with `1 + x` rounding to exactly 1 (the tie at `u` goes to even, i.e. to 1).
    pub fn unit_roundoff(&self) -> f64 {
        pow2(-(self.precision() as i32))
    }

    /// Smallest positive normal value `2^emin`.
    pub fn min_positive_normal(&self) -> f64 {
        pow2(self.min_exponent())
    }

    /// Smallest positive subnormal value `2^(emin - (p-1))`.
    pub fn min_positive_subnormal(&self) -> f64 {
        pow2(self.min_exponent() - self.mantissa_bits as i32)
    }

    /// Largest finite value (f32: 3.4028235e38, E4M3: 448, E5M2: 57344).
    pub fn max_finite(&self) -> f64 {
        let top = match self.encoding {
            // 1.11…1 × 2^emax
            Encoding::Ieee => 2.0 - pow2(-(self.mantissa_bits as i32)),
            // 1.11…0 × 2^emax: the all-ones mantissa is NaN.
            Encoding::FiniteOnly => 2.0 - pow2(1 - self.mantissa_bits as i32),
        };
        top * pow2(self.max_exponent())
    }

    /// Whether the format encodes infinities.
    pub const fn has_infinity(&self) -> bool {
        matches!(self.encoding, Encoding::Ieee)
    }

    /// Whether transcendental functions are evaluated in f32 for this format: true for every
    /// format whose values all fit in f32 (as bf16/f16/fp8 GPU kernels do); false for f64.
    pub(crate) const fn computes_in_f32(&self) -> bool {
        self.mantissa_bits <= 23 && self.exponent_bits <= 8
    }

    /// Unit roundoff of the type transcendentals are computed in (f32 or f64).
    pub(crate) fn compute_unit_roundoff(&self) -> f64 {
        if self.computes_in_f32() {
            FloatFormat::F32.unit_roundoff()
        } else {
            FloatFormat::F64.unit_roundoff()
        }
    }

    /// Smallest positive subnormal of the type transcendentals are computed in.
    pub(crate) fn compute_min_subnormal(&self) -> f64 {
        if self.computes_in_f32() {
            FloatFormat::F32.min_positive_subnormal()
        } else {
            FloatFormat::F64.min_positive_subnormal()
        }
    }

    /// A short lower-case name: `f32`, `bf16`, `e4m3`, or `e{E}m{M}` for custom formats.
    pub fn name(&self) -> Cow<'static, str> {
        let known = match *self {
            f if f == Self::F64 => "f64",
            f if f == Self::F32 => "f32",
            f if f == Self::TF32 => "tf32",
            f if f == Self::BF16 => "bf16",
            f if f == Self::F16 => "f16",
            f if f == Self::E4M3 => "e4m3",
            f if f == Self::E5M2 => "e5m2",
            f => {
                let suffix = match f.encoding {
                    Encoding::Ieee => "",
                    Encoding::FiniteOnly => "fn",
                };
                return Cow::Owned(format!("e{}m{}{suffix}", f.exponent_bits, f.mantissa_bits));
            }
        };
        Cow::Borrowed(known)
    }
}

impl fmt::Display for FloatFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for FloatFormat {
    type Err = NumericsError;

    /// Parses a format name, case-insensitively: `f32`, `float32`, `bf16`, `fp8-e4m3`, ….
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.trim().to_ascii_lowercase().replace('_', "-");
        Ok(match name.as_str() {
            "f64" | "float64" | "fp64" | "double" => Self::F64,
            "f32" | "float32" | "fp32" | "float" | "single" => Self::F32,
            "tf32" | "tensorfloat32" | "tensorfloat-32" => Self::TF32,
            "bf16" | "bfloat16" => Self::BF16,
            "f16" | "float16" | "fp16" | "half" => Self::F16,
            "e4m3" | "e4m3fn" | "fp8-e4m3" | "f8e4m3" | "float8-e4m3" | "float8-e4m3fn" => {
                Self::E4M3
            }
            "e5m2" | "fp8-e5m2" | "f8e5m2" | "float8-e5m2" => Self::E5M2,
            _ => {
                return Err(NumericsError::UnknownFormat {
                    name: s.to_string(),
                    allowed: ALLOWED_NAMES,
                });
            }
        })
    }
}

/// `2^e` as an exact f64, for any `e` in f64's range including subnormals.
pub(crate) fn pow2(e: i32) -> f64 {
    if e >= -1022 {
        assert!(e <= 1023, "2^{e} overflows f64");
        f64::from_bits(((e + 1023) as u64) << 52)
    } else {
        assert!(e >= -1074, "2^{e} underflows f64");
        f64::from_bits(1u64 << (e + 1074))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ieee_constants_match_native_types() {
        let f32f = FloatFormat::F32;
        assert_eq!(f32f.precision(), 24);
        assert_eq!(f32f.epsilon(), f32::EPSILON as f64);
        assert_eq!(f32f.min_positive_normal(), f32::MIN_POSITIVE as f64);
        assert_eq!(f32f.min_positive_subnormal(), f32::from_bits(1) as f64);
        assert_eq!(f32f.max_finite(), f32::MAX as f64);
        let f64f = FloatFormat::F64;
        assert_eq!(f64f.precision(), 53);
        assert_eq!(f64f.epsilon(), f64::EPSILON);
        assert_eq!(f64f.min_positive_normal(), f64::MIN_POSITIVE);
        assert_eq!(f64f.min_positive_subnormal(), f64::from_bits(1));
        assert_eq!(f64f.max_finite(), f64::MAX);
        let h = FloatFormat::F16;
        assert_eq!(h.epsilon(), half::f16::EPSILON.to_f64());
        assert_eq!(h.max_finite(), half::f16::MAX.to_f64());
        assert_eq!(h.min_positive_normal(), half::f16::MIN_POSITIVE.to_f64());
        assert_eq!(
            h.min_positive_subnormal(),
            half::f16::MIN_POSITIVE_SUBNORMAL.to_f64()
        );
        let b = FloatFormat::BF16;
        assert_eq!(b.epsilon(), half::bf16::EPSILON.to_f64());
        assert_eq!(b.max_finite(), half::bf16::MAX.to_f64());
        assert_eq!(b.min_positive_normal(), half::bf16::MIN_POSITIVE.to_f64());
        assert_eq!(
            b.min_positive_subnormal(),
            half::bf16::MIN_POSITIVE_SUBNORMAL.to_f64()
        );
    }

    #[test]
    fn fp8_and_tf32_constants_match_the_ocp_and_nvidia_specs() {
        let e4 = FloatFormat::E4M3;
        assert_eq!(e4.max_finite(), 448.0);
        assert_eq!(e4.min_positive_normal(), 2f64.powi(-6));
        assert_eq!(e4.min_positive_subnormal(), 2f64.powi(-9));
        assert_eq!(e4.epsilon(), 0.125);
        assert!(!e4.has_infinity());
        let e5 = FloatFormat::E5M2;
        assert_eq!(e5.max_finite(), 57344.0);
        assert_eq!(e5.min_positive_normal(), 2f64.powi(-14));
        assert_eq!(e5.min_positive_subnormal(), 2f64.powi(-16));
        assert_eq!(e5.epsilon(), 0.25);
        let tf = FloatFormat::TF32;
        assert_eq!(tf.precision(), 11);
        assert_eq!(tf.total_bits(), 19);
        assert_eq!(tf.min_positive_normal(), f32::MIN_POSITIVE as f64);
        assert_eq!(tf.unit_roundoff(), 2f64.powi(-11));
    }

    #[test]
    fn names_round_trip_and_unknown_names_list_the_allowed_ones() {
        for f in FloatFormat::ALL {
            assert_eq!(f.name().parse::<FloatFormat>().unwrap(), f);
        }
        assert_eq!(
            "BFloat16".parse::<FloatFormat>().unwrap(),
            FloatFormat::BF16
        );
        assert_eq!(
            "fp8_e4m3".parse::<FloatFormat>().unwrap(),
            FloatFormat::E4M3
        );
        let err = "fp4".parse::<FloatFormat>().unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("\"fp4\"") && msg.contains("bf16") && msg.contains("e5m2"),
            "{msg}"
        );
    }

    #[test]
    fn custom_formats_are_validated() {
        let fp6 = FloatFormat::try_new(3, 2, Encoding::Ieee).unwrap();
        assert_eq!(fp6.name(), "e3m2");
        assert_eq!(fp6.max_finite(), 1.75 * 8.0);
        assert!(FloatFormat::try_new(1, 2, Encoding::Ieee).is_err());
        assert!(FloatFormat::try_new(8, 30, Encoding::Ieee).is_err());
        assert!(FloatFormat::try_new(4, 0, Encoding::FiniteOnly).is_err());
        assert_eq!(
            FloatFormat::try_new(11, 52, Encoding::Ieee).unwrap(),
            FloatFormat::F64
        );
    }
}
