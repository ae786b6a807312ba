//! The task and the model: modular addition as one-hot pairs, an MLP whose classifier the
//! NFI metrics watch, and burn-train's step traits returning slingshot's output.

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{DType, Int, Tensor, TensorData};
use burn_train::{InferenceStep, TrainOutput, TrainStep};
use slingshot::loss::{CollapseAwareCrossEntropyConfig, LossPrecision};
use slingshot_train::CollapseOutput;

use super::LossArm;

/// One example: `(a + b) mod p` from `a` and `b`.
#[derive(Debug, Clone, Copy)]
pub struct Pair {
    /// First operand.
    pub a: usize,
    /// Second operand.
    pub b: usize,
    /// `(a + b) mod p`.
    pub label: usize,
}

/// Every pair of residues mod `p`, split by a seeded shuffle: `(train, valid)`.
pub fn split_pairs(p: usize, train_fraction: f64, seed: u64) -> (Vec<Pair>, Vec<Pair>) {
    let mut pairs: Vec<Pair> = (0..p)
        .flat_map(|a| {
            (0..p).map(move |b| Pair {
                a,
                b,
                label: (a + b) % p,
            })
        })
        .collect();
    // A SplitMix64 Fisher-Yates: the same split on every platform and version.
    let mut state = seed;
    for i in (1..pairs.len()).rev() {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        let j = ((z ^ (z >> 31)) % (i as u64 + 1)) as usize;
        pairs.swap(i, j);
    }
    let train = ((pairs.len() as f64) * train_fraction).round() as usize;
    let valid = pairs.split_off(train.clamp(1, pairs.len() - 1));
    (pairs, valid)
}

/// The training set seen `times` times per epoch, in order: with the batch size set to the
/// set's size, each batch is the whole set (full-batch training, as in the paper).
#[derive(Debug, Clone)]
pub struct Repeated {
    /// The examples.
    pub pairs: Vec<Pair>,
    /// Passes per epoch.
    pub times: usize,
}

impl Dataset<Pair> for Repeated {
    fn get(&self, index: usize) -> Option<Pair> {
        (index < self.len()).then(|| self.pairs[index % self.pairs.len()])
    }

    fn len(&self) -> usize {
        self.pairs.len() * self.times
    }
}

/// A batch: one-hot `[a | b]` inputs `[N, 2p]` and labels `[N]`.
#[derive(Debug, Clone)]
pub struct PairBatch<B: Backend> {
    /// Inputs.
    pub inputs: Tensor<B, 2>,
    /// Labels.
    pub labels: Tensor<B, 1, Int>,
}

/// Builds [`PairBatch`]es for modulus `p`.
#[derive(Debug, Clone)]
pub struct PairBatcher {
    /// The modulus.
    pub p: usize,
}

impl<B: Backend> Batcher<B, Pair, PairBatch<B>> for PairBatcher {
    fn batch(&self, items: Vec<Pair>, device: &B::Device) -> PairBatch<B> {
        let (n, p) = (items.len(), self.p);
        let mut inputs = vec![0.0f32; n * 2 * p];
        for (i, pair) in items.iter().enumerate() {
            inputs[i * 2 * p + pair.a] = 1.0;
            inputs[i * 2 * p + p + pair.b] = 1.0;
        }
        let labels: Vec<i64> = items.iter().map(|pair| pair.label as i64).collect();
        PairBatch {
            inputs: Tensor::from_data(TensorData::new(inputs, [n, 2 * p]), device),
            labels: Tensor::from_data(TensorData::new(labels, [n]), device),
        }
    }
}

/// A 2-hidden-layer ReLU MLP with a bias-free classifier, and the arm's loss.
#[derive(Module, Debug)]
pub struct CollapseMlp<B: Backend> {
    hidden_1: Linear<B>,
    hidden_2: Linear<B>,
    /// The classifier whose class mean `W_G` the NFI metrics follow.
    pub classifier: Linear<B>,
    #[module(skip)]
    arm: LossArm,
}

impl<B: Backend> CollapseMlp<B> {
    /// A fresh model for modulus `p` with hidden width `width`.
    pub fn new(p: usize, width: usize, arm: LossArm, device: &B::Device) -> Self {
        let model = Self {
            hidden_1: LinearConfig::new(2 * p, width).init(device),
            hidden_2: LinearConfig::new(width, width).init(device),
            classifier: LinearConfig::new(width, p).with_bias(false).init(device),
            arm,
        };
        // burn draws a parameter's values at its first use: draw them now, in a fixed order,
        // so that one seed gives one model however it is first used (or cloned).
        for weight in [
            &model.hidden_1.weight,
            &model.hidden_2.weight,
            &model.classifier.weight,
        ] {
            let _ = weight.val();
        }
        for bias in [&model.hidden_1.bias, &model.hidden_2.bias]
            .into_iter()
            .flatten()
        {
            let _ = bias.val();
        }
        model
    }

    /// Features, logits and the arm's loss, as the step output slingshot's metrics read.
    pub fn output(&self, batch: PairBatch<B>) -> CollapseOutput<B> {
        let features = relu(
            self.hidden_2
                .forward(relu(self.hidden_1.forward(batch.inputs))),
        );
        let logits = self.classifier.forward(features.clone());
        let labels = batch.labels;
        let (loss, precision) = match self.arm {
            LossArm::BurnF32 => {
                let ce = CrossEntropyLossConfig::new().init(&logits.device());
                (
                    ce.forward(logits.clone(), labels.clone()),
                    LossPrecision::Native,
                )
            }
            // burn's loss on logits cast to f64; the cast's backward rounds the gradient
            // back to f32 once.
            LossArm::BurnF64Loss => {
                let ce = CrossEntropyLossConfig::new().init(&logits.device());
                let wide = logits.clone().cast(DType::F64);
                (ce.forward(wide, labels.clone()), LossPrecision::F64)
            }
            LossArm::SlingshotF32 | LossArm::SlingshotF64Loss => {
                let precision = self.arm.precision();
                let ce = CollapseAwareCrossEntropyConfig::new()
                    .with_precision(precision)
                    .init(&logits.device());
                (ce.forward(logits.clone(), labels.clone()), precision)
            }
        };
        CollapseOutput::new(loss, logits, labels, precision)
            .try_with_classifier(features, self.classifier.weight.val(), None)
            .expect("the classifier's shapes follow from the model")
    }
}

impl<B: AutodiffBackend> TrainStep for CollapseMlp<B> {
    type Input = PairBatch<B>;
    type Output = CollapseOutput<B>;

    fn step(&self, batch: PairBatch<B>) -> TrainOutput<CollapseOutput<B>> {
        let output = self.output(batch);
        let grads = output.loss().backward();
        TrainOutput::new(self, grads, output)
    }
}

impl<B: Backend> InferenceStep for CollapseMlp<B> {
    type Input = PairBatch<B>;
    type Output = CollapseOutput<B>;

    fn step(&self, batch: PairBatch<B>) -> CollapseOutput<B> {
        self.output(batch)
    }
}
