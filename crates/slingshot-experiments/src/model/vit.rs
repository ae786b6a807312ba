//! A Vision Transformer for 32x32 images (App. D.2: patch 4, width 256, 12 blocks, 8 heads,
//! about 10M parameters): a patch embedding, learned positions, pre-norm blocks with a GELU
//! MLP of width `4 d`, a final LayerNorm, and the mean over patches as the features.

use burn::module::{Module, Param};
use burn::nn::attention::{MhaInput, MultiHeadAttention, MultiHeadAttentionConfig};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Gelu, Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

/// Image side length.
const SIDE: usize = 32;

/// `x + attn(ln(x))`, then `x + mlp(ln(x))`.
#[derive(Module, Debug)]
pub struct VitBlock<B: Backend> {
    norm_attention: LayerNorm<B>,
    attention: MultiHeadAttention<B>,
    norm_mlp: LayerNorm<B>,
    up: Linear<B>,
    down: Linear<B>,
    activation: Gelu,
}

impl<B: Backend> VitBlock<B> {
    fn new(d: usize, heads: usize, device: &B::Device) -> Self {
        Self {
            norm_attention: LayerNormConfig::new(d).init(device),
            attention: MultiHeadAttentionConfig::new(d, heads)
                .with_dropout(0.0)
                .init(device),
            norm_mlp: LayerNormConfig::new(d).init(device),
            up: LinearConfig::new(d, 4 * d).init(device),
            down: LinearConfig::new(4 * d, d).init(device),
            activation: Gelu::new(),
        }
    }

    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let attended = self
            .attention
            .forward(MhaInput::self_attn(self.norm_attention.forward(x.clone())))
            .context;
        let x = x + attended;
        let hidden = self
            .activation
            .forward(self.up.forward(self.norm_mlp.forward(x.clone())));
        x + self.down.forward(hidden)
    }
}

/// The ViT up to the pooled features; the classifier is the model's [`super::Head`].
#[derive(Module, Debug)]
pub struct Vit<B: Backend> {
    patches: Conv2d<B>,
    positions: Param<Tensor<B, 3>>,
    blocks: Vec<VitBlock<B>>,
    norm: LayerNorm<B>,
}

impl<B: Backend> Vit<B> {
    /// `layers` blocks of width `d` with `heads` heads on `patch x patch` patches.
    pub fn new(patch: usize, d: usize, heads: usize, layers: usize, device: &B::Device) -> Self {
        let tokens = (SIDE / patch) * (SIDE / patch);
        Self {
            patches: Conv2dConfig::new([3, d], [patch, patch])
                .with_stride([patch, patch])
                .init(device),
            positions: Initializer::Normal {
                mean: 0.0,
                std: 0.02,
            }
            .init([1, tokens, d], device),
            blocks: (0..layers)
                .map(|_| VitBlock::new(d, heads, device))
                .collect(),
            norm: LayerNormConfig::new(d).init(device),
        }
    }

    /// Penultimate features `[n, d]` of images `[n, 3, 32, 32]`.
    pub fn features(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let x = self.patches.forward(x); // [n, d, 32/patch, 32/patch]
        let [n, d, h, w] = x.dims();
        let x = x.reshape([n, d, h * w]).swap_dims(1, 2) + self.positions.val();
        let x = self.blocks.iter().fold(x, |x, block| block.forward(x));
        self.norm.forward(x).mean_dim(1).reshape([n, d])
    }
}
