//! The models of the modular-arithmetic and image experiments, exposing their penultimate
//! features and classifier for the diagnostics.

mod head;
mod mlp;
mod resnet;
mod transformer;
mod vgg;
mod vit;

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
use slingshot_nn::HeadNorm;

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
    /// Base width of VGG11 and ResNet18 (the paper: 64; the features are `8 x` this).
    #[serde(default = "default_channels")]
    pub channels: usize,
    /// ViT patch side (the paper: 4; it must divide 32).
    #[serde(default = "default_patch")]
    pub patch: usize,
}

fn default_channels() -> usize {
    64
}

fn default_patch() -> usize {
    4
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
            channels: default_channels(),
            patch: default_patch(),
        }
    }

    /// App. D.2's image networks: the 6-layer MLP of width 512, VGG11 and ResNet18 of base
    /// width 64, and the ViT of width 256 with 12 blocks of 8 heads on 4x4 patches.
    pub fn paper_image(kind: ModelKind) -> Self {
        Self {
            kind,
            d_model: 256,
            heads: 8,
            layers: 12,
            ..Self::paper_mlp()
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
            ModelKind::Vgg11 | ModelKind::Vgg11Bn | ModelKind::Resnet18 if self.channels == 0 => {
                bad("channels must be at least 1".into())
            }
            ModelKind::Vit
                if self.d_model == 0
                    || self.heads == 0
                    || self.layers == 0
                    || !self.d_model.is_multiple_of(self.heads)
                    || self.patch == 0
                    || !32usize.is_multiple_of(self.patch) =>
            {
                bad(format!(
                    "ViT d_model {} must be a positive multiple of heads {}, with at least one layer ({}) and a patch ({}) that divides 32",
                    self.d_model, self.heads, self.layers, self.patch
                ))
            }
            _ => Ok(()),
        }
    }

    /// Whether the network can read `input` (the transformer reads tokens, the image networks
    /// images, the MLP either).
    pub fn reads(&self, input: InputSpec) -> bool {
        match input {
            InputSpec::Tokens { .. } => !self.kind.images_only(),
            InputSpec::Images => self.kind != ModelKind::Transformer,
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
        assert!(self.reads(input), "{:?} cannot read {input:?}", self.kind);
        // The placeholder head is made first, as it always was, so that any draw it makes
        // comes where it always came.
        let _placeholder = Head::<B>::new(
            1,
            classes,
            self.head_norm,
            self.classifier_bias,
            self.centered,
            device,
        );
        let (backbone, d_features) = self.backbone(input, device);
        let head = Head::new(
            d_features,
            classes,
            self.head_norm,
            self.classifier_bias,
            self.centered,
            device,
        );
        Model { backbone, head }
    }

    /// The network before the head, for `input`, and the width of its features.
    fn backbone<B: Backend>(&self, input: InputSpec, device: &B::Device) -> (Backbone<B>, usize) {
        match self.kind {
            ModelKind::Mlp => {
                let d_input = match input {
                    InputSpec::Tokens { vocab } => 4 * vocab,
                    InputSpec::Images => crate::cifar::IMAGE_BYTES,
                };
                let mlp = Mlp::new(d_input, self.width, self.depth, true, device);
                (Backbone::Mlp(mlp), self.width)
            }
            ModelKind::Transformer => {
                let InputSpec::Tokens { vocab } = input else {
                    unreachable!("checked by reads()")
                };
                let t = Transformer::new(
                    vocab,
                    4,
                    self.d_model,
                    self.heads,
                    self.layers,
                    self.layer_norm,
                    device,
                );
                (Backbone::Transformer(t), self.d_model)
            }
            ModelKind::Vgg11 | ModelKind::Vgg11Bn => {
                let bn = self.kind == ModelKind::Vgg11Bn;
                let vgg = Vgg::new(self.channels, bn, device);
                (Backbone::Vgg(vgg), Vgg::<B>::features_dim(self.channels))
            }
            ModelKind::Resnet18 => (
                Backbone::ResNet(ResNet::new(self.channels, device)),
                ResNet::<B>::features_dim(self.channels),
            ),
            ModelKind::Vit => {
                let vit = Vit::new(self.patch, self.d_model, self.heads, self.layers, device);
                (Backbone::Vit(vit), self.d_model)
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
