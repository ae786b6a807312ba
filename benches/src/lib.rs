//! Criterion benchmarks of slingshot live in `benches/`; this library only holds shared inputs.

/// A deterministic row of `k` logits in roughly [-8, 8) (a linear congruential sequence), so
/// that every benchmark sees the same data without a random-number dependency.
pub fn bench_logits(k: usize) -> Vec<f64> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..k)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) * 16.0 - 8.0
        })
        .collect()
}

use burn::nn::loss::CrossEntropyLoss;
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Int, Tensor};
use slingshot_experiments::model::{Inputs, Model};

/// One step as a plain burn user writes it: the model, burn's cross-entropy, backward, and
/// `optim`'s step at `lr` (the benches' `burn` arms).
pub fn burn_step<B: AutodiffBackend, O: Optimizer<Model<B>, B>>(
    model: Model<B>,
    optim: &mut O,
    ce: &CrossEntropyLoss<B>,
    (inputs, labels): (&Inputs<B>, &Tensor<B, 1, Int>),
    lr: f64,
) -> Model<B> {
    let logits = model.forward(inputs.clone()).logits;
    let loss = ce.forward(logits, labels.clone());
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    optim.step(lr, model, grads)
}
