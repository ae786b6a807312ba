//! Which kernel runs, chosen at run time from the concrete backend and tensor types, so that
//! callers need only burn's own bounds (`B: Backend`, `B: AutodiffBackend`).
//!
//! - `Autodiff<X>` over a backend of [`crate::autodiff`]'s list: one autodiff node around the
//!   forward on `X`; any other autodiff backend: the same gradient injected through two
//!   differentiable ops ([`crate::autodiff::injected`]).
//! - On the inner backend: the fused host kernel on burn-ndarray and burn-flex tensors, the
//!   fused CubeCL kernel on `CubeTensor`s (features `wgpu`/`cuda`), the inner `CubeBackend` under
//!   `Fusion`, and the portable kernel on burn's tensor ops everywhere else.

use std::any::{Any, TypeId};
use std::borrow::Cow;

use burn::tensor::backend::Backend;
use burn::tensor::{DType, Int, Tensor, TensorPrimitive};
use burn_flex::FlexTensor;
use burn_ndarray::NdArrayTensor;

use crate::host::{self, HostLogits};
use crate::kernel::{self, Forward, LossPlan};
use crate::{CollapseStats, LossError};

/// The loss value and, when asked for, its statistics.
pub(crate) type LossParts<B> = (Tensor<B, 1>, Option<CollapseStats<B>>);

/// The inputs handed back by a path that does not apply.
pub(crate) type Inputs<B> = (Tensor<B, 2>, Tensor<B, 1, Int>);

/// `x` as a `T` when `A` is `T`, else `x` back: a checked downcast with no `unsafe`.
pub(crate) fn cast<A: 'static, T: 'static>(x: A) -> Result<T, A> {
    if TypeId::of::<A>() != TypeId::of::<T>() {
        return Err(x);
    }
    let boxed: Box<dyn Any> = Box::new(x);
    Ok(*boxed.downcast::<T>().expect("the type ids are equal"))
}

/// [`cast`] where the types are known to be equal (the same backend seen through a bound).
pub(crate) fn same<A: 'static, T: 'static>(x: A) -> T {
    cast(x).unwrap_or_else(|_| unreachable!("the same type under two names"))
}

/// The loss on any backend, autodiff or not.
pub(crate) fn cross_entropy<B: Backend>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
    plan: &LossPlan,
) -> Result<LossParts<B>, LossError> {
    let (logits, targets) = match crate::autodiff::known::<B>(logits, targets, plan) {
        Ok(result) => return result,
        Err(inputs) => inputs,
    };
    if logits.is_require_grad() {
        return crate::autodiff::injected(logits, targets, plan);
    }
    let f = forward::<B>(logits, targets, plan, false)?;
    Ok((f.loss, f.stats))
}

/// The forward computation on a backend's own tensors, keeping what the backward pass needs
/// when `need_grad`: a fused kernel where one covers the plan, the portable kernel elsewhere.
pub(crate) fn forward<B: Backend>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
    plan: &LossPlan,
    need_grad: bool,
) -> Result<Forward<B>, LossError> {
    // Fusion first, even for the portable kernel: burn's fusion compiler has no f64.
    #[cfg(feature = "cubecl")]
    let (logits, targets) = match crate::fusion::try_forward::<B>(logits, targets, plan, need_grad)
    {
        Ok(result) => return result,
        Err(inputs) => inputs,
    };
    if plan.portable_only {
        return kernel::forward::<B>(logits, targets, plan, need_grad);
    }
    let (logits, targets) = match host_forward::<B>(logits, targets, plan, need_grad) {
        Ok(result) => return result,
        Err(inputs) => inputs,
    };
    #[cfg(feature = "cubecl")]
    let (logits, targets) = match crate::cube::try_forward::<B>(logits, targets, plan, need_grad) {
        Ok(result) => return result,
        Err(inputs) => inputs,
    };
    kernel::forward::<B>(logits, targets, plan, need_grad)
}

/// The fused host kernel, when the logits are a burn-ndarray or burn-flex tensor and the kernel
/// covers the plan.
fn host_forward<B: Backend>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
    plan: &LossPlan,
    need_grad: bool,
) -> Result<Result<Forward<B>, LossError>, Inputs<B>> {
    let dtype = logits.dtype();
    let Some(compute) = host::compute_dtype(plan, dtype) else {
        return Err((logits, targets));
    };
    let (dims, device) = (logits.dims(), logits.device());
    let run = |z: HostLogits<'_>, targets| {
        host::forward::<B>(z, targets, dims, device.clone(), plan, compute, need_grad)
    };
    let primitive = logits.into_primitive().tensor();
    let primitive = match cast::<B::FloatTensorPrimitive, NdArrayTensor>(primitive) {
        Ok(t) => {
            let z = match &t {
                NdArrayTensor::F32(a) => HostLogits::F32(host::contiguous(a.view())),
                NdArrayTensor::F64(a) => HostLogits::F64(host::contiguous(a.view())),
                _ => unreachable!("compute_dtype admits only f32/f64 logits"),
            };
            return Ok(run(z, targets));
        }
        Err(p) => p,
    };
    let primitive = match cast::<B::FloatTensorPrimitive, FlexTensor>(primitive) {
        Ok(t) => {
            let t = if t.layout().contiguous_offsets().is_some() {
                t
            } else {
                t.to_contiguous()
            };
            let z = match dtype {
                DType::F32 => HostLogits::F32(Cow::Borrowed(t.as_slice::<f32>().expect("f32"))),
                _ => HostLogits::F64(Cow::Borrowed(t.as_slice::<f64>().expect("f64"))),
            };
            return Ok(run(z, targets));
        }
        Err(p) => p,
    };
    Err((
        Tensor::from_primitive(TensorPrimitive::Float(primitive)),
        targets,
    ))
}
