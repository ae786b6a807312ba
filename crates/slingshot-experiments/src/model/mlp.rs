//! The paper's MLP: flattened one-hot input, `depth` hidden ReLU layers, a linear classifier.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig, Relu};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

/// The hidden layers; the classifier is the model's [`super::Head`].
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    /// Hidden layers, each followed by ReLU.
    pub layers: Vec<Linear<B>>,
    activation: Relu,
}

impl<B: Backend> Mlp<B> {
    /// `depth` hidden layers of `width` on a `d_input` input.
    pub fn new(d_input: usize, width: usize, depth: usize, bias: bool, device: &B::Device) -> Self {
        let layers = (0..depth)
            .map(|i| {
                LinearConfig::new(if i == 0 { d_input } else { width }, width)
                    .with_bias(bias)
                    .init(device)
            })
            .collect();
        Self {
            layers,
            activation: Relu::new(),
        }
    }

    /// Penultimate features `[n, width]` of one-hot inputs `[n, d_input]`.
    pub fn features(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.layers
            .iter()
            .fold(x, |x, layer| self.activation.forward(layer.forward(x)))
    }
}
