//! The host-side decisions of the fused CubeCL kernel (`cube.rs`): which plans and dtypes it
//! covers, and its launch geometry. Plain functions, so that they are tested without a GPU.

use burn::tensor::DType;

use crate::kernel::LossPlan;
use crate::{LossPrecision, Normalizer};

/// Fewest units (threads) per cube: one CUDA warp.
pub(crate) const MIN_UNITS: u32 = 32;
/// Most units per cube.
pub(crate) const MAX_UNITS: u32 = 1024;
/// Vector loads each unit should make per pass over a row before the cube grows.
const LOADS_PER_UNIT: usize = 4;
/// Rows of at most this many bytes are read twice by the forward kernel (a max pass, then an
/// exp pass that finds the row in on-chip cache): the terms `exp(z - z_max)` are then exactly
/// the portable kernel's. Longer rows are read once, with an online max and a rescaled sum.
pub(crate) const TWO_PASS_MAX_ROW_BYTES: usize = 16 * 1024;
/// Widest vector load, in bytes.
const MAX_LOAD_BYTES: usize = 16;

/// Rows of the `[ROWS, n]` block the forward kernel writes, in the compute dtype. The first five
/// are the per-row vectors whose means are [`crate::CollapseSummary`]'s first five fields, in
/// that order, so that the batch statistics are one `mean_dim` of the block.
pub(crate) mod row {
    /// 1 where the row is in softmax collapse (sum == 1 and the label is the arg-max), else 0.
    pub(crate) const COLLAPSED: usize = 0;
    /// 1 where the row's loss is exactly zero, else 0.
    pub(crate) const ZERO_LOSS: usize = 1;
    /// `sum_{k != r} exp(z_k - z_max) / S`.
    pub(crate) const RESIDUAL: usize = 2;
    /// `z_r - max_{k != r} z_k`.
    pub(crate) const MARGIN: usize = 3;
    /// `z_max + ln S`.
    pub(crate) const LOG_SUM_EXP: usize = 4;
    /// The row's loss `-((z_r - z_max) - ln S)`.
    pub(crate) const NLL: usize = 5;
    /// `z_max`, for the backward kernel.
    pub(crate) const Z_MAX: usize = 6;
    /// `ln S`, for the backward kernel.
    pub(crate) const LOG_SUM: usize = 7;
    /// `sum_k z_k`, for the batch's mean logit.
    pub(crate) const Z_SUM: usize = 8;
    /// Number of rows of the block.
    pub(crate) const COUNT: usize = 9;
}

/// The dtype the fused kernel computes `plan` in for logits of `logits`, or `None` where the
/// portable kernel must run: StableMax, label smoothing, z-loss, class weights, pad tokens, the
/// bf16/f16 loss precisions,
/// and `Native` precision on bf16/f16 logits (that is bf16/f16 arithmetic, which the fused
/// kernel does not do: it reads low-precision logits and computes in f32 or f64).
pub(crate) fn fused_compute_dtype(plan: &LossPlan, logits: DType) -> Option<DType> {
    if plan.normalizer != Normalizer::Softmax
        || plan.smoothing != 0.0
        || plan.z_loss != 0.0
        || plan.weights.is_some()
        || plan.pad_tokens.is_some()
    {
        return None;
    }
    if !matches!(logits, DType::F64 | DType::F32 | DType::F16 | DType::BF16) {
        return None;
    }
    match plan.precision {
        LossPrecision::Native => matches!(logits, DType::F32 | DType::F64).then_some(logits),
        LossPrecision::F32 => Some(DType::F32),
        LossPrecision::F64 => Some(DType::F64),
        LossPrecision::BF16 | LossPrecision::F16 | LossPrecision::E4M3 | LossPrecision::E5M2 => {
            None
        }
    }
}

/// How one launch covers `[n, k]` logits: one cube per row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    /// Units per cube, a power of two in `[MIN_UNITS, MAX_UNITS]` (or the device's limit).
    pub(crate) units: u32,
    /// Elements per vector load; divides `k`.
    pub(crate) vector_size: usize,
    /// Read each row twice in the forward pass (see [`TWO_PASS_MAX_ROW_BYTES`]).
    pub(crate) two_pass: bool,
    /// Cubes along x and y: `x * y >= n`, one row per cube, extra cubes exit at once.
    pub(crate) cubes: (u32, u32),
}

impl Geometry {
    /// The geometry for `n` rows of `k` logits stored in `elem_bytes` each. `vector_sizes` are
    /// the vector sizes the device loads efficiently for that element size (any order);
    /// `max_units` and `max_cubes` are the device's per-cube unit limit and grid limits.
    pub(crate) fn new(
        n: usize,
        k: usize,
        elem_bytes: usize,
        vector_sizes: impl IntoIterator<Item = usize>,
        max_units: u32,
        max_cubes: (u32, u32),
    ) -> Self {
        assert!(n > 0 && k > 0 && elem_bytes > 0, "a non-empty batch");
        let vector_size = vector_sizes
            .into_iter()
            .filter(|&v| v >= 1 && k.is_multiple_of(v) && v * elem_bytes <= MAX_LOAD_BYTES)
            .max()
            .unwrap_or(1);
        let loads = k / vector_size;
        let cap = floor_pow2(max_units.min(MAX_UNITS)).max(1);
        let wanted = loads.div_ceil(LOADS_PER_UNIT).next_power_of_two();
        let units = (wanted.min(cap as usize) as u32).max(MIN_UNITS.min(cap));
        Self {
            units,
            vector_size,
            two_pass: k * elem_bytes <= TWO_PASS_MAX_ROW_BYTES,
            cubes: cube_grid(n, max_cubes),
        }
    }
}

/// Cubes along x and y for `n` rows: x up to the device limit, y as many as needed.
pub(crate) fn cube_grid(n: usize, (max_x, max_y): (u32, u32)) -> (u32, u32) {
    let x = n.min(max_x.max(1) as usize);
    let y = n.div_ceil(x);
    assert!(
        y <= max_y as usize,
        "{n} rows exceed the device's grid ({max_x} x {max_y} cubes)"
    );
    (x as u32, y as u32)
}

/// The largest power of two `<= x` (`x >= 1`).
fn floor_pow2(x: u32) -> u32 {
    1 << (31 - x.max(1).leading_zeros())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LossReduction as Reduction;

    fn plan() -> LossPlan {
        LossPlan {
            precision: LossPrecision::Native,
            normalizer: Normalizer::Softmax,
            smoothing: 0.0,
            z_loss: 0.0,
            reduction: Reduction::Mean,
            stats: true,
            zero_sum: false,
            portable_only: false,
            weights: None,
            pad_tokens: None,
        }
    }

    /// CUDA's answers: 128-bit loads, 1024 units, a 2^31 - 1 by 65535 grid.
    fn cuda(n: usize, k: usize, bytes: usize) -> Geometry {
        let sizes = (0..=(16 / bytes).trailing_zeros()).map(|i| 1usize << i);
        Geometry::new(n, k, bytes, sizes, 1024, (i32::MAX as u32, 65535))
    }

    #[test]
    fn covered_plans_and_dtypes() {
        let p = plan();
        assert_eq!(fused_compute_dtype(&p, DType::F32), Some(DType::F32));
        assert_eq!(fused_compute_dtype(&p, DType::F64), Some(DType::F64));
        // Native on bf16/f16 logits is bf16/f16 arithmetic: the portable kernel's.
        assert_eq!(fused_compute_dtype(&p, DType::BF16), None);
        assert_eq!(fused_compute_dtype(&p, DType::F16), None);
        for (precision, want) in [
            (LossPrecision::F32, Some(DType::F32)),
            (LossPrecision::F64, Some(DType::F64)),
            (LossPrecision::BF16, None),
            (LossPrecision::F16, None),
        ] {
            let p = LossPlan {
                precision,
                ..plan()
            };
            let p = &p;
            for logits in [DType::F32, DType::F64, DType::BF16, DType::F16] {
                assert_eq!(
                    fused_compute_dtype(p, logits),
                    want,
                    "{precision:?} {logits:?}"
                );
            }
        }
        assert_eq!(fused_compute_dtype(&p, DType::I32), None);
        assert_eq!(fused_compute_dtype(&p, DType::Flex32), None);
    }

    #[test]
    fn uncovered_normalizers_and_terms() {
        let stable = LossPlan {
            normalizer: Normalizer::StableMax,
            ..plan()
        };
        let smoothed = LossPlan {
            smoothing: 0.1,
            ..plan()
        };
        let z = LossPlan {
            z_loss: 1e-4,
            ..plan()
        };
        let weighted = LossPlan {
            weights: Some(vec![1.0, 2.0]),
            ..plan()
        };
        let padded = LossPlan {
            pad_tokens: Some(vec![0]),
            ..plan()
        };
        for p in [stable, smoothed, z, weighted, padded] {
            assert_eq!(fused_compute_dtype(&p, DType::F32), None);
        }
        // Reductions, zero-sum projection and statistics are all covered.
        for reduction in [Reduction::Mean, Reduction::Sum, Reduction::None] {
            for (zero_sum, stats) in [(false, false), (true, true)] {
                let p = LossPlan {
                    reduction,
                    zero_sum,
                    stats,
                    ..plan()
                };
                assert_eq!(fused_compute_dtype(&p, DType::F32), Some(DType::F32));
            }
        }
    }

    #[test]
    fn geometry_of_the_benchmark_shapes() {
        // The modular task: 97 is odd, so scalar loads; one warp per row; read twice.
        let g = cuda(4656, 97, 4);
        assert_eq!((g.units, g.vector_size, g.two_pass), (32, 1, true));
        assert_eq!(g.cubes, (4656, 1));
        // Vocabulary rows: float4 loads, full cubes, one read.
        let g = cuda(8192, 32768, 4);
        assert_eq!((g.units, g.vector_size, g.two_pass), (1024, 4, false));
        let g = cuda(16384, 131072, 4);
        assert_eq!((g.units, g.vector_size, g.two_pass), (1024, 4, false));
        // f64 logits: two per 128-bit load.
        let g = cuda(16, 131072, 8);
        assert_eq!((g.units, g.vector_size), (1024, 2));
        // bf16: eight per load.
        let g = cuda(16, 4096, 2);
        assert_eq!((g.units, g.vector_size, g.two_pass), (128, 8, true));
    }

    #[test]
    fn geometry_edges() {
        // The two-pass threshold is on the stored row's bytes.
        assert!(cuda(1, 4096, 4).two_pass);
        assert!(!cuda(1, 4097, 4).two_pass);
        assert!(cuda(1, 2048, 8).two_pass);
        assert!(!cuda(1, 2049, 8).two_pass);
        // Vector sizes divide k.
        assert_eq!(cuda(1, 98, 4).vector_size, 2);
        assert_eq!(cuda(1, 100, 4).vector_size, 4);
        assert_eq!(cuda(1, 2, 4).vector_size, 2);
        // Units grow with the row, in powers of two, within the limits.
        let units: Vec<u32> = [2, 128, 129, 512, 513, 4096, 16384, 1 << 20]
            .iter()
            .map(|&k| cuda(1, k, 4).units)
            .collect();
        assert_eq!(units, vec![32, 32, 64, 32, 256, 256, 1024, 1024]);
        // A device limit below the default cap, and not a power of two.
        let g = Geometry::new(1, 1 << 20, 4, [4, 2, 1], 768, (65535, 65535));
        assert_eq!(g.units, 512);
        let g = Geometry::new(1, 1 << 20, 4, [4, 2, 1], 16, (65535, 65535));
        assert_eq!(g.units, 16);
        // Vector sizes wider than 16 bytes or not offered are not used.
        assert_eq!(Geometry::new(1, 64, 4, [8, 4], 1024, (1, 1)).vector_size, 4);
        assert_eq!(Geometry::new(1, 64, 4, [2], 1024, (1, 1)).vector_size, 2);
        assert_eq!(Geometry::new(1, 64, 4, [], 1024, (1, 1)).vector_size, 1);
    }

    #[test]
    fn grids_cover_every_row() {
        assert_eq!(cube_grid(1, (65535, 65535)), (1, 1));
        assert_eq!(cube_grid(65535, (65535, 65535)), (65535, 1));
        assert_eq!(cube_grid(65536, (65535, 65535)), (65535, 2));
        assert_eq!(cube_grid(200_000, (65535, 65535)), (65535, 4));
        for n in [1usize, 7, 65535, 65536, 131071, 1 << 20] {
            let (x, y) = cube_grid(n, (65535, 65535));
            assert!((x as usize) * (y as usize) >= n);
            assert!((x as usize) * (y as usize - 1) < n);
        }
    }

    #[test]
    #[should_panic(expected = "exceed the device's grid")]
    fn grids_beyond_the_device_limit_panic() {
        cube_grid(100, (3, 3));
    }

    #[test]
    fn floor_powers_of_two() {
        let got: Vec<u32> = [1, 2, 3, 4, 5, 768, 1024, 1025].map(floor_pow2).to_vec();
        assert_eq!(got, vec![1, 2, 2, 4, 4, 512, 1024, 1024]);
    }
}
