//! The loss under autodiff. On `Autodiff<X>` for a backend `X` of [`known`]'s list, the whole
//! loss is one autodiff node whose backward returns PyTorch's log-softmax + NLL gradient in the
//! loss precision, from parts the forward on `X` kept. On any other autodiff backend the same
//! gradient is injected through two differentiable ops ([`injected`]).

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{
    BalancedCheckpointing, CheckpointStrategy, NoCheckpointing,
};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, FloatDType, Int, Tensor, TensorPrimitive};
use burn_flex::Flex;
use burn_ndarray::NdArray;

use crate::dispatch::{self, Inputs, LossParts, cast, same};
use crate::kernel::{GradParts, LossPlan};
use crate::{CollapseStats, LossError, LossReduction};

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

/// The loss as one node on `Autodiff<X, C>`, the forward running on `X`.
fn node<X: Backend, C: CheckpointStrategy>(
    logits: Tensor<Autodiff<X, C>, 2>,
    targets: Tensor<Autodiff<X, C>, 1, Int>,
    plan: &LossPlan,
) -> Result<LossParts<Autodiff<X, C>>, LossError> {
    let logits = logits.into_primitive().tensor();
    let inner_logits =
        Tensor::<X, 2>::from_primitive(TensorPrimitive::Float(logits.primitive.clone()));
    let inner_targets = Tensor::<X, 1, Int>::from_primitive(targets.into_primitive());
    let prep = CollapseCrossEntropyBackward
        .prepare::<C>([logits.node.clone()])
        .compute_bound()
        .stateful();
    let tracked = matches!(prep, OpsKind::Tracked(_));
    let f = dispatch::forward::<X>(inner_logits, inner_targets, plan, tracked)?;
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

/// [`node`] when `B` is `Autodiff<X, C>`, else the inputs back.
pub(crate) fn try_node<B: Backend, X: Backend, C: CheckpointStrategy>(
    (logits, targets): Inputs<B>,
    plan: &LossPlan,
) -> Result<Result<LossParts<B>, LossError>, Inputs<B>> {
    let logits = match cast::<Tensor<B, 2>, Tensor<Autodiff<X, C>, 2>>(logits) {
        Ok(logits) => logits,
        Err(logits) => return Err((logits, targets)),
    };
    let targets = same::<Tensor<B, 1, Int>, Tensor<Autodiff<X, C>, 1, Int>>(targets);
    Ok(node::<X, C>(logits, targets, plan)
        .map(|(loss, stats)| (same(loss), stats.map(same::<_, CollapseStats<B>>))))
}

/// Tries `Autodiff<X>` with either checkpointing strategy for each listed `X`.
macro_rules! try_backends {
    ($inputs:ident, $plan:ident, $B:ty; $($X:ty),+ $(,)?) => {
        $(
            let $inputs = match $crate::autodiff::try_node::<$B, $X, NoCheckpointing>($inputs, $plan) {
                Ok(result) => return Ok(result),
                Err(inputs) => inputs,
            };
            let $inputs = match $crate::autodiff::try_node::<$B, $X, BalancedCheckpointing>($inputs, $plan) {
                Ok(result) => return Ok(result),
                Err(inputs) => inputs,
            };
        )+
    };
}

/// The one-node loss when `B` is `Autodiff<X>` over a listed backend: burn-ndarray and
/// burn-flex, and (features `wgpu`/`cuda`) burn's `Wgpu` and `Cuda` types with and
/// without fusion, in f32, f16 and bf16. Else the inputs back.
pub(crate) fn known<B: Backend>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
    plan: &LossPlan,
) -> Result<Result<LossParts<B>, LossError>, Inputs<B>> {
    let inputs = (logits, targets);
    if !B::ad_enabled(&inputs.0.device()) {
        return Err(inputs);
    }
    try_backends!(inputs, plan, B; NdArray<f32>, NdArray<f64>, Flex);
    #[cfg(feature = "cubecl")]
    let inputs = match crate::cube::known_autodiff::<B>(inputs, plan) {
        Ok(result) => return Ok(result),
        Err(inputs) => inputs,
    };
    Err(inputs)
}

#[cfg_attr(not(feature = "cubecl"), allow(unused_imports))]
pub(crate) use try_backends;

/// The loss on an autodiff backend not in [`known`]'s list: the forward (and the gradient
/// `G` for an upstream of one, in the compute dtype) computed on detached logits, then
/// `loss - (detach(s) - s)` with `s = sum(logits * G)` (per row for `LossReduction::None`). For
/// finite logits its value is the loss exactly (`s - s` is zero, and `x - 0` is `x`, negative
/// zero included; an infinite logit makes `s` and so the loss NaN) and its gradient is
/// `upstream * G` rounded once, the node's gradient for an upstream of one (bit for bit,
/// tested) and within one rounding of it otherwise.
pub(crate) fn injected<B: Backend>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
    plan: &LossPlan,
) -> Result<LossParts<B>, LossError> {
    let f = dispatch::forward::<B>(logits.clone().detach(), targets, plan, true)?;
    let [n, k] = logits.dims();
    let dtype = logits.dtype();
    let ones = Tensor::<B, 1>::ones(f.loss.shape(), (&logits.device(), dtype));
    // `G` before its rounding to the logits' dtype, so that the cast's backward rounds
    // `upstream * G` once, as the node does; at least f32, as a sum of `K` products can
    // overflow a 16-bit float.
    let g = f.grad.expect("asked for the gradient").wide_gradient(ones);
    let wide = match (dtype, g.dtype()) {
        (DType::F64, _) | (_, DType::F64) => FloatDType::F64,
        _ => FloatDType::F32,
    };
    let products = logits.cast(wide) * g.cast(wide);
    // `sum_dim`: burn-candle's `sum` reads storage as its own float element.
    let s = match plan.reduction {
        LossReduction::None => products.sum_dim(1).reshape([n]),
        LossReduction::Mean | LossReduction::Sum => products.reshape([n * k]).sum_dim(0),
    };
    let zero = (s.clone().detach() - s).cast(dtype);
    Ok((f.loss - zero, f.stats))
}
