//! The paper's 2-layer decoder-only transformer on the four tokens `[a, OP, b, =]`; the
//! classifier reads the last position.

use burn::module::Module;
use burn::nn::attention::{
    MhaInput, MultiHeadAttention, MultiHeadAttentionConfig, generate_autoregressive_mask,
};
use burn::nn::{
    Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig, Relu,
};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

/// One pre-norm block: `x + attn(norm(x))`, then `x + ffn(norm(x))` (norms optional).
#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    attention: MultiHeadAttention<B>,
    norm_attention: Option<LayerNorm<B>>,
    up: Linear<B>,
    down: Linear<B>,
    norm_ffn: Option<LayerNorm<B>>,
    activation: Relu,
}

impl<B: Backend> Block<B> {
    fn new(d_model: usize, heads: usize, layer_norm: bool, device: &B::Device) -> Self {
        let norm = || layer_norm.then(|| LayerNormConfig::new(d_model).init(device));
        Self {
            attention: MultiHeadAttentionConfig::new(d_model, heads)
                .with_dropout(0.0)
                .init(device),
            norm_attention: norm(),
            up: LinearConfig::new(d_model, 4 * d_model).init(device),
            down: LinearConfig::new(4 * d_model, d_model).init(device),
            norm_ffn: norm(),
            activation: Relu::new(),
        }
    }

    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [batch, seq, _] = x.dims();
        let normed = match &self.norm_attention {
            Some(n) => n.forward(x.clone()),
            None => x.clone(),
        };
        let mask = generate_autoregressive_mask::<B>(batch, seq, &x.device());
        let attended = self
            .attention
            .forward(MhaInput::self_attn(normed).mask_attn(mask))
            .context;
        let x = x + attended;
        let normed = match &self.norm_ffn {
            Some(n) => n.forward(x.clone()),
            None => x.clone(),
        };
        x.clone()
            + self
                .down
                .forward(self.activation.forward(self.up.forward(normed)))
    }
}

/// Token and position embeddings and the blocks; the classifier is the model's
/// [`super::Head`].
#[derive(Module, Debug)]
pub struct Transformer<B: Backend> {
    tokens: Embedding<B>,
    positions: Embedding<B>,
    blocks: Vec<Block<B>>,
}

impl<B: Backend> Transformer<B> {
    /// `layers` blocks of width `d_model` with `heads` heads and an FFN of `4 d_model`.
    pub fn new(
        vocab: usize,
        seq: usize,
        d_model: usize,
        heads: usize,
        layers: usize,
        layer_norm: bool,
        device: &B::Device,
    ) -> Self {
        Self {
            tokens: EmbeddingConfig::new(vocab, d_model).init(device),
            positions: EmbeddingConfig::new(seq, d_model).init(device),
            blocks: (0..layers)
                .map(|_| Block::new(d_model, heads, layer_norm, device))
                .collect(),
        }
    }

    /// Penultimate features `[n, d_model]`: the last position's output for tokens `[n, seq]`.
    pub fn features(&self, tokens: Tensor<B, 2, Int>) -> Tensor<B, 2> {
        let [n, seq] = tokens.dims();
        let device = tokens.device();
        let positions = Tensor::<B, 1, Int>::arange(0..seq as i64, &device)
            .reshape([1, seq])
            .expand([n, seq]);
        let x = self.tokens.forward(tokens) + self.positions.forward(positions);
        let x = self.blocks.iter().fold(x, |x, block| block.forward(x));
        let [_, _, d] = x.dims();
        x.slice([0..n, seq - 1..seq, 0..d]).reshape([n, d])
    }
}
