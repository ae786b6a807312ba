//! VGG11 for 32x32 images with a single linear classifier (App. D.2): eight 3x3 convolutions,
//! each optionally followed by BatchNorm, then ReLU, with five 2x2 max-pools, leaving a
//! `8 c`-channel 1x1 map as the penultimate features.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d, Relu};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

/// VGG11's layers in units of the base width `c` (64 in the paper); 0 is a max-pool.
const LAYOUT: [usize; 13] = [1, 0, 2, 0, 4, 4, 0, 8, 8, 0, 8, 8, 0];

/// One 3x3 convolution, optional BatchNorm, ReLU, and an optional 2x2 max-pool after it.
#[derive(Module, Debug)]
pub struct ConvUnit<B: Backend> {
    conv: Conv2d<B>,
    norm: Option<BatchNorm<B>>,
    pool: Option<MaxPool2d>,
    activation: Relu,
}

impl<B: Backend> ConvUnit<B> {
    fn new(c_in: usize, c_out: usize, batch_norm: bool, pool: bool, device: &B::Device) -> Self {
        Self {
            conv: Conv2dConfig::new([c_in, c_out], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device),
            norm: batch_norm.then(|| BatchNormConfig::new(c_out).init(device)),
            pool: pool.then(|| MaxPool2dConfig::new([2, 2]).init()),
            activation: Relu::new(),
        }
    }

    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let x = self.conv.forward(x);
        let x = match &self.norm {
            Some(norm) => norm.forward(x),
            None => x,
        };
        let x = self.activation.forward(x);
        match &self.pool {
            Some(pool) => pool.forward(x),
            None => x,
        }
    }
}

/// The convolutional part of VGG11; the classifier is the model's [`super::Head`].
#[derive(Module, Debug)]
pub struct Vgg<B: Backend> {
    units: Vec<ConvUnit<B>>,
}

impl<B: Backend> Vgg<B> {
    /// VGG11 of base width `c` on 3-channel images, with BatchNorm after each convolution
    /// when `batch_norm`.
    pub fn new(c: usize, batch_norm: bool, device: &B::Device) -> Self {
        let mut units = Vec::new();
        let mut c_in = 3;
        for (i, &m) in LAYOUT.iter().enumerate() {
            if m == 0 {
                continue;
            }
            let pool = LAYOUT.get(i + 1) == Some(&0);
            units.push(ConvUnit::new(c_in, m * c, batch_norm, pool, device));
            c_in = m * c;
        }
        Self { units }
    }

    /// The width of the features: `8 c`.
    pub fn features_dim(c: usize) -> usize {
        8 * c
    }

    /// Penultimate features `[n, 8 c]` of images `[n, 3, 32, 32]`.
    pub fn features(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let x = self.units.iter().fold(x, |x, unit| unit.forward(x));
        // Five pools take 32x32 to 1x1.
        x.flatten(1, 3)
    }
}
