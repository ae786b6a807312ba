//! The models of the modular-arithmetic and image experiments, exposing their penultimate
//! features and classifier for the diagnostics.

mod config;
mod head;
mod mlp;
mod resnet;
mod transformer;
mod vgg;
mod vit;

pub use config::{
    HeadConfig, MlpConfig, ModelConfig, NetworkConfig, ResNetConfig, TransformerConfig, VggConfig,
    VitConfig,
};
pub use head::Head;
pub use mlp::Mlp;
pub use resnet::{BasicBlock, ResNet};
pub use transformer::{Block, Transformer};
pub use vgg::{ConvUnit, Vgg};
pub use vit::{Vit, VitBlock};

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::ExperimentError;

/// Which network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Flattened one-hot input, ReLU hidden layers.
    Mlp,
    /// Decoder-only transformer on the token ids.
    Transformer,
    /// VGG11 with a single linear classifier (images).
    Vgg11,
    /// VGG11 with BatchNorm after each convolution (images).
    #[serde(rename = "vgg11-bn")]
    #[value(name = "vgg11-bn")]
    Vgg11Bn,
    /// ResNet18 for 32x32 images.
    Resnet18,
    /// Vision Transformer with 4x4 patches (images).
    Vit,
}

impl ModelKind {
    /// The name in `summary.json` and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Mlp => "mlp",
            ModelKind::Transformer => "transformer",
            ModelKind::Vgg11 => "vgg11",
            ModelKind::Vgg11Bn => "vgg11-bn",
            ModelKind::Resnet18 => "resnet18",
            ModelKind::Vit => "vit",
        }
    }

    /// Whether the network reads only images.
    pub fn images_only(self) -> bool {
        matches!(
            self,
            ModelKind::Vgg11 | ModelKind::Vgg11Bn | ModelKind::Resnet18 | ModelKind::Vit
        )
    }

    /// Whether the backbone holds BatchNorm layers, whose batch statistics make a step depend
    /// on how the batch is split and whose running statistics move on every training pass.
    pub fn has_batch_norm(self) -> bool {
        matches!(self, ModelKind::Vgg11Bn | ModelKind::Resnet18)
    }
}

/// What the network reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputSpec {
    /// The modular task's four tokens from a vocabulary of this size.
    Tokens {
        /// Vocabulary size.
        vocab: usize,
    },
    /// 3 x 32 x 32 images.
    Images,
}

impl ModelConfig {
    /// Checks the sizes.
    pub fn validate(&self) -> Result<(), ExperimentError> {
        let bad = |what: String| Err(ExperimentError::InvalidConfig(what));
        match self.network {
            NetworkConfig::Mlp(m) if m.width == 0 || m.depth == 0 => bad(format!(
                "MLP width {} and depth {} must be at least 1",
                m.width, m.depth
            )),
            NetworkConfig::Transformer(t)
                if t.d_model == 0
                    || t.heads == 0
                    || t.layers == 0
                    || !t.d_model.is_multiple_of(t.heads) =>
            {
                bad(format!(
                    "transformer d_model {} must be a positive multiple of heads {}, with at least one layer ({})",
                    t.d_model, t.heads, t.layers
                ))
            }
            NetworkConfig::Vgg11(VggConfig { channels: 0, .. })
            | NetworkConfig::Resnet18(ResNetConfig { channels: 0 }) => {
                bad("channels must be at least 1".into())
            }
            NetworkConfig::Vit(v)
                if v.d_model == 0
                    || v.heads == 0
                    || v.layers == 0
                    || !v.d_model.is_multiple_of(v.heads)
                    || v.patch == 0
                    || !32usize.is_multiple_of(v.patch) =>
            {
                bad(format!(
                    "ViT d_model {} must be a positive multiple of heads {}, with at least one layer ({}) and a patch ({}) that divides 32",
                    v.d_model, v.heads, v.layers, v.patch
                ))
            }
            _ => Ok(()),
        }
    }

    /// Whether the network can read `input` (the transformer reads tokens, the image networks
    /// images, the MLP either).
    pub fn reads(&self, input: InputSpec) -> bool {
        match input {
            InputSpec::Tokens { .. } => !self.kind().images_only(),
            InputSpec::Images => self.kind() != ModelKind::Transformer,
        }
    }

    /// The model for the modular task with `vocab` tokens and `classes` answers.
    pub fn init<B: Backend>(&self, vocab: usize, classes: usize, device: &B::Device) -> Model<B> {
        self.init_for(InputSpec::Tokens { vocab }, classes, device)
    }

    /// The model for `input` and `classes` answers. Panics if the network cannot read `input`
    /// (see [`ModelConfig::reads`]).
    pub fn init_for<B: Backend>(
        &self,
        input: InputSpec,
        classes: usize,
        device: &B::Device,
    ) -> Model<B> {
        assert!(self.reads(input), "{:?} cannot read {input:?}", self.kind());
        let head = |d_features| {
            let h = self.head;
            Head::new(
                d_features,
                classes,
                h.head_norm,
                h.classifier_bias,
                h.centered,
                device,
            )
        };
        // The placeholder head is made first, as it always was, so that any draw it makes
        // comes where it always came.
        let _placeholder: Head<B> = head(1);
        let (backbone, d_features) = self.backbone(input, device);
        Model {
            backbone,
            head: head(d_features),
        }
    }

    /// The network before the head, for `input`, and the width of its features.
    fn backbone<B: Backend>(&self, input: InputSpec, device: &B::Device) -> (Backbone<B>, usize) {
        match self.network {
            NetworkConfig::Mlp(m) => {
                let d_input = match input {
                    InputSpec::Tokens { vocab } => 4 * vocab,
                    InputSpec::Images => crate::cifar::IMAGE_BYTES,
                };
                let mlp = Mlp::new(d_input, m.width, m.depth, true, device);
                (Backbone::Mlp(mlp), m.width)
            }
            NetworkConfig::Transformer(t) => {
                let InputSpec::Tokens { vocab } = input else {
                    unreachable!("checked by reads()")
                };
                let net =
                    Transformer::new(vocab, 4, t.d_model, t.heads, t.layers, t.layer_norm, device);
                (Backbone::Transformer(net), t.d_model)
            }
            NetworkConfig::Vgg11(v) => {
                let vgg = Vgg::new(v.channels, v.batch_norm, device);
                (Backbone::Vgg(vgg), Vgg::<B>::features_dim(v.channels))
            }
            NetworkConfig::Resnet18(r) => (
                Backbone::ResNet(ResNet::new(r.channels, device)),
                ResNet::<B>::features_dim(r.channels),
            ),
            NetworkConfig::Vit(v) => {
                let vit = Vit::new(v.patch, v.d_model, v.heads, v.layers, device);
                (Backbone::Vit(vit), v.d_model)
            }
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
    /// Images `[n, 3, 32, 32]` with pixels in `[0, 1]`.
    Images(Tensor<B, 4>),
}

impl<B: Backend> Inputs<B> {
    /// The number of rows.
    pub fn rows(&self) -> usize {
        match self {
            Inputs::OneHot(x) => x.dims()[0],
            Inputs::Tokens(t) => t.dims()[0],
            Inputs::Images(x) => x.dims()[0],
        }
    }

    /// `one-hot`, `token` or `image`, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Inputs::OneHot(_) => "one-hot",
            Inputs::Tokens(_) => "token",
            Inputs::Images(_) => "image",
        }
    }

    /// The rows `range`.
    pub fn rows_in(&self, range: std::ops::Range<usize>) -> Self {
        match self {
            Inputs::OneHot(x) => Inputs::OneHot(x.clone().narrow(0, range.start, range.len())),
            Inputs::Tokens(t) => Inputs::Tokens(t.clone().narrow(0, range.start, range.len())),
            Inputs::Images(x) => Inputs::Images(x.clone().narrow(0, range.start, range.len())),
        }
    }

    /// The rows at `indices`.
    pub fn select(&self, indices: Tensor<B, 1, Int>) -> Self {
        match self {
            Inputs::OneHot(x) => Inputs::OneHot(x.clone().select(0, indices)),
            Inputs::Tokens(t) => Inputs::Tokens(t.clone().select(0, indices)),
            Inputs::Images(x) => Inputs::Images(x.clone().select(0, indices)),
        }
    }
}

/// What one forward pass returns.
#[derive(Debug, Clone)]
pub struct ModelOutput<B: Backend> {
    /// The features the classifier sees `[n, d]` (after any head normalization).
    pub features: Tensor<B, 2>,
    /// Logits `[n, classes]`.
    pub logits: Tensor<B, 2>,
}

/// The network before the classifier head: one of the paper's networks.
#[derive(Module, Debug)]
pub enum Backbone<B: Backend> {
    /// [`ModelKind::Mlp`].
    Mlp(Mlp<B>),
    /// [`ModelKind::Transformer`].
    Transformer(Transformer<B>),
    /// [`ModelKind::Vgg11`] and [`ModelKind::Vgg11Bn`].
    Vgg(Vgg<B>),
    /// [`ModelKind::Resnet18`].
    ResNet(ResNet<B>),
    /// [`ModelKind::Vit`].
    Vit(Vit<B>),
}

impl<B: Backend> Backbone<B> {
    /// The features of a batch. Panics on inputs the network does not read (the harness
    /// builds inputs for the network, see [`ModelConfig::reads`]).
    pub fn features(&self, inputs: Inputs<B>) -> Tensor<B, 2> {
        match (self, inputs) {
            (Backbone::Mlp(mlp), Inputs::OneHot(x)) => mlp.features(x),
            (Backbone::Mlp(mlp), Inputs::Images(x)) => mlp.features(x.flatten(1, 3)),
            (Backbone::Transformer(t), Inputs::Tokens(x)) => t.features(x),
            (Backbone::Vgg(vgg), Inputs::Images(x)) => vgg.features(x),
            (Backbone::ResNet(resnet), Inputs::Images(x)) => resnet.features(x),
            (Backbone::Vit(vit), Inputs::Images(x)) => vit.features(x),
            (_, inputs) => panic!("the network does not read {} inputs", inputs.kind()),
        }
    }
}

/// A network with its classifier head.
#[derive(Module, Debug)]
pub struct Model<B: Backend> {
    /// The network.
    pub backbone: Backbone<B>,
    /// The classifier.
    pub head: Head<B>,
}

impl<B: Backend> Model<B> {
    /// Features and logits of a batch.
    pub fn forward(&self, inputs: Inputs<B>) -> ModelOutput<B> {
        let features = self.backbone.features(inputs);
        let (features, logits) = self.head.forward(features);
        ModelOutput { features, logits }
    }

    /// The linear classifier (weight `[d, classes]`).
    pub fn classifier(&self) -> &Linear<B> {
        self.head.linear()
    }
}
