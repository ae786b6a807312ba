//! The architecture a run trains: one of the paper's networks with its own sizes, and the
//! classifier head. `config.json` keeps the flat form of the first format (`kind`, `width`,
//! `depth`, `d_model`, ...), so old files read and readers of those names keep working.

use serde::{Deserialize, Serialize};
use slingshot_nn::HeadNorm;

use super::ModelKind;

/// The MLP: flattened one-hot (or pixel) input, ReLU hidden layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MlpConfig {
    /// Hidden width (the paper: 512).
    pub width: usize,
    /// Hidden layers (the paper: 5, plus the classifier: 6 layers).
    pub depth: usize,
}

/// The decoder-only transformer on the modular task's tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransformerConfig {
    /// Width (the paper: 128).
    pub d_model: usize,
    /// Attention heads (the paper: 4).
    pub heads: usize,
    /// Blocks (the paper: 2).
    pub layers: usize,
    /// LayerNorm in the blocks (the paper: none).
    pub layer_norm: bool,
}

/// VGG11, with or without BatchNorm after each convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VggConfig {
    /// Base width (the paper: 64; the features are `8 x` this).
    pub channels: usize,
    /// BatchNorm after each convolution (`vgg11-bn`).
    pub batch_norm: bool,
}

/// ResNet18 for 32x32 images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResNetConfig {
    /// Base width (the paper: 64; the features are `8 x` this).
    pub channels: usize,
}

/// The Vision Transformer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VitConfig {
    /// Width (the paper: 256).
    pub d_model: usize,
    /// Attention heads (the paper: 8).
    pub heads: usize,
    /// Blocks (the paper: 12).
    pub layers: usize,
    /// Patch side (the paper: 4; it must divide 32).
    pub patch: usize,
}

/// The network before the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkConfig {
    /// [`ModelKind::Mlp`].
    Mlp(MlpConfig),
    /// [`ModelKind::Transformer`].
    Transformer(TransformerConfig),
    /// [`ModelKind::Vgg11`] or [`ModelKind::Vgg11Bn`].
    Vgg11(VggConfig),
    /// [`ModelKind::Resnet18`].
    Resnet18(ResNetConfig),
    /// [`ModelKind::Vit`].
    Vit(VitConfig),
}

impl NetworkConfig {
    /// The network's kind.
    pub fn kind(&self) -> ModelKind {
        match self {
            NetworkConfig::Mlp(_) => ModelKind::Mlp,
            NetworkConfig::Transformer(_) => ModelKind::Transformer,
            NetworkConfig::Vgg11(v) if v.batch_norm => ModelKind::Vgg11Bn,
            NetworkConfig::Vgg11(_) => ModelKind::Vgg11,
            NetworkConfig::Resnet18(_) => ModelKind::Resnet18,
            NetworkConfig::Vit(_) => ModelKind::Vit,
        }
    }

    /// `kind` at the paper's sizes (App. D Tables 2 and 3).
    pub fn paper(kind: ModelKind) -> Self {
        ModelFile::paper(kind).network()
    }
}

/// The classifier head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadConfig {
    /// Biases in the classifier (App. A.1.3 turns it off).
    pub classifier_bias: bool,
    /// Normalization of the features before the classifier.
    pub head_norm: HeadNorm,
    /// Forward the classifier with `W - W_G`.
    pub centered: bool,
}

/// The architecture: a network and its head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "ModelFile", into = "ModelFile")]
pub struct ModelConfig {
    /// The network.
    pub network: NetworkConfig,
    /// The head.
    pub head: HeadConfig,
}

/// The flat form of `config.json`: every size of every network, the unused ones at the
/// paper's values.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ModelFile {
    kind: ModelKind,
    width: usize,
    depth: usize,
    d_model: usize,
    heads: usize,
    layers: usize,
    layer_norm: bool,
    classifier_bias: bool,
    head_norm: HeadNorm,
    centered: bool,
    #[serde(default = "default_channels")]
    channels: usize,
    #[serde(default = "default_patch")]
    patch: usize,
}

fn default_channels() -> usize {
    64
}

fn default_patch() -> usize {
    4
}

impl ModelFile {
    /// The paper's sizes for `kind`, a plain head.
    fn paper(kind: ModelKind) -> Self {
        let vit = kind == ModelKind::Vit;
        Self {
            kind,
            width: 512,
            depth: 5,
            d_model: if vit { 256 } else { 128 },
            heads: if vit { 8 } else { 4 },
            layers: if vit { 12 } else { 2 },
            layer_norm: false,
            classifier_bias: true,
            head_norm: HeadNorm::None,
            centered: false,
            channels: default_channels(),
            patch: default_patch(),
        }
    }

    fn network(&self) -> NetworkConfig {
        match self.kind {
            ModelKind::Mlp => NetworkConfig::Mlp(MlpConfig {
                width: self.width,
                depth: self.depth,
            }),
            ModelKind::Transformer => NetworkConfig::Transformer(TransformerConfig {
                d_model: self.d_model,
                heads: self.heads,
                layers: self.layers,
                layer_norm: self.layer_norm,
            }),
            ModelKind::Vgg11 | ModelKind::Vgg11Bn => NetworkConfig::Vgg11(VggConfig {
                channels: self.channels,
                batch_norm: self.kind == ModelKind::Vgg11Bn,
            }),
            ModelKind::Resnet18 => NetworkConfig::Resnet18(ResNetConfig {
                channels: self.channels,
            }),
            ModelKind::Vit => NetworkConfig::Vit(VitConfig {
                d_model: self.d_model,
                heads: self.heads,
                layers: self.layers,
                patch: self.patch,
            }),
        }
    }
}

impl From<ModelFile> for ModelConfig {
    fn from(file: ModelFile) -> Self {
        Self {
            network: file.network(),
            head: HeadConfig {
                classifier_bias: file.classifier_bias,
                head_norm: file.head_norm,
                centered: file.centered,
            },
        }
    }
}

impl From<ModelConfig> for ModelFile {
    fn from(config: ModelConfig) -> Self {
        let mut f = ModelFile::paper(config.network.kind());
        match config.network {
            NetworkConfig::Mlp(m) => (f.width, f.depth) = (m.width, m.depth),
            NetworkConfig::Transformer(t) => {
                (f.d_model, f.heads, f.layers, f.layer_norm) =
                    (t.d_model, t.heads, t.layers, t.layer_norm)
            }
            NetworkConfig::Vgg11(v) => f.channels = v.channels,
            NetworkConfig::Resnet18(r) => f.channels = r.channels,
            NetworkConfig::Vit(v) => {
                (f.d_model, f.heads, f.layers, f.patch) = (v.d_model, v.heads, v.layers, v.patch)
            }
        }
        f.classifier_bias = config.head.classifier_bias;
        f.head_norm = config.head.head_norm;
        f.centered = config.head.centered;
        f
    }
}

impl ModelConfig {
    /// `kind` at the paper's sizes with a plain head.
    pub fn paper(kind: ModelKind) -> Self {
        ModelFile::paper(kind).into()
    }

    /// The paper's 6-layer MLP (App. D Table 2).
    pub fn paper_mlp() -> Self {
        Self::paper(ModelKind::Mlp)
    }

    /// App. D.2's image networks: the 6-layer MLP of width 512, VGG11 and ResNet18 of base
    /// width 64, and the ViT of width 256 with 12 blocks of 8 heads on 4x4 patches.
    pub fn paper_image(kind: ModelKind) -> Self {
        Self::paper(kind)
    }

    /// The paper's 2-layer transformer.
    pub fn paper_transformer() -> Self {
        Self::paper(ModelKind::Transformer)
    }

    /// The network's kind.
    pub fn kind(&self) -> ModelKind {
        self.network.kind()
    }
}
