//! The nanoGPT-style decoder of App. D Table 4: pre-LayerNorm blocks without biases, causal
//! attention with QK-LayerNorm and RoPE, a SwiGLU feed-forward, untied input and output
//! embeddings, embeddings drawn from `N(0, 1/d)` and every other matrix Xavier-normal.
//!
//! The output embedding is a [`CenteredLinear`], so that the centered arm (App. A.4) computes
//! its logits with `W - W_G` from the same stored parameters that the other arms use plainly.

use burn::module::Module;
use burn::nn::attention::generate_autoregressive_mask;
use burn::nn::{
    Embedding, EmbeddingConfig, Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig,
};
use burn::tensor::activation::{silu, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor};
use slingshot_nn::{CenteredLinear, CenteredLinearConfig};

use super::config::GptConfig;
use super::rope::RopeTables;
use crate::error::ExperimentError;

/// Xavier-normal, gain 1: the weights' initialization in Table 4's setup.
fn xavier() -> Initializer {
    Initializer::XavierNormal { gain: 1.0 }
}

fn linear<B: Backend>(d_in: usize, d_out: usize, device: &B::Device) -> Linear<B> {
    LinearConfig::new(d_in, d_out)
        .with_bias(false)
        .with_initializer(xavier())
        .init(device)
}

fn layer_norm<B: Backend>(d: usize, eps: f64, device: &B::Device) -> LayerNorm<B> {
    LayerNormConfig::new(d)
        .with_bias(false)
        .with_epsilon(eps)
        .init(device)
}

/// Causal self-attention with LayerNorm on each head's queries and keys (QK-LayerNorm), then
/// RoPE.
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    query: Linear<B>,
    key: Linear<B>,
    value: Linear<B>,
    output: Linear<B>,
    /// LayerNorm over a head's query, shared by the heads.
    query_norm: LayerNorm<B>,
    /// LayerNorm over a head's key, shared by the heads.
    key_norm: LayerNorm<B>,
    #[module(skip)]
    heads: usize,
}

impl<B: Backend> Attention<B> {
    fn new(config: &GptConfig, device: &B::Device) -> Self {
        let (d, hd) = (config.d_model, config.head_dim());
        Self {
            query: linear(d, d, device),
            key: linear(d, d, device),
            value: linear(d, d, device),
            output: linear(d, d, device),
            query_norm: layer_norm(hd, config.norm_eps, device),
            key_norm: layer_norm(hd, config.norm_eps, device),
            heads: config.n_heads,
        }
    }

    /// The normalized, rotated queries and keys `[batch, heads, seq, head_dim]` of `x`.
    pub fn queries_keys(
        &self,
        x: Tensor<B, 3>,
        rope: &RopeTables<B>,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let q = rope.apply(
            self.query_norm
                .forward(self.split(self.query.forward(x.clone()))),
        );
        let k = rope.apply(self.key_norm.forward(self.split(self.key.forward(x))));
        (q, k)
    }

    fn split(&self, y: Tensor<B, 3>) -> Tensor<B, 4> {
        let [b, t, d] = y.dims();
        y.reshape([b, t, self.heads, d / self.heads])
            .swap_dims(1, 2)
    }

    fn forward(
        &self,
        x: Tensor<B, 3>,
        rope: &RopeTables<B>,
        mask: &Tensor<B, 4, Bool>,
    ) -> Tensor<B, 3> {
        let [b, t, d] = x.dims();
        let h = self.heads;
        let (q, k) = self.queries_keys(x.clone(), rope);
        let v = self.split(self.value.forward(x));
        let scores = q
            .matmul(k.swap_dims(2, 3))
            .div_scalar(((d / h) as f64).sqrt())
            .mask_fill(mask.clone().expand([b, h, t, t]), f32::NEG_INFINITY);
        let mixed = softmax(scores, 3)
            .matmul(v)
            .swap_dims(1, 2)
            .reshape([b, t, d]);
        self.output.forward(mixed)
    }
}

/// The SwiGLU feed-forward `W_2 (silu(x W_1) * x W_3)`.
#[derive(Module, Debug)]
pub struct SwiGlu<B: Backend> {
    gate: Linear<B>,
    up: Linear<B>,
    down: Linear<B>,
}

impl<B: Backend> SwiGlu<B> {
    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        self.down
            .forward(silu(self.gate.forward(x.clone())) * self.up.forward(x))
    }
}

/// A pre-LayerNorm block: `x + attn(LN(x))`, then `x + ffn(LN(x))`.
#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    attention_norm: LayerNorm<B>,
    /// The attention.
    pub attention: Attention<B>,
    ffn_norm: LayerNorm<B>,
    ffn: SwiGlu<B>,
}

impl<B: Backend> Block<B> {
    fn forward(
        &self,
        x: Tensor<B, 3>,
        rope: &RopeTables<B>,
        mask: &Tensor<B, 4, Bool>,
    ) -> Tensor<B, 3> {
        let x = x.clone()
            + self
                .attention
                .forward(self.attention_norm.forward(x), rope, mask);
        x.clone() + self.ffn.forward(self.ffn_norm.forward(x))
    }
}

/// The decoder.
#[derive(Module, Debug)]
pub struct Gpt<B: Backend> {
    /// Input embedding, `N(0, 1/d)`.
    pub embedding: Embedding<B>,
    /// The blocks.
    pub blocks: Vec<Block<B>>,
    /// The final LayerNorm; its output is the feature `h` whose mean is `mu_G`.
    pub norm: LayerNorm<B>,
    /// Output embedding (untied), `[d, vocab]` as burn's `Linear` stores it.
    pub head: CenteredLinear<B>,
    /// Compute the logits with `W - W_G` (the centered arm).
    #[module(skip)]
    centered: bool,
    #[module(skip)]
    rope_theta: f64,
}

/// What a forward pass returns.
#[derive(Debug, Clone)]
pub struct GptOutput<B: Backend> {
    /// `[batch, seq, vocab]`.
    pub logits: Tensor<B, 3>,
    /// The final LayerNorm's output `[batch, seq, d]`, the head's input.
    pub features: Tensor<B, 3>,
}

impl GptConfig {
    /// The decoder over `vocab` tokens; `centered` makes the head compute with `W - W_G`.
    pub fn init<B: Backend>(
        &self,
        vocab: usize,
        centered: bool,
        device: &B::Device,
    ) -> Result<Gpt<B>, ExperimentError> {
        self.validate()?;
        let d = self.d_model;
        let block = || Block {
            attention_norm: layer_norm(d, self.norm_eps, device),
            attention: Attention::new(self, device),
            ffn_norm: layer_norm(d, self.norm_eps, device),
            ffn: SwiGlu {
                gate: linear(d, self.ffn_hidden, device),
                up: linear(d, self.ffn_hidden, device),
                down: linear(self.ffn_hidden, d, device),
            },
        };
        Ok(Gpt {
            embedding: EmbeddingConfig::new(vocab, d)
                .with_initializer(Initializer::Normal {
                    mean: 0.0,
                    std: 1.0 / (d as f64).sqrt(),
                })
                .init(device),
            blocks: (0..self.n_layers).map(|_| block()).collect(),
            norm: layer_norm(d, self.norm_eps, device),
            head: CenteredLinearConfig::new(d, vocab)
                .with_bias(false)
                .with_initializer(xavier())
                .try_init(device)?,
            centered,
            rope_theta: self.rope_theta,
        })
    }
}

impl<B: Backend> Gpt<B> {
    /// Logits and features of `tokens` `[batch, seq]`, each position seeing itself and the
    /// positions before it.
    pub fn forward(&self, tokens: Tensor<B, 2, Int>) -> GptOutput<B> {
        let [_, t] = tokens.dims();
        let device = tokens.device();
        let mut x = self.embedding.forward(tokens);
        let rope = RopeTables::new(t, self.head_dim(), self.rope_theta, &device);
        let mask = generate_autoregressive_mask::<B>(1, t, &device).reshape([1, 1, t, t]);
        for block in &self.blocks {
            x = block.forward(x, &rope, &mask);
        }
        let features = self.norm.forward(x);
        let logits = if self.centered {
            self.head.forward(features.clone())
        } else {
            self.head.linear.forward(features.clone())
        };
        GptOutput { logits, features }
    }

    /// Width of one head.
    pub fn head_dim(&self) -> usize {
        let [d, _] = self.head.linear.weight.dims();
        let [hd] = self.blocks[0].attention.query_norm.gamma.dims();
        debug_assert!(d.is_multiple_of(hd));
        hd
    }

    /// Whether the head computes with `W - W_G`.
    pub fn is_centered(&self) -> bool {
        self.centered
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn_ndarray::NdArray;

    type B = NdArray;

    fn tiny() -> (GptConfig, Gpt<B>) {
        let config = GptConfig::new(16, 2, 2, 24);
        let _guard = crate::train::INIT_RNG
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        B::seed(&Default::default(), 3);
        let model = config.init::<B>(11, false, &Default::default()).unwrap();
        model.visit(&mut crate::train::Materialize);
        (config, model)
    }

    #[test]
    fn the_parameter_count_from_the_shape_is_the_allocated_one() {
        let (config, model) = tiny();
        assert_eq!(model.num_params(), config.num_params(11));
    }

    #[test]
    fn shapes_and_causality() {
        let (_, model) = tiny();
        let device = Default::default();
        let tokens = Tensor::<B, 2, Int>::from_ints([[1, 2, 3, 4, 5], [5, 4, 3, 2, 1]], &device);
        let out = model.forward(tokens.clone());
        assert_eq!(out.logits.dims(), [2, 5, 11]);
        assert_eq!(out.features.dims(), [2, 5, 16]);
        // QK-LayerNorm: per-head queries and keys of unit RMS (gain 1 at init).
        let x = model.embedding.forward(tokens.clone());
        let rope = RopeTables::new(5, 8, 10000.0, &device);
        let (q, k) = model.blocks[0].attention.queries_keys(x, &rope);
        assert_eq!(q.dims(), [2, 2, 5, 8]);
        assert_eq!(k.dims(), [2, 2, 5, 8]);
        let rms: f32 = q.powi_scalar(2).mean_dim(3).sqrt().mean().into_scalar();
        assert!((rms - 1.0).abs() < 1e-3, "{rms}");
        // Changing the last token leaves the earlier positions' logits alone.
        let other = Tensor::<B, 2, Int>::from_ints([[1, 2, 3, 4, 9], [5, 4, 3, 2, 7]], &device);
        let a = out.logits.narrow(1, 0, 4);
        let b = model.forward(other).logits.narrow(1, 0, 4);
        let diff: f32 = (a - b).abs().max().into_scalar();
        assert_eq!(diff, 0.0);
    }

    #[test]
    fn the_centered_head_shifts_each_rows_logits_by_one_constant() {
        let (_, model) = tiny();
        let centered = Gpt {
            centered: true,
            ..model.clone()
        };
        let tokens = Tensor::<B, 2, Int>::from_ints([[1, 2, 3]], &Default::default());
        let plain = model.forward(tokens.clone()).logits;
        let shifted = centered.forward(tokens).logits;
        // z - z* = h . W_G is the same for every token of a row.
        let gap = plain - shifted;
        let spread: f32 = (gap.clone().max_dim(2) - gap.min_dim(2))
            .max()
            .into_scalar();
        assert!(spread < 1e-5, "{spread}");
    }
}
