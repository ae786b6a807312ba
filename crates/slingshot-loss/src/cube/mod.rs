//! The fused kernel for CubeCL backends (burn-cuda, burn-wgpu): one launch per direction.
//!
//! Forward: one cube per row reads the logits (twice for short rows, whose second read hits
//! on-chip cache; once for long rows, with an online max), and writes a `[9, n]` block of per-row
//! values in the compute dtype: the loss, `z_max`, `ln S`, and the statistics. Nothing of size
//! `[n, k]` is written or kept besides the logits themselves. Backward: one cube per row reads the
//! logits once (twice with zero-sum projection), recomputes `q = exp((z - z_max) - ln S)`, and
//! writes the gradient in the logits' dtype. So forward + backward moves 12 bytes per f32 logit
//! (read, read, write).
//!
//! The element operations are the portable kernel's, in its order, so that only the order of
//! the row sums differs (a tree here, burn's reduction there): see `docs/loss.md` for the
//! tolerance. Covered: the softmax normalizer without label smoothing or z-loss, computed in f32
//! or f64, on f32/f64 logits and (precision `F32`/`F64`) bf16/f16 logits; every reduction,
//! zero-sum projection and the statistics. Everything else runs the portable kernel.

mod kernels;

use std::any::TypeId;

use burn::tensor::backend::Backend;
use burn::tensor::{DType, Int, Shape, Tensor, TensorPrimitive};
use burn_cubecl::cubecl::prelude::*;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{CubeBackend, CubeRuntime};

use crate::cube_plan::{Geometry, fused_compute_dtype, row};
use crate::dispatch::{Inputs, same};
use crate::kernel::{Forward, GradParts, LossPlan};
use crate::{CollapseStats, LossError, LossReduction as Reduction};

/// Calls `$try::<B, R>` for each enabled CubeCL runtime `R` (wgpu, cuda) until one takes the
/// inputs; else returns them.
macro_rules! each_runtime {
    ($try:ident::<$B:ty>($logits:ident, $targets:ident, $plan:ident, $need:ident)) => {{
        #[cfg(feature = "wgpu")]
        let ($logits, $targets) =
            match $try::<$B, burn_wgpu::WgpuRuntime>($logits, $targets, $plan, $need) {
                Ok(result) => return Ok(result),
                Err(inputs) => inputs,
            };
        #[cfg(feature = "cuda")]
        let ($logits, $targets) = match $try::<$B, burn_cubecl::cubecl::cuda::CudaRuntime>(
            $logits, $targets, $plan, $need,
        ) {
            Ok(result) => return Ok(result),
            Err(inputs) => inputs,
        };
        Err(($logits, $targets))
    }};
}
pub(crate) use each_runtime;

/// The fused kernel when the logits are a `CubeTensor` of an enabled runtime, the kernel covers
/// the plan and the device has the dtypes; else the inputs back.
pub(crate) fn try_forward<B: Backend>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
    plan: &LossPlan,
    need_grad: bool,
) -> Result<Result<Forward<B>, LossError>, Inputs<B>> {
    each_runtime!(try_runtime::<B>(logits, targets, plan, need_grad))
}

fn try_runtime<B: Backend, R: CubeRuntime>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
    plan: &LossPlan,
    need_grad: bool,
) -> Result<Result<Forward<B>, LossError>, Inputs<B>> {
    let dtype = logits.dtype();
    let device = logits.device();
    let covered = TypeId::of::<B::FloatTensorPrimitive>() == TypeId::of::<CubeTensor<R>>();
    match fused_compute_dtype(plan, dtype) {
        // f64 is optional on CubeCL runtimes; without it the portable kernel gives the error.
        Some(compute)
            if covered
                && crate::kernel::device_has::<B>(&device, dtype)
                && crate::kernel::device_has::<B>(&device, compute) =>
        {
            Ok(Ok(forward::<B, R>(
                logits, targets, plan, compute, need_grad,
            )))
        }
        _ => Err((logits, targets)),
    }
}

/// `Autodiff<X>` over burn's `Wgpu`/`Cuda` backend types, with and without fusion, as one
/// autodiff node (see [`crate::autodiff::known`]).
pub(crate) fn known_autodiff<B: Backend>(
    inputs: Inputs<B>,
    plan: &LossPlan,
) -> Result<Result<crate::dispatch::LossParts<B>, LossError>, Inputs<B>> {
    use crate::autodiff::try_backends;
    use burn::backend::autodiff::checkpoint::strategy::{BalancedCheckpointing, NoCheckpointing};
    use burn_fusion::Fusion;
    #[allow(unused_imports)]
    use half::{bf16, f16};
    #[cfg(feature = "wgpu")]
    type W<F, BT> = CubeBackend<burn_wgpu::WgpuRuntime, F, i32, BT>;
    #[cfg(feature = "wgpu")]
    try_backends!(inputs, plan, B;
        W<f32, u32>, W<f16, u32>, W<f32, u8>,
        Fusion<W<f32, u32>>, Fusion<W<f16, u32>>, Fusion<W<f32, u8>>);
    #[cfg(feature = "cuda")]
    type C<F> = CubeBackend<burn_cubecl::cubecl::cuda::CudaRuntime, F, i32, u8>;
    #[cfg(feature = "cuda")]
    try_backends!(inputs, plan, B;
        C<f32>, C<f16>, C<bf16>, C<f64>,
        Fusion<C<f32>>, Fusion<C<f16>>, Fusion<C<bf16>>);
    Err(inputs)
}

/// What the backward kernel needs: the logits themselves (not `[n, k]` probabilities) and the
/// forward's per-row block.
#[derive(Debug, Clone)]
pub(crate) struct CubeGrad<B: Backend> {
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
    rows: Tensor<B, 2>,
    compute: DType,
    reduction: Reduction,
    zero_sum: bool,
    /// The backward launch for the concrete CubeCL backend `B` is.
    launch: fn(CubeGrad<B>, Tensor<B, 1>) -> Tensor<B, 2>,
}

impl<B: Backend> CubeGrad<B> {
    /// `d loss / d logits` for the upstream gradient of the loss tensor, in the logits' dtype.
    pub(crate) fn gradient(self, upstream: Tensor<B, 1>) -> Tensor<B, 2> {
        (self.launch)(self, upstream)
    }
}

/// The geometry of a launch over `[n, k]` logits stored as `dtype`, on `client`'s device.
fn geometry<R: CubeRuntime>(
    client: &ComputeClient<R>,
    n: usize,
    k: usize,
    dtype: DType,
) -> Geometry {
    let hardware = &client.properties().hardware;
    Geometry::new(
        n,
        k,
        dtype.size(),
        client.io_optimized_vector_sizes(dtype.size()),
        hardware.max_units_per_cube.min(hardware.max_cube_dim.0),
        (hardware.max_cube_count.0, hardware.max_cube_count.1),
    )
}

/// The forward pass on a backend `B` whose tensors are `CubeTensor<R>`; `compute` is
/// [`fused_compute_dtype`]'s answer. The launch works on the primitives; everything around it
/// is `B`'s own ops, so that its booleans and defaults are `B`'s.
fn forward<B: Backend, R: CubeRuntime>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
    plan: &LossPlan,
    compute: DType,
    need_grad: bool,
) -> Forward<B> {
    let [n, k] = logits.dims();
    let logits_dtype = logits.dtype();
    let z: CubeTensor<R> = into_contiguous(same(logits.into_primitive().tensor()));
    let t: CubeTensor<R> = into_contiguous(same(targets.into_primitive()));
    let client = z.client.clone();
    let g = geometry(&client, n, k, logits_dtype);
    let rows = empty_device_contiguous_dtype(
        client.clone(),
        z.device.clone(),
        Shape::new([row::COUNT, n]),
        compute,
    );
    let address = [
        z.required_address_type(),
        t.required_address_type(),
        rows.required_address_type(),
    ]
    .into_iter()
    .max()
    .unwrap_or_default();
    // SAFETY: every index is in bounds: `r < n` rows, `i < k / vector_size` loads per row of a
    // tensor whose row stride is a multiple of the vector size (contiguous, `vector_size` divides
    // `k`), `unit < units` shared slots per reduction; the label is compared, never used as an
    // index.
    unsafe {
        kernels::forward_kernel::launch_unchecked::<R>(
            &client,
            CubeCount::Static(g.cubes.0, g.cubes.1, 1),
            CubeDim::new_1d(g.units),
            address,
            g.vector_size,
            z.clone().into_tensor_arg(),
            t.clone().into_tensor_arg(),
            rows.clone().into_tensor_arg(),
            k,
            InputScalar::new(f32::NEG_INFINITY, compute),
            InputScalar::new(f32::NAN, compute),
            g.units as usize,
            g.two_pass,
            plan.stats,
            [logits_dtype.into(), compute.into(), t.dtype.into()],
        );
    }

    let rows = Tensor::<B, 2>::from_primitive(TensorPrimitive::Float(same(rows)));
    let per_row = |i: usize| rows.clone().narrow(0, i, 1).reshape([n]);
    // The reduction exactly as the portable kernel does it: of the log-probabilities, negated
    // afterwards (so that a sum of zero losses is -0.0).
    let nll = per_row(row::NLL);
    let loss = match plan.reduction {
        Reduction::Mean => {
            let lp = nll.neg().reshape([1, n]);
            (lp.sum_dim(1).reshape([1]) / n as f64).neg()
        }
        Reduction::Sum => nll.neg().reshape([1, n]).sum_dim(1).reshape([1]).neg(),
        Reduction::None => nll,
    };
    let stats = plan.stats.then(|| block_stats(&rows, k));
    let grad = need_grad.then(|| {
        GradParts::Cube(CubeGrad {
            logits: Tensor::from_primitive(TensorPrimitive::Float(same(z))),
            targets: Tensor::from_primitive(same(t)),
            rows,
            compute,
            reduction: plan.reduction,
            zero_sum: plan.zero_sum,
            launch: backward::<B, R>,
        })
    });
    Forward {
        loss: loss.cast(logits_dtype),
        grad,
        stats,
    }
}

/// The statistics from the forward kernel's `[9, n]` per-row block of `k`-class rows.
fn block_stats<B: Backend>(rows: &Tensor<B, 2>, k: usize) -> CollapseStats<B> {
    let [_, n] = rows.dims();
    let per_row = |i: usize| rows.clone().narrow(0, i, 1).reshape([n]);
    let mean_logit = per_row(row::Z_SUM).sum() / (n as f64 * k as f64);
    CollapseStats::from_block(
        rows.clone().narrow(0, 0, 5),
        per_row(row::COLLAPSED).equal_elem(1.0),
        per_row(row::ZERO_LOSS).equal_elem(1.0),
        per_row(row::MARGIN),
        per_row(row::RESIDUAL),
        per_row(row::LOG_SUM_EXP),
        mean_logit,
    )
}

/// The backward launch: the gradient in the logits' dtype.
fn backward<B: Backend, R: CubeRuntime>(
    parts: CubeGrad<B>,
    upstream: Tensor<B, 1>,
) -> Tensor<B, 2> {
    let [n, k] = parts.logits.dims();
    let up: CubeTensor<R> =
        into_contiguous(same(upstream.cast(parts.compute).into_primitive().tensor()));
    let z: CubeTensor<R> = same(parts.logits.into_primitive().tensor());
    let t: CubeTensor<R> = same(parts.targets.into_primitive());
    let rows: CubeTensor<R> = same(parts.rows.into_primitive().tensor());
    let client = z.client.clone();
    let g = geometry(&client, n, k, z.dtype);
    let grad = empty_device_contiguous_dtype(
        client.clone(),
        z.device.clone(),
        Shape::new([n, k]),
        z.dtype,
    );
    let address = [
        z.required_address_type(),
        t.required_address_type(),
        rows.required_address_type(),
        up.required_address_type(),
        grad.required_address_type(),
    ]
    .into_iter()
    .max()
    .unwrap_or_default();
    let dtypes = [z.dtype.into(), parts.compute.into(), t.dtype.into()];
    // SAFETY: as for the forward launch; `upstream` has one value, or one per row when
    // `per_row`, and `grad` has the logits' shape.
    unsafe {
        kernels::backward_kernel::launch_unchecked::<R>(
            &client,
            CubeCount::Static(g.cubes.0, g.cubes.1, 1),
            CubeDim::new_1d(g.units),
            address,
            g.vector_size,
            z.into_tensor_arg(),
            t.into_tensor_arg(),
            rows.into_tensor_arg(),
            up.into_tensor_arg(),
            grad.clone().into_tensor_arg(),
            k,
            g.units as usize,
            parts.reduction == Reduction::None,
            parts.reduction == Reduction::Mean,
            parts.zero_sum,
            dtypes,
        );
    }
    Tensor::from_primitive(TensorPrimitive::Float(same(grad)))
}
