//! Last-layer mean removal during training (§4.3): a classifier that uses `W - W_G`.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use crate::NnError;
use crate::error::check_classifier_dims;

/// Configuration of [`CenteredLinear`].
#[derive(Config, Debug)]
pub struct CenteredLinearConfig {
    /// Input features (the penultimate width).
    pub d_input: usize,
    /// Classes.
    pub d_output: usize,
    /// Whether the classifier has a bias (centered too).
    #[config(default = true)]
    pub bias: bool,
    /// Initializer of the stored weights (burn's `Linear` default).
    #[config(
        default = "Initializer::KaimingUniform{gain:0.577_350_269_189_625_8, fan_out_only:false}"
    )]
    pub initializer: Initializer,
}

impl CenteredLinearConfig {
    /// Builds the layer, or says which dimension is invalid.
    pub fn try_init<B: Backend>(&self, device: &B::Device) -> Result<CenteredLinear<B>, NnError> {
        check_classifier_dims(self.d_input, self.d_output)?;
        Ok(CenteredLinear {
            linear: LinearConfig::new(self.d_input, self.d_output)
                .with_bias(self.bias)
                .with_initializer(self.initializer.clone())
                .init(device),
        })
    }

    /// Builds the layer; panics with the [`NnError`] message on an invalid dimension.
    #[track_caller]
    pub fn init<B: Backend>(&self, device: &B::Device) -> CenteredLinear<B> {
        // A `match`, not `unwrap_or_else`: a closure's panic would name this line, not
        // the caller's.
        match self.try_init(device) {
            Ok(value) => value,
            Err(e) => panic!("{e}"),
        }
    }
}

/// A linear classifier whose forward uses the class-centered weights `W* = W - W_G` and bias
/// `b - mean(b)`.
///
/// Logits are invariant to adding one vector to every class's weights, and the class mean
/// `W_G` receives no gradient, so the zero-sum-breaking drift of softmax collapse (Thm. 3.4)
/// has nothing to move. The stored parameters are an ordinary burn `Linear` (`[d_input,
/// d_output]`, class `k` in column `k`).
#[derive(Module, Debug)]
pub struct CenteredLinear<B: Backend> {
    /// The stored (uncentered) parameters.
    pub linear: Linear<B>,
}

impl<B: Backend> CenteredLinear<B> {
    /// `x (W - W_G) + (b - mean b)` for `x` of shape `[..., d_input]`.
    pub fn forward<const D: usize>(&self, input: Tensor<B, D>) -> Tensor<B, D> {
        burn::tensor::module::linear(
            input,
            self.centered_weight(),
            self.linear.bias.as_ref().map(|b| {
                let b = b.val();
                b.clone() - b.mean()
            }),
        )
    }

    /// `W* = W - W_G`, `[d_input, d_output]`.
    pub fn centered_weight(&self) -> Tensor<B, 2> {
        let w = self.linear.weight.val();
        w.clone() - w.mean_dim(1)
    }

    /// The class mean `W_G = (1/K) sum_k W_k` of the stored weights, `[d_input]`.
    pub fn class_mean(&self) -> Tensor<B, 1> {
        class_mean(&self.linear)
    }
}

/// The class mean `W_G` of a classifier's weights, `[d_input]`.
pub fn class_mean<B: Backend>(linear: &Linear<B>) -> Tensor<B, 1> {
    let w = linear.weight.val();
    let [d, _] = w.dims();
    w.mean_dim(1).reshape([d])
}
