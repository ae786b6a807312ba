//! The models of the modular-arithmetic experiments, exposing their penultimate features and
//! classifier for the diagnostics.

mod head;
mod mlp;
mod transformer;

pub use head::Head;
pub use mlp::Mlp;
pub use transformer::{Block, Transformer};

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};
use slingshot_nn::HeadNorm;

use crate::ExperimentError;

/// Which network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Flattened one-hot input, ReLU hidden layers.
    Mlp,
    /// Decoder-only transformer on the token ids.
    Transformer,
}

/// The architecture, as written to `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Which network.
    pub kind: ModelKind,
    /// MLP hidden width (the paper: 512).
    pub width: usize,
    /// MLP hidden layers (the paper: 5, plus the classifier: 6 layers).
    pub depth: usize,
    /// Transformer width (the paper: 128).
    pub d_model: usize,
    /// Attention heads (the paper: 4).
    pub heads: usize,
    /// Transformer blocks (the paper: 2).
    pub layers: usize,
    /// LayerNorm in the transformer blocks (the paper: none).
    pub layer_norm: bool,
    /// Biases in the classifier (App. A.1.3 turns it off).
    pub classifier_bias: bool,
    /// Normalization of the features before the classifier.
    pub head_norm: HeadNorm,
    /// Forward the classifier with `W - W_G`.
    pub centered: bool,
}

impl ModelConfig {
    /// The paper's 6-layer MLP (App. D Table 2).
    pub fn paper_mlp() -> Self {
        Self {
            kind: ModelKind::Mlp,
            width: 512,
            depth: 5,
            d_model: 128,
            heads: 4,
            layers: 2,
            layer_norm: false,
            classifier_bias: true,
            head_norm: HeadNorm::None,
            centered: false,
        }
    }

    /// The paper's 2-layer transformer.
    pub fn paper_transformer() -> Self {
        Self {
            kind: ModelKind::Transformer,
            ..Self::paper_mlp()
        }
    }

    /// Checks the sizes.
    pub fn validate(&self) -> Result<(), ExperimentError> {
        let bad = |what: String| Err(ExperimentError::InvalidConfig(what));
        match self.kind {
            ModelKind::Mlp if self.width == 0 || self.depth == 0 => bad(format!(
                "MLP width {} and depth {} must be at least 1",
                self.width, self.depth
            )),
            ModelKind::Transformer
                if self.d_model == 0
                    || self.heads == 0
                    || self.layers == 0
                    || !self.d_model.is_multiple_of(self.heads) =>
            {
                bad(format!(
                    "transformer d_model {} must be a positive multiple of heads {}, with at least one layer ({})",
                    self.d_model, self.heads, self.layers
                ))
            }
            _ => Ok(()),
        }
    }

    /// The model for a task with `vocab` tokens and `classes` answers.
    pub fn init<B: Backend>(&self, vocab: usize, classes: usize, device: &B::Device) -> Model<B> {
        let (mlp, transformer, d_features) = match self.kind {
            ModelKind::Mlp => (
                Some(Mlp::new(4 * vocab, self.width, self.depth, true, device)),
                None,
                self.width,
            ),
            ModelKind::Transformer => (
                None,
                Some(Transformer::new(
                    vocab,
                    4,
                    self.d_model,
                    self.heads,
                    self.layers,
                    self.layer_norm,
                    device,
                )),
                self.d_model,
            ),
        };
        Model {
            mlp,
            transformer,
            head: Head::new(
                d_features,
                classes,
                self.head_norm,
                self.classifier_bias,
                self.centered,
                device,
            ),
        }
    }
}

/// A batch's inputs in the form its model reads.
#[derive(Debug, Clone)]
pub enum Inputs<B: Backend> {
    /// Flattened one-hot rows `[n, 4 vocab]` (MLP).
    OneHot(Tensor<B, 2>),
    /// Token ids `[n, 4]` (transformer).
    Tokens(Tensor<B, 2, Int>),
}

/// What one forward pass returns.
#[derive(Debug, Clone)]
pub struct ModelOutput<B: Backend> {
    /// The features the classifier sees `[n, d]` (after any head normalization).
    pub features: Tensor<B, 2>,
    /// Logits `[n, classes]`.
    pub logits: Tensor<B, 2>,
}

/// Either network with its classifier head.
#[derive(Module, Debug)]
pub struct Model<B: Backend> {
    /// Present for [`ModelKind::Mlp`].
    pub mlp: Option<Mlp<B>>,
    /// Present for [`ModelKind::Transformer`].
    pub transformer: Option<Transformer<B>>,
    /// The classifier.
    pub head: Head<B>,
}

impl<B: Backend> Model<B> {
    /// Features and logits of a batch.
    pub fn forward(&self, inputs: Inputs<B>) -> ModelOutput<B> {
        let features = match (inputs, &self.mlp, &self.transformer) {
            (Inputs::OneHot(x), Some(mlp), _) => mlp.features(x),
            (Inputs::Tokens(t), _, Some(tr)) => tr.features(t),
            _ => panic!("inputs of the wrong kind for this model"),
        };
        let (features, logits) = self.head.forward(features);
        ModelOutput { features, logits }
    }

    /// The linear classifier (weight `[d, classes]`).
    pub fn classifier(&self) -> &Linear<B> {
        self.head.linear()
    }

    /// The kind of inputs this model reads.
    pub fn kind(&self) -> ModelKind {
        if self.mlp.is_some() {
            ModelKind::Mlp
        } else {
            ModelKind::Transformer
        }
    }
}
