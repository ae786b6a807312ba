//! The backend extension: one custom autodiff node for the loss on `Autodiff<B>`, the portable
//! forward elsewhere.

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorPrimitive};
use burn_ndarray::{
    FloatNdArrayElement, IntNdArrayElement, NdArray, NdArrayTensor, QuantElement, SharedArray,
};

use crate::host;
use crate::kernel::{self, Forward, GradParts, LossPlan};
use crate::{CollapseStats, LossError};

/// The loss value and, when asked for, its statistics.
pub type LossParts<B> = (Tensor<B, 1>, Option<CollapseStats<B>>);

/// Backends the collapse-aware cross-entropy runs on.
///
/// Implemented for burn-ndarray, CubeCL backends such as burn-cuda (feature `cuda`), and
/// `Autodiff<B>` over any backend, where the whole loss is one autodiff node whose backward
/// returns PyTorch's log-softmax + NLL gradient computed in the loss precision.
pub trait CollapseLossBackend: Backend {
    /// Forward pass without a gradient.
    #[doc(hidden)]
    fn collapse_cross_entropy(
        logits: Tensor<Self, 2>,
        targets: Tensor<Self, 1, Int>,
        plan: &LossPlan,
    ) -> Result<LossParts<Self>, LossError> {
        let f = Self::collapse_forward(logits, targets, plan, false)?;
        Ok((f.loss, f.stats))
    }

    /// The forward computation, keeping what the backward pass needs when `need_grad`. The
    /// default is the portable kernel on burn's tensor ops; a backend with a fused kernel
    /// overrides it.
    #[doc(hidden)]
    fn collapse_forward(
        logits: Tensor<Self, 2>,
        targets: Tensor<Self, 1, Int>,
        plan: &LossPlan,
        need_grad: bool,
    ) -> Result<Forward<Self>, LossError> {
        kernel::forward::<Self>(logits, targets, plan, need_grad)
    }
}

/// burn-ndarray: the fused host kernel where it covers the plan, the portable one elsewhere.
impl<E, I, Q> CollapseLossBackend for NdArray<E, I, Q>
where
    E: FloatNdArrayElement,
    I: IntNdArrayElement,
    Q: QuantElement,
    NdArrayTensor: From<SharedArray<E>> + From<SharedArray<I>>,
{
    fn collapse_forward(
        logits: Tensor<Self, 2>,
        targets: Tensor<Self, 1, Int>,
        plan: &LossPlan,
        need_grad: bool,
    ) -> Result<Forward<Self>, LossError> {
        match host::compute_dtype(plan, logits.dtype()) {
            Some(compute) if !plan.portable_only => {
                let (dims, device) = (logits.dims(), logits.device());
                host::forward::<Self>(
                    logits.into_primitive().tensor(),
                    targets.into_primitive(),
                    dims,
                    device,
                    plan,
                    compute,
                    need_grad,
                )
            }
            _ => kernel::forward::<Self>(logits, targets, plan, need_grad),
        }
    }
}

/// Every CubeCL backend, burn-cuda's included: the fused CubeCL kernel where it covers the plan
/// and the device has the compute dtype, the portable kernel elsewhere.
#[cfg(feature = "cuda")]
impl<R, F, I, BT> CollapseLossBackend for burn_cubecl::CubeBackend<R, F, I, BT>
where
    R: burn_cubecl::CubeRuntime,
    F: burn_cubecl::FloatElement,
    I: burn_cubecl::IntElement,
    BT: burn_cubecl::BoolElement,
{
    fn collapse_forward(
        logits: Tensor<Self, 2>,
        targets: Tensor<Self, 1, Int>,
        plan: &LossPlan,
        need_grad: bool,
    ) -> Result<Forward<Self>, LossError> {
        let dtype = logits.dtype();
        match crate::cube_plan::fused_compute_dtype(plan, dtype) {
            Some(compute)
                if !plan.portable_only
                    && crate::cube::supports::<R, F, I, BT>(&logits.device(), dtype, compute) =>
            {
                Ok(crate::cube::forward(
                    logits, targets, plan, compute, need_grad,
                ))
            }
            _ => kernel::forward::<Self>(logits, targets, plan, need_grad),
        }
    }
}

/// The loss's single backward node: holds the gradient parts computed in the forward pass.
#[derive(Debug)]
struct CollapseCrossEntropyBackward;

impl<B: Backend> Backward<B, 1> for CollapseCrossEntropyBackward {
    type State = GradParts<B>;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let parts = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |upstream| {
            let upstream = Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(upstream));
            parts.gradient(upstream).into_primitive().tensor()
        });
    }
}

impl<B: CollapseLossBackend, C: CheckpointStrategy> CollapseLossBackend for Autodiff<B, C> {
    fn collapse_cross_entropy(
        logits: Tensor<Self, 2>,
        targets: Tensor<Self, 1, Int>,
        plan: &LossPlan,
    ) -> Result<LossParts<Self>, LossError> {
        let logits = logits.into_primitive().tensor();
        let inner_logits =
            Tensor::<B, 2>::from_primitive(TensorPrimitive::Float(logits.primitive.clone()));
        let inner_targets = Tensor::<B, 1, Int>::from_primitive(targets.into_primitive());
        let prep = CollapseCrossEntropyBackward
            .prepare::<C>([logits.node.clone()])
            .compute_bound()
            .stateful();
        let tracked = matches!(prep, OpsKind::Tracked(_));
        let f = B::collapse_forward(inner_logits, inner_targets, plan, tracked)?;
        let loss = f.loss.into_primitive().tensor();
        let output = match prep {
            OpsKind::Tracked(prep) => prep.finish(f.grad.expect("asked for the gradient"), loss),
            OpsKind::UnTracked(prep) => prep.finish(loss),
        };
        Ok((
            Tensor::from_primitive(TensorPrimitive::Float(output)),
            f.stats.map(CollapseStats::lift),
        ))
    }
}
