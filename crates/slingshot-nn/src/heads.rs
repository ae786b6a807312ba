//! Normalization before the classifier: batch-mean feature centering, and the BatchNorm and
//! LayerNorm heads of Fig. 3(b)/(c).

use burn::config::Config;
use burn::module::Module;
use burn::nn::{BatchNorm, BatchNormConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use crate::NnError;
use crate::error::check_classifier_dims;

/// Subtracts the batch mean of the features, `h - mu_G`, removing the direction numerical
/// feature inflation grows along (§4.2 "Batch Normalization"). No parameters.
#[derive(Module, Clone, Debug, Default)]
pub struct FeatureCentering;

impl FeatureCentering {
    /// `[batch, features] -> [batch, features]`, each column's batch mean removed.
    pub fn forward<B: Backend>(&self, features: Tensor<B, 2>) -> Tensor<B, 2> {
        features.clone() - features.mean_dim(0)
    }
}

/// Which normalization a [`ClassifierHead`] applies to the features before its linear layer.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum HeadNorm {
    /// None: the plain classifier.
    None,
    /// Batch-mean subtraction ([`FeatureCentering`]).
    Centering,
    /// BatchNorm over the batch (Fig. 3(c): no slingshots).
    BatchNorm,
    /// LayerNorm per sample (Fig. 3(b): slingshots persist, earlier).
    LayerNorm,
}

/// Configuration of [`ClassifierHead`].
#[derive(Config, Debug)]
pub struct ClassifierHeadConfig {
    /// Feature width.
    pub d_input: usize,
    /// Classes.
    pub d_output: usize,
    /// Normalization before the linear layer.
    #[config(default = "HeadNorm::None")]
    pub norm: HeadNorm,
    /// Whether the linear layer has a bias.
    #[config(default = true)]
    pub bias: bool,
}

impl ClassifierHeadConfig {
    /// Builds the head, or says which dimension is invalid.
    pub fn try_init<B: Backend>(&self, device: &B::Device) -> Result<ClassifierHead<B>, NnError> {
        check_classifier_dims(self.d_input, self.d_output)?;
        Ok(ClassifierHead {
            batch_norm: (self.norm == HeadNorm::BatchNorm)
                .then(|| BatchNormConfig::new(self.d_input).init(device)),
            layer_norm: (self.norm == HeadNorm::LayerNorm)
                .then(|| LayerNormConfig::new(self.d_input).init(device)),
            centering: self.norm == HeadNorm::Centering,
            linear: LinearConfig::new(self.d_input, self.d_output)
                .with_bias(self.bias)
                .init(device),
        })
    }

    /// Builds the head; panics with the [`NnError`] message on an invalid dimension.
    #[track_caller]
    pub fn init<B: Backend>(&self, device: &B::Device) -> ClassifierHead<B> {
        // A `match`, not `unwrap_or_else`: a closure's panic would name this line, not
        // the caller's.
        match self.try_init(device) {
            Ok(value) => value,
            Err(e) => panic!("{e}"),
        }
    }
}

/// A classifier with an optional normalization of its input features.
#[derive(Module, Debug)]
pub struct ClassifierHead<B: Backend> {
    /// Present for [`HeadNorm::BatchNorm`].
    pub batch_norm: Option<BatchNorm<B>>,
    /// Present for [`HeadNorm::LayerNorm`].
    pub layer_norm: Option<LayerNorm<B>>,
    /// [`HeadNorm::Centering`].
    pub centering: bool,
    /// The classifier.
    pub linear: Linear<B>,
}

impl<B: Backend> ClassifierHead<B> {
    /// The features the classifier sees (after normalization), `[batch, d_input]`: what the
    /// NFI diagnostics should be given.
    pub fn normalized(&self, features: Tensor<B, 2>) -> Tensor<B, 2> {
        if let Some(bn) = &self.batch_norm {
            bn.forward(features)
        } else if let Some(ln) = &self.layer_norm {
            ln.forward(features)
        } else if self.centering {
            FeatureCentering.forward(features)
        } else {
            features
        }
    }

    /// Logits `[batch, d_output]`.
    pub fn forward(&self, features: Tensor<B, 2>) -> Tensor<B, 2> {
        self.linear.forward(self.normalized(features))
    }
}
