//! The paper's 2-layer decoder-only transformer on the four tokens `[a, OP, b, =]`; the
//! classifier reads the last position.

use burn::module::Module;
use burn::nn::attention::{
    MultiHeadAttention, MultiHeadAttentionConfig, generate_autoregressive_mask,
};
use burn::nn::{
    Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig, Relu,
};
use burn::tensor::activation::{quiet_softmax, softmax};
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
        let normed = match &self.norm_attention {
            Some(n) => n.forward(x.clone()),
            None => x.clone(),
        };
        let x = x + self.attend(normed);
        let normed = match &self.norm_ffn {
            Some(n) => n.forward(x.clone()),
            None => x.clone(),
        };
        x + self.ffn(normed)
    }

    /// burn's `MultiHeadAttention::forward` with the causal mask, its four projections applied
    /// to the `batch * seq` rows as one matrix (see [`Self::ffn`]; 32 MiB per projection saved
    /// at the paper's sizes).
    fn attend(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let mha = &self.attention;
        let [batch, seq, d] = x.dims();
        let rows = x.reshape([batch * seq, d]);
        let heads = |linear: &Linear<B>| {
            linear
                .forward(rows.clone())
                .reshape([batch, seq, mha.n_heads, mha.d_k])
                .swap_dims(1, 2)
        };
        let (query, key, value) = (heads(&mha.query), heads(&mha.key), heads(&mha.value));
        let scores = query
            .matmul(key.transpose())
            .div_scalar((mha.d_k as f32).sqrt());
        let scores = mha.dropout.forward(scores);
        let mask = generate_autoregressive_mask::<B>(batch, seq, &rows.device())
            .reshape([batch, 1, seq, seq]);
        let scores = scores.mask_fill(mask, mha.min_float);
        let weights = if mha.quiet_softmax {
            quiet_softmax(scores, 3)
        } else {
            softmax(scores, 3)
        };
        let context = weights
            .matmul(value)
            .swap_dims(1, 2)
            .reshape([batch * seq, d]);
        mha.output.forward(context).reshape([batch, seq, d])
    }

    /// `down(relu(up(x)))` on the `batch * seq` rows as one matrix. burn's backward of a rank-3
    /// linear forms a `[batch, d_in, d_out]` weight gradient and sums it (128 MiB per layer at
    /// the paper's sizes); the rank-2 backward is one matmul.
    fn ffn(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [batch, seq, d] = x.dims();
        let rows = x.reshape([batch * seq, d]);
        let hidden = self.activation.forward(self.up.forward(rows));
        self.down.forward(hidden).reshape([batch, seq, d])
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

#[cfg(test)]
mod tests {
    use burn::backend::Autodiff;
    use burn::tensor::{Tensor, TensorData};
    use burn_ndarray::NdArray;

    use burn::module::Param;
    use burn::nn::Linear;
    use burn::nn::attention::{MhaInput, generate_autoregressive_mask};
    use burn::tensor::backend::AutodiffBackend;

    use super::Block;

    type A32 = Autodiff<NdArray<f32>>;
    type A64 = Autodiff<NdArray<f64>>;
    type Gradients = <A32 as AutodiffBackend>::Gradients;

    fn to_f64<const D: usize>(t: Tensor<A32, D>) -> Tensor<A64, D> {
        Tensor::from_data(t.into_data().convert::<f64>(), &Default::default())
    }

    /// One tensor's gradient from the flattened graph, burn's rank-3 graph and the f64 graph.
    fn grads<const D: usize, const E: usize>(
        t: &Tensor<A32, D>,
        t64: &Tensor<A64, E>,
        [flat, rank3, f64_grads]: [&Gradients; 3],
    ) -> [TensorData; 3] {
        [
            t.grad(flat).unwrap().into_data(),
            t.grad(rank3).unwrap().into_data(),
            t64.grad(f64_grads).unwrap().into_data(),
        ]
    }

    /// Fixed values in [-scale, scale] (no RNG, so every run checks the same numbers).
    fn fixed<const D: usize>(shape: [usize; D], phase: f32, scale: f32) -> Tensor<A32, D> {
        let n = shape.iter().product::<usize>();
        let values: Vec<f32> = (0..n)
            .map(|i| scale * (0.7 * i as f32 + phase).sin())
            .collect();
        Tensor::from_data(TensorData::new(values, shape), &Default::default())
    }

    /// Replaces a linear's parameters with fixed values of its fan-in's scale.
    fn fix(linear: &mut Linear<A32>, phase: f32) {
        let [d_in, d_out] = linear.weight.dims();
        let scale = 1.0 / (d_in as f32).sqrt();
        linear.weight = Param::from_tensor(fixed([d_in, d_out], phase, scale));
        linear.bias = Some(Param::from_tensor(fixed([d_out], phase + 1.0, scale)));
    }

    fn max_rel_err(got: TensorData, want: TensorData) -> f64 {
        let got = got.convert::<f64>().to_vec::<f64>().unwrap();
        let want = want.convert::<f64>().to_vec::<f64>().unwrap();
        assert_eq!(got.len(), want.len());
        assert!(got.iter().chain(&want).all(|v| v.is_finite()));
        let scale = want.iter().fold(0f64, |m, w| m.max(w.abs()));
        let err = got
            .iter()
            .zip(&want)
            .fold(0f64, |m, (g, w)| m.max((g - w).abs()));
        err / scale
    }

    /// The flattened attention's output and its gradients for the four projections and the
    /// input agree with burn's `MultiHeadAttention` under the causal mask, in f32 and in f64.
    #[test]
    fn flattened_attention_matches_burns_multi_head_attention_in_f32_and_f64() {
        let device = Default::default();
        // batch, seq and d_k all differ, so that a swapped axis changes the numbers.
        let (batch, seq, d) = (3, 5, 12);
        let mut block = Block::<A32>::new(d, 4, false, &device);
        let mut block64 = Block::<A64>::new(d, 4, false, &device);
        let mha = &mut block.attention;
        for (i, linear) in [
            &mut mha.query,
            &mut mha.key,
            &mut mha.value,
            &mut mha.output,
        ]
        .into_iter()
        .enumerate()
        {
            fix(linear, i as f32);
        }
        let copy = |from: &Linear<A32>, to: &mut Linear<A64>| {
            to.weight = Param::from_tensor(to_f64(from.weight.val()));
            to.bias = Some(Param::from_tensor(to_f64(
                from.bias.as_ref().unwrap().val(),
            )));
        };
        let mha = &block.attention;
        {
            let mha64 = &mut block64.attention;
            copy(&mha.query, &mut mha64.query);
            copy(&mha.key, &mut mha64.key);
            copy(&mha.value, &mut mha64.value);
            copy(&mha.output, &mut mha64.output);
        }
        let mha64 = &block64.attention;
        let x = fixed([batch, seq, d], 0.3, 1.0).require_grad();
        let x64 = to_f64(x.clone()).require_grad();
        let probe = fixed([batch, seq, d], 0.9, 1.0);
        let mask = generate_autoregressive_mask::<A32>(batch, seq, &device);
        let mask64 = generate_autoregressive_mask::<A64>(batch, seq, &device);
        let reference = mha64
            .forward(MhaInput::self_attn(x64.clone()).mask_attn(mask64))
            .context;

        let flat = block.attend(x.clone());
        let flat_grads = (flat.clone() * probe.clone()).sum().backward();
        let rank3 = mha
            .forward(MhaInput::self_attn(x.clone()).mask_attn(mask))
            .context;
        let rank3_grads = (rank3.clone() * probe.clone()).sum().backward();
        let grads64 = (reference.clone() * to_f64(probe)).sum().backward();

        let grad_sets = [&flat_grads, &rank3_grads, &grads64];
        let mut triples = vec![[flat.into_data(), rank3.into_data(), reference.into_data()]];
        let weights = [&mha.query, &mha.key, &mha.value, &mha.output].map(|l| l.weight.val());
        let weights64 =
            [&mha64.query, &mha64.key, &mha64.value, &mha64.output].map(|l| l.weight.val());
        for (w, w64) in weights.iter().zip(&weights64) {
            triples.push(grads(w, w64, grad_sets));
        }
        triples.push(grads(&x, &x64, grad_sets));
        for (i, [flat, rank3, reference]) in triples.into_iter().enumerate() {
            assert!(
                max_rel_err(flat.clone(), rank3) < 1e-6,
                "{i}: against burn's attention"
            );
            assert!(max_rel_err(flat, reference) < 1e-5, "{i}: against f64");
        }
    }

    /// The flattened FFN's output and its gradients for the weights and the input agree with
    /// burn's rank-3 linears in f32 and with the same products in f64.
    #[test]
    fn flattened_ffn_matches_rank_3_linears_and_an_f64_reference() {
        let device = Default::default();
        let (batch, seq, d) = (3, 5, 12);
        let mut block = Block::<A32>::new(d, 4, false, &device);
        fix(&mut block.up, 0.0);
        fix(&mut block.down, 2.0);
        let x = fixed([batch, seq, d], 0.3, 1.0).require_grad();
        let probe = fixed([batch, seq, d], 0.9, 1.0);

        let flat = block.ffn(x.clone());
        let flat_grads = (flat.clone() * probe.clone()).sum().backward();
        let rank3 = block
            .down
            .forward(block.activation.forward(block.up.forward(x.clone())));
        let rank3_grads = (rank3.clone() * probe.clone()).sum().backward();

        // The f64 reference: the same weights and input, rank-2 products in f64.
        let w1 = to_f64(block.up.weight.val()).require_grad();
        let b1 = to_f64(block.up.bias.as_ref().unwrap().val());
        let w2 = to_f64(block.down.weight.val()).require_grad();
        let b2 = to_f64(block.down.bias.as_ref().unwrap().val());
        let x64 = to_f64(x.clone()).reshape([batch * seq, d]).require_grad();
        let hidden =
            burn::tensor::activation::relu(x64.clone().matmul(w1.clone()) + b1.unsqueeze::<2>());
        let y64 = hidden.matmul(w2.clone()) + b2.unsqueeze::<2>();
        let grads64 = (y64.clone() * to_f64(probe).reshape([batch * seq, d]))
            .sum()
            .backward();

        let grad_sets = [&flat_grads, &rank3_grads, &grads64];
        let triples = [
            [flat.into_data(), rank3.into_data(), y64.into_data()],
            grads(&block.up.weight.val(), &w1, grad_sets),
            grads(&block.down.weight.val(), &w2, grad_sets),
            grads(&x, &x64, grad_sets),
        ];
        for (i, [flat, rank3, reference]) in triples.into_iter().enumerate() {
            // f32 sums of at most 48 products: a few ulps of the largest entry.
            assert!(
                max_rel_err(flat.clone(), rank3) < 1e-6,
                "pair {i}: against burn's rank-3 linear"
            );
            assert!(max_rel_err(flat, reference) < 1e-6, "pair {i}: against f64");
        }
    }
}
