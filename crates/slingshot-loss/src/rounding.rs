//! Native computation, or emulation of a narrower format by rounding every intermediate.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use slingshot_numerics::{FloatFormat, FormatArith, SummationOrder};

/// How each intermediate of the loss is rounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rounding {
    /// The backend computes in the loss dtype itself.
    Native,
    /// Values are stored as f32 and rounded to `format` after every operation on the host, and
    /// row sums add in burn-ndarray's order with every partial rounded: what a kernel in that
    /// format would compute, on a backend that has no such dtype.
    Emulated(FloatFormat),
}

impl Rounding {
    /// Rounds every element (emulation), or returns `x` (native).
    pub(crate) fn apply<B: Backend, const D: usize>(self, x: Tensor<B, D>) -> Tensor<B, D> {
        match self {
            Rounding::Native => x,
            Rounding::Emulated(format) => {
                let (shape, device, dtype) = (x.shape(), x.device(), x.dtype());
                let values: Vec<f32> = host_values(x)
                    .into_iter()
                    .map(|v| format.round(v as f64) as f32)
                    .collect();
                // An explicit dtype: `from_data` would otherwise use the device's process-wide
                // default, which another backend on the same device type may have fixed.
                Tensor::<B, D>::from_data(TensorData::new(values, shape), (&device, dtype))
            }
        }
    }

    /// Sums each row of `[n, k]` into `[n, 1]`.
    pub(crate) fn row_sum<B: Backend>(self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        match self {
            Rounding::Native => x.sum_dim(1),
            Rounding::Emulated(format) => {
                let [n, k] = x.dims();
                let (device, dtype) = (x.device(), x.dtype());
                let arith = FormatArith::new(format);
                let values = host_values(x);
                let sums: Vec<f32> = values
                    .chunks_exact(k)
                    .map(|row| {
                        let row: Vec<f64> = row.iter().map(|&v| v as f64).collect();
                        SummationOrder::Unrolled8
                            .sum(&row, |a, b| arith.add(a, b))
                            .unwrap_or(0.0) as f32
                    })
                    .collect();
                Tensor::<B, 2>::from_data(TensorData::new(sums, [n, 1]), (&device, dtype))
            }
        }
    }

    /// Sums all elements of a vector into a one-element vector.
    pub(crate) fn total<B: Backend>(self, x: Tensor<B, 1>) -> Tensor<B, 1> {
        let [n] = x.dims();
        self.row_sum(x.reshape([1, n])).reshape([1])
    }

    /// The sum over a batch's rows, not yet rounded: native, or (emulated) accumulated in f32
    /// storage, for the caller to round once after dividing. PyTorch's reductions over half
    /// types accumulate in f32 the same way; rounding every partial would overflow FP8 at a
    /// few hundred rows (E4M3's largest value is 448) although the mean is small.
    pub(crate) fn batch_total<B: Backend>(self, x: Tensor<B, 1>) -> Tensor<B, 1> {
        match self {
            Rounding::Native => self.total(x),
            Rounding::Emulated(_) => x.sum(),
        }
    }
}

fn host_values<B: Backend, const D: usize>(x: Tensor<B, D>) -> Vec<f32> {
    x.into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .expect("converted to f32")
}
