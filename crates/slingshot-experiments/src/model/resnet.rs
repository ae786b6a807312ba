//! ResNet18 for 32x32 images (App. D.2): a 3x3 stride-1 stem without max-pool, four stages of
//! two basic blocks (widths `c, 2c, 4c, 8c`; `c` = 64 in the paper), global average pooling.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d, Relu};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

/// A bias-free 3x3 (or 1x1) convolution followed by BatchNorm, as in torchvision.
#[derive(Module, Debug)]
pub struct ConvBn<B: Backend> {
    conv: Conv2d<B>,
    norm: BatchNorm<B>,
}

impl<B: Backend> ConvBn<B> {
    fn new(c_in: usize, c_out: usize, kernel: usize, stride: usize, device: &B::Device) -> Self {
        let pad = kernel / 2;
        Self {
            conv: Conv2dConfig::new([c_in, c_out], [kernel, kernel])
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
                .with_bias(false)
                .init(device),
            norm: BatchNormConfig::new(c_out).init(device),
        }
    }

    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.norm.forward(self.conv.forward(x))
    }
}

/// `relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))`.
#[derive(Module, Debug)]
pub struct BasicBlock<B: Backend> {
    first: ConvBn<B>,
    second: ConvBn<B>,
    /// A 1x1 projection where the shape changes.
    shortcut: Option<ConvBn<B>>,
    activation: Relu,
}

impl<B: Backend> BasicBlock<B> {
    fn new(c_in: usize, c_out: usize, stride: usize, device: &B::Device) -> Self {
        Self {
            first: ConvBn::new(c_in, c_out, 3, stride, device),
            second: ConvBn::new(c_out, c_out, 3, 1, device),
            shortcut: (stride != 1 || c_in != c_out)
                .then(|| ConvBn::new(c_in, c_out, 1, stride, device)),
            activation: Relu::new(),
        }
    }

    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let y = self.activation.forward(self.first.forward(x.clone()));
        let y = self.second.forward(y);
        let skip = match &self.shortcut {
            Some(s) => s.forward(x),
            None => x,
        };
        self.activation.forward(y + skip)
    }
}

/// ResNet18 up to the pooled features; the classifier is the model's [`super::Head`].
#[derive(Module, Debug)]
pub struct ResNet<B: Backend> {
    stem: ConvBn<B>,
    blocks: Vec<BasicBlock<B>>,
    pool: AdaptiveAvgPool2d,
    activation: Relu,
}

impl<B: Backend> ResNet<B> {
    /// ResNet18 of base width `c`.
    pub fn new(c: usize, device: &B::Device) -> Self {
        let mut blocks = Vec::new();
        let mut c_in = c;
        for (stage, width) in [c, 2 * c, 4 * c, 8 * c].into_iter().enumerate() {
            for block in 0..2 {
                let stride = if stage > 0 && block == 0 { 2 } else { 1 };
                blocks.push(BasicBlock::new(c_in, width, stride, device));
                c_in = width;
            }
        }
        Self {
            stem: ConvBn::new(3, c, 3, 1, device),
            blocks,
            pool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            activation: Relu::new(),
        }
    }

    /// The width of the features: `8 c`.
    pub fn features_dim(c: usize) -> usize {
        8 * c
    }

    /// Penultimate features `[n, 8 c]` of images `[n, 3, 32, 32]`.
    pub fn features(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let x = self.activation.forward(self.stem.forward(x));
        let x = self.blocks.iter().fold(x, |x, block| block.forward(x));
        self.pool.forward(x).flatten(1, 3)
    }
}
