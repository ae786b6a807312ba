//! The classifier on top of either model, with the paper's last-layer mitigations.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use slingshot_nn::{CenteredLinear, ClassifierHead, ClassifierHeadConfig, HeadNorm};

/// A [`ClassifierHead`] (optional centering, BatchNorm or LayerNorm of the features) whose
/// linear layer can run centered (`W - W_G`, §4.3).
#[derive(Module, Debug)]
pub struct Head<B: Backend> {
    /// Normalization and the linear classifier.
    pub head: ClassifierHead<B>,
    /// Forward with `W - W_G` and `b - mean(b)`.
    pub centered: bool,
}

impl<B: Backend> Head<B> {
    /// A head from `d_input` features to `classes` logits.
    pub fn new(
        d_input: usize,
        classes: usize,
        norm: HeadNorm,
        bias: bool,
        centered: bool,
        device: &B::Device,
    ) -> Self {
        Self {
            head: ClassifierHeadConfig::new(d_input, classes)
                .with_norm(norm)
                .with_bias(bias)
                .init(device),
            centered,
        }
    }

    /// The features the classifier sees and the logits.
    pub fn forward(&self, features: Tensor<B, 2>) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let seen = self.head.normalized(features);
        let logits = if self.centered {
            // The same parameters (ids included), used through the centered forward.
            CenteredLinear {
                linear: self.head.linear.clone(),
            }
            .forward(seen.clone())
        } else {
            self.head.linear.forward(seen.clone())
        };
        (seen, logits)
    }

    /// The linear classifier.
    pub fn linear(&self) -> &Linear<B> {
        &self.head.linear
    }
}
