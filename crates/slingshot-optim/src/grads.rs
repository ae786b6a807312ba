//! Gradients from one device or several, behind one `remove`, as burn's optimizer adaptor does.

use burn::module::ParamId;
use burn::optim::{GradientsParams, MultiGradientsParams};
use burn::tensor::backend::Backend;
use burn::tensor::{Device, Tensor};

/// The gradients of one step: `Optimizer::step`'s or `Optimizer::step_multi`'s.
pub(crate) enum GradSource {
    Single(GradientsParams),
    Multi(MultiGradientsParams),
}

impl GradSource {
    /// Takes the gradient of `id` and the device the step runs on (the gradient's own; for
    /// several devices, summed onto the one burn picks).
    pub(crate) fn remove<B: Backend, const D: usize>(
        &mut self,
        id: ParamId,
    ) -> Option<(Tensor<B, D>, Device<B>)> {
        match self {
            Self::Single(grads) => grads.remove::<B, D>(id).map(|grad| {
                let device = grad.device();
                (grad, device)
            }),
            Self::Multi(grads) => grads.remove::<B, D>(id),
        }
    }
}
