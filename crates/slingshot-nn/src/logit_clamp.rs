//! The logit-margin clamp of App. A.1.4: every logit of a row is raised to at least
//! `max_k z_k - margin`, so no softmax probability underflows below `exp(-margin)`.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use crate::NnError;

/// `max(z, rowmax(z) - margin)` elementwise. The row maximum is detached, so a clamped logit
/// gets no gradient and an unclamped one keeps its own. With `margin = 100` every f32
/// probability stays above `exp(-100) = 3.7e-44`, inside the subnormal range: what is left is
/// absorption, not underflow, which is what the paper's experiment isolates.
pub fn try_clamp_logit_margin<B: Backend>(
    logits: Tensor<B, 2>,
    margin: f64,
) -> Result<Tensor<B, 2>, NnError> {
    if !(margin.is_finite() && margin > 0.0) {
        return Err(NnError::InvalidMargin(margin));
    }
    let dims = logits.dims();
    let floor = logits.clone().detach().max_dim(1) - margin;
    Ok(logits.max_pair(floor.expand(dims)))
}

/// [`try_clamp_logit_margin`]; panics with the [`NnError`] message on an invalid `margin`.
#[track_caller]
pub fn clamp_logit_margin<B: Backend>(logits: Tensor<B, 2>, margin: f64) -> Tensor<B, 2> {
    // A `match`, not `unwrap_or_else`: a closure's panic would name this line, not
    // the caller's.
    match try_clamp_logit_margin(logits, margin) {
        Ok(value) => value,
        Err(e) => panic!("{e}"),
    }
}
