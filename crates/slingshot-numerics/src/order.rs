//! The order in which a reduction adds its terms.

use std::fmt;
use std::str::FromStr;

/// How the softmax denominator `sum_k exp(z_k - z_max)` is accumulated.
///
/// Rounded addition is not associative, so the order decides whether small terms are absorbed
/// one by one into a running sum that already holds the `1` of the arg-max (collapse) or first
/// pooled into something large enough to survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SummationOrder {
    /// `((x0 + x1) + x2) + …`, left to right in storage order.
    Sequential,
    /// Recursive halving: `sum(x[..n/2]) + sum(x[n/2..])`, the shape of tree reductions.
    Pairwise,
    /// ndarray's `unrolled_fold`, which burn-ndarray's `sum_dim` runs on each contiguous row:
    /// eight accumulators take `x[8i + j]` over the full blocks of eight, are combined as
    /// `(((p0+p4) + (p1+p5)) + (p2+p6)) + (p3+p7)`, then the remaining `< 8` terms are added
    /// left to right. Rows shorter than 8 are summed sequentially.
    Unrolled8,
    /// `lanes` strided accumulators (lane `j` adds `x[j], x[j+lanes], …` in order), then the
    /// lanes are combined pairwise: the shape of SIMD and warp reductions.
    Interleaved {
        /// Number of accumulators (at least 1).
        lanes: usize,
    },
}

impl SummationOrder {
    /// Orders that together cover the extremes and burn-ndarray's own.
    pub const REPRESENTATIVE: [SummationOrder; 4] = [
        SummationOrder::Sequential,
        SummationOrder::Pairwise,
        SummationOrder::Unrolled8,
        SummationOrder::Interleaved { lanes: 32 },
    ];

    /// Sums `values` in this order with the given addition; `None` for an empty slice.
    ///
    /// The addition is a parameter so that the same order can run on native types (`f32`,
    /// `half::bf16`) and on the emulator ([`crate::FormatArith::add`]).
    pub fn sum<T: Clone>(&self, values: &[T], add: impl Fn(T, T) -> T) -> Option<T> {
        if values.is_empty() {
            return None;
        }
        Some(match *self {
            SummationOrder::Sequential => sequential(values, &add),
            SummationOrder::Pairwise => pairwise(values, &add),
            SummationOrder::Unrolled8 => unrolled8(values, &add),
            SummationOrder::Interleaved { lanes } => {
                let lanes = lanes.clamp(1, values.len());
                let partials: Vec<T> = (0..lanes)
                    .map(|lane| {
                        let mut it = values[lane..].iter().step_by(lanes).cloned();
                        let first = it.next().expect("lane < len");
                        it.fold(first, &add)
                    })
                    .collect();
                pairwise(&partials, &add)
            }
        })
    }
}

fn sequential<T: Clone>(values: &[T], add: &impl Fn(T, T) -> T) -> T {
    values[1..]
        .iter()
        .fold(values[0].clone(), |acc, x| add(acc, x.clone()))
}

fn unrolled8<T: Clone>(values: &[T], add: &impl Fn(T, T) -> T) -> T {
    let blocks = values.len() / 8;
    if blocks == 0 {
        return sequential(values, add);
    }
    // ndarray starts every accumulator at +0.0; adding a value to +0.0 is exact, so starting
    // from the first block is the same for every sum but one of only negative zeros.
    let mut p: Vec<T> = values[..8].to_vec();
    for block in values[8..blocks * 8].chunks_exact(8) {
        for (acc, x) in p.iter_mut().zip(block) {
            *acc = add(acc.clone(), x.clone());
        }
    }
    let pair = |a: usize, b: usize| add(p[a].clone(), p[b].clone());
    let mut acc = pair(0, 4);
    acc = add(acc, pair(1, 5));
    acc = add(acc, pair(2, 6));
    acc = add(acc, pair(3, 7));
    values[blocks * 8..]
        .iter()
        .fold(acc, |acc, x| add(acc, x.clone()))
}

fn pairwise<T: Clone>(values: &[T], add: &impl Fn(T, T) -> T) -> T {
    if values.len() == 1 {
        return values[0].clone();
    }
    let mid = values.len() / 2;
    add(pairwise(&values[..mid], add), pairwise(&values[mid..], add))
}

impl fmt::Display for SummationOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SummationOrder::Sequential => f.write_str("sequential"),
            SummationOrder::Pairwise => f.write_str("pairwise"),
            SummationOrder::Unrolled8 => f.write_str("unrolled8"),
            SummationOrder::Interleaved { lanes } => write!(f, "interleaved-{lanes}"),
        }
    }
}

impl FromStr for SummationOrder {
    type Err = String;

    /// `sequential`, `pairwise`, `unrolled8` or `interleaved-N`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "sequential" => Ok(Self::Sequential),
            "pairwise" => Ok(Self::Pairwise),
            "unrolled8" => Ok(Self::Unrolled8),
            _ => s
                .strip_prefix("interleaved-")
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|&n| n >= 1)
                .map(|lanes| Self::Interleaved { lanes })
                .ok_or_else(|| {
                    format!(
                        "unknown summation order {s:?}; expected sequential, pairwise, unrolled8 or interleaved-N (N >= 1)"
                    )
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the tree an order builds, as a string.
    fn shape(order: SummationOrder, n: usize) -> String {
        let leaves: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        order
            .sum(&leaves, |a, b| format!("({a}+{b})"))
            .unwrap_or_default()
    }

    #[test]
    fn orders_build_the_documented_trees() {
        assert_eq!(shape(SummationOrder::Sequential, 4), "(((0+1)+2)+3)");
        assert_eq!(shape(SummationOrder::Pairwise, 5), "((0+1)+(2+(3+4)))");
        assert_eq!(
            shape(SummationOrder::Interleaved { lanes: 2 }, 5),
            "(((0+2)+4)+(1+3))"
        );
        assert_eq!(
            shape(SummationOrder::Interleaved { lanes: 8 }, 3),
            "(0+(1+2))"
        );
        assert_eq!(shape(SummationOrder::Unrolled8, 3), "((0+1)+2)");
        assert_eq!(
            shape(SummationOrder::Unrolled8, 18),
            "(((((((0+8)+(4+12))+((1+9)+(5+13)))+((2+10)+(6+14)))+((3+11)+(7+15)))+16)+17)"
        );
        assert_eq!(
            SummationOrder::Sequential.sum::<f32>(&[], |a, b| a + b),
            None
        );
    }

    #[test]
    fn names_round_trip() {
        for o in SummationOrder::REPRESENTATIVE {
            assert_eq!(o.to_string().parse::<SummationOrder>().unwrap(), o);
        }
        assert!("interleaved-0".parse::<SummationOrder>().is_err());
        assert!("random".parse::<SummationOrder>().is_err());
    }
}
