//! Mean removal for an ordinary `Linear` classifier: the post-step projection (mu-centering)
//! and the mu-loss penalty of Stollenwerk et al.

use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use crate::{NnError, class_mean};

/// Subtracts the class mean from the stored weights (and the mean from the bias): call it after
/// every optimizer step ("mu-centering"). Every logit of a row moves by the same
/// `x . W_G + mean(b)`, so the softmax and the loss do not change; the next step starts from
/// `W_G = 0`.
pub fn remove_class_mean<B: Backend>(linear: Linear<B>) -> Linear<B> {
    let Linear { weight, bias } = linear;
    // `Param::map` keeps each parameter's id, so optimizer state stays attached; the result is
    // a fresh leaf with the original `require_grad`.
    let weight = weight.map(|w| {
        let grad = w.is_require_grad();
        (w.clone() - w.mean_dim(1)).detach().set_require_grad(grad)
    });
    let bias = bias.map(|b: Param<Tensor<B, 1>>| {
        b.map(|b| {
            let grad = b.is_require_grad();
            (b.clone() - b.mean()).detach().set_require_grad(grad)
        })
    });
    Linear { weight, bias }
}

/// The mu-loss penalty `gamma * ||W_G||^2` (a `[1]` tensor), to add to the training loss.
pub fn try_mu_loss<B: Backend>(linear: &Linear<B>, gamma: f64) -> Result<Tensor<B, 1>, NnError> {
    if !(gamma.is_finite() && gamma >= 0.0) {
        return Err(NnError::InvalidGamma(gamma));
    }
    Ok(class_mean(linear).powi_scalar(2).sum() * gamma)
}

/// [`try_mu_loss`]; panics with the [`NnError`] message on an invalid `gamma`.
#[track_caller]
pub fn mu_loss<B: Backend>(linear: &Linear<B>, gamma: f64) -> Tensor<B, 1> {
    // A `match`, not `unwrap_or_else`: a closure's panic would name this line, not
    // the caller's.
    match try_mu_loss(linear, gamma) {
        Ok(value) => value,
        Err(e) => panic!("{e}"),
    }
}
