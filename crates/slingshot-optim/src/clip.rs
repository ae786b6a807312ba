//! Clipping by the global gradient norm, as PyTorch's `clip_grad_norm_` does: every gradient
//! is scaled by `min(1, max_norm / (||g|| + 1e-6))`, where `||g||` is the norm of all the
//! gradients together. burn's `GradientClippingConfig::Norm` clips each parameter's gradient on
//! its own, which is a different transformation.

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};

use crate::OptimError;

/// The global gradient norm of `module`'s parameters in `grads`, on the device (`[1]`, in
/// the gradients' dtype); `None` when no parameter has a gradient.
pub fn global_grad_norm<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    grads: &GradientsParams,
) -> Option<Tensor<B::InnerBackend, 1>> {
    let mut visitor = SquaredNorm::<B> { grads, sum: None };
    module.visit(&mut visitor);
    visitor.sum.map(Tensor::sqrt)
}

/// Clipped gradients and the global norm before clipping (`None` without gradients).
pub type Clipped<B> = (
    GradientsParams,
    Option<Tensor<<B as AutodiffBackend>::InnerBackend, 1>>,
);

/// Scales every gradient of `module`'s parameters in `grads` so that their global norm is at
/// most `max_norm`, returning the clipped gradients and the norm before clipping (on the
/// device: nothing is read back). A non-finite or non-positive `max_norm` is an error.
pub fn clip_grad_norm<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    grads: GradientsParams,
    max_norm: f64,
) -> Result<Clipped<B>, OptimError> {
    if !(max_norm.is_finite() && max_norm > 0.0) {
        return Err(OptimError::InvalidConfig {
            name: "max_norm",
            value: max_norm,
            expected: "a finite value > 0",
        });
    }
    let Some(norm) = global_grad_norm(module, &grads) else {
        return Ok((grads, None));
    };
    // PyTorch's coefficient, clamped to 1 so that small gradients pass unchanged.
    let coefficient = (norm.clone().add_scalar(1e-6).recip() * max_norm).clamp_max(1.0);
    let mut visitor = Scale::<B> {
        grads,
        out: GradientsParams::new(),
        coefficient,
    };
    module.visit(&mut visitor);
    Ok((visitor.out, Some(norm)))
}

struct SquaredNorm<'a, B: AutodiffBackend> {
    grads: &'a GradientsParams,
    sum: Option<Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for SquaredNorm<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.get::<B::InnerBackend, D>(param.id) {
            let squares = g.square().sum();
            self.sum = Some(match self.sum.take() {
                Some(s) => s + squares,
                None => squares,
            });
        }
    }
}

struct Scale<B: AutodiffBackend> {
    grads: GradientsParams,
    out: GradientsParams,
    coefficient: Tensor<B::InnerBackend, 1>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Scale<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.remove::<B::InnerBackend, D>(param.id) {
            let c = broadcastable::<B::InnerBackend, D>(self.coefficient.clone());
            self.out.register(param.id, g * c);
        }
    }
}

/// `[1]` as `[1, 1, ..., 1]` of rank `D`.
fn broadcastable<B: Backend, const D: usize>(t: Tensor<B, 1>) -> Tensor<B, D> {
    t.reshape([1; D])
}
