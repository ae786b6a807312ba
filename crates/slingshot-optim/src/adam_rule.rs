//! burn's Adam update on one tensor, op for op, with optional cheap probe outputs.
//!
//! The sequence is that of `burn-optim` 0.21 (`AdaptiveMomentum::transform` and `Adam::step`
//! without weight decay or AMSGrad): the same operations on the same f32 scalars in the same
//! order, so the parameters are bit-identical to burn's `Adam`. With `weight_decay` the
//! parameter is first scaled as burn's `AdamW` scales it (decoupled decay); burn's `AdamW`
//! computes the Adam part in another order, so that is equal up to rounding, not bits.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

/// Adam's constants, in f32 like burn's `AdamConfig`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct AdamRule {
    pub(crate) beta_1: f32,
    pub(crate) beta_2: f32,
    pub(crate) epsilon: f32,
    /// Decoupled weight decay (AdamW): the parameter is scaled by `1 - lr * weight_decay`
    /// before the update, as burn's `AdamW` does. 0: Adam.
    pub(crate) weight_decay: f32,
}

/// Adam's state of one parameter tensor.
#[derive(Debug, Clone)]
pub(crate) struct Moments<B: Backend, const D: usize> {
    /// Steps taken, `t`.
    pub(crate) time: usize,
    pub(crate) moment_1: Tensor<B, D>,
    pub(crate) moment_2: Tensor<B, D>,
}

/// The probe's per-step values for one tensor: two `[1]` sums.
#[derive(Debug, Clone)]
pub(crate) struct StepProbe<B: Backend> {
    pub(crate) grad_sq_sum: Tensor<B, 1>,
    pub(crate) update_abs_sum: Tensor<B, 1>,
}

/// The new parameter, the new state, and the probe values when asked.
pub(crate) type StepOutput<B, const D: usize> = (Tensor<B, D>, Moments<B, D>, Option<StepProbe<B>>);

impl AdamRule {
    /// One step of `param` with gradient `grad`.
    ///
    /// The probe adds three passes over the tensor and no allocation of its size: `sum(g^2)` on
    /// the square burn computes anyway, `|delta|` in `delta`'s buffer once the parameter is
    /// updated, and its sum. The clones it takes are dropped before the next in-place
    /// operation, so backends that update unique buffers in place still do, and it keeps no
    /// tensor of the parameter's size.
    pub(crate) fn step<B: Backend, const D: usize>(
        &self,
        lr: f64,
        param: Tensor<B, D>,
        grad: Tensor<B, D>,
        state: Option<Moments<B, D>>,
        probe: bool,
    ) -> StepOutput<B, D> {
        let mut grad_sq_sum = None;
        let mut square = |grad: Tensor<B, D>| {
            let square = grad.square();
            if probe {
                grad_sq_sum = Some(square.clone().sum());
            }
            square
        };
        let moments = match state {
            Some(state) => {
                let factor = 1.0 - self.beta_1;
                let moment_1 = state
                    .moment_1
                    .mul_scalar(self.beta_1)
                    .add(grad.clone().mul_scalar(factor));
                let factor = 1.0 - self.beta_2;
                let moment_2 = state
                    .moment_2
                    .mul_scalar(self.beta_2)
                    .add(square(grad).mul_scalar(factor));
                Moments {
                    time: state.time + 1,
                    moment_1,
                    moment_2,
                }
            }
            None => {
                let factor = 1.0 - self.beta_1;
                let moment_1 = grad.clone().mul_scalar(factor);
                let factor = 1.0 - self.beta_2;
                let moment_2 = square(grad).mul_scalar(factor);
                Moments {
                    time: 1,
                    moment_1,
                    moment_2,
                }
            }
        };

        let delta = self.delta(lr, &moments);
        let param = if self.weight_decay > 0.0 {
            param.mul_scalar(1.0 - lr * self.weight_decay as f64)
        } else {
            param
        };

        let Some(grad_sq_sum) = grad_sq_sum else {
            return (param - delta, moments, None);
        };
        // The subtraction first: it leaves `delta` unique again (it writes into `param`, or
        // into a new buffer), so that `abs` reuses `delta`'s buffer instead of allocating. The
        // magnitudes are then dropped like burn drops `delta`; a read recomputes them from the
        // moments (`Self::delta` again, so the same bits).
        let param = param - delta.clone();
        let probe = StepProbe {
            grad_sq_sum,
            update_abs_sum: delta.abs().sum(),
        };
        (param, moments, Some(probe))
    }

    /// `lr * update` from the moments after step `moments.time`, with burn's operations.
    pub(crate) fn delta<B: Backend, const D: usize>(
        &self,
        lr: f64,
        moments: &Moments<B, D>,
    ) -> Tensor<B, D> {
        let time = moments.time as i32;
        let bias_correction2_sqrt = (1.0 - self.beta_2.powi(time)).sqrt();
        let combined_factor = bias_correction2_sqrt / (1.0 - self.beta_1.powi(time));
        let update = moments.moment_1.clone().mul_scalar(combined_factor).div(
            moments
                .moment_2
                .clone()
                .sqrt()
                .add_scalar(self.epsilon * bias_correction2_sqrt),
        );
        update.mul_scalar(lr)
    }
}
