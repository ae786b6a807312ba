//! Numerical-feature-inflation diagnostics and the neural-collapse measures, on the device.

use burn::tensor::backend::Backend;
use burn::tensor::{DType, FloatDType, IndexingUpdateOp, Int, Tensor};

use crate::NnError;

/// NFI and neural-collapse measures of one batch, as `[1]` tensors on the device.
///
/// Nothing is read back until [`NfiDiagnostics::summary`] (one transfer for all values).
/// The neural-collapse measures assume every class occurs in the batch (a missing class counts
/// as a class whose mean is zero).
#[derive(Debug, Clone)]
pub struct NfiDiagnostics<B: Backend> {
    /// All ten values, in the order of [`NfiSummary`]'s fields.
    pub values: Tensor<B, 1>,
}

/// [`NfiDiagnostics`] read back to the host.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NfiSummary {
    /// `||W_G||`: norm of the class mean of the classifier weights.
    pub w_g_norm: f64,
    /// `||mu_G||`: norm of the batch mean of the penultimate features.
    pub mu_g_norm: f64,
    /// `cos(W_G, mu_G)`; tends to -1 under NFI (Thm. 3.7). NaN if either vector is zero.
    pub cos_wg_mug: f64,
    /// `||W*||_F`, the class-centered weights `W - W_G`.
    pub centered_weight_norm: f64,
    /// `||W||_F`, the last-layer norm.
    pub weight_norm: f64,
    /// Mean logit over the batch.
    pub mean_logit: f64,
    /// Largest logit in the batch.
    pub max_logit: f64,
    /// NC1: within-class over between-class variability, `tr(Sigma_W) / tr(Sigma_B)`; 0 under
    /// variability collapse.
    pub nc1: f64,
    /// NC2: `|| G/||G||_F - (I - 11^T/K)/sqrt(K-1) ||_F` for the Gram matrix `G` of the centered
    /// class means; 0 for a simplex ETF.
    pub nc2: f64,
    /// NC3: `|| W*^T/||W*||_F - M*/||M*||_F ||_F`, centered weights against centered class
    /// means; 0 under self-duality.
    pub nc3: f64,
}

impl<B: Backend> NfiDiagnostics<B> {
    /// Computes the diagnostics from the classifier (`weight` `[d, K]` as burn's `Linear`
    /// stores it, optional `bias` `[K]`), the penultimate `features` `[N, d]` of a batch, and
    /// its `labels` `[N]`.
    pub fn try_new(
        weight: Tensor<B, 2>,
        bias: Option<Tensor<B, 1>>,
        features: Tensor<B, 2>,
        labels: Tensor<B, 1, Int>,
    ) -> Result<Self, NnError> {
        Self::build(weight, bias, features, labels, true)
    }

    /// The NFI values only (`||W_G||`, `||mu_G||`, their cosine, the weight norms and the
    /// logits' mean and max), each the same bits as [`Self::try_new`]'s; `nc1`-`nc3` are NaN.
    /// It skips the class means, Gram matrix and one-hot scatter, which a training loop that
    /// logs inflation every few steps does not need.
    pub fn try_new_inflation(
        weight: Tensor<B, 2>,
        bias: Option<Tensor<B, 1>>,
        features: Tensor<B, 2>,
        labels: Tensor<B, 1, Int>,
    ) -> Result<Self, NnError> {
        Self::build(weight, bias, features, labels, false)
    }

    fn build(
        weight: Tensor<B, 2>,
        bias: Option<Tensor<B, 1>>,
        features: Tensor<B, 2>,
        labels: Tensor<B, 1, Int>,
        neural_collapse: bool,
    ) -> Result<Self, NnError> {
        let [d, k] = weight.dims();
        let [n, d_features] = features.dims();
        let [n_labels] = labels.dims();
        if d == 0 || n == 0 {
            return Err(NnError::ZeroSized {
                what: "the feature width and the batch",
            });
        }
        if k < 2 {
            return Err(NnError::TooFewClasses { classes: k });
        }
        if d_features != d || n_labels != n || bias.as_ref().is_some_and(|b| b.dims() != [k]) {
            return Err(NnError::ShapeMismatch {
                what: format!(
                    "weight [{d}, {k}], bias {:?}, features [{n}, {d_features}], labels [{n_labels}]",
                    bias.as_ref().map(|b| b.dims())
                ),
            });
        }
        // A 16-bit model's norms are computed in f32: a sum of squares passes f16's largest
        // value (65504) once a norm passes 256.
        let (weight, bias, features) = if [weight.dtype(), features.dtype()]
            .iter()
            .any(|d| matches!(d, DType::F16 | DType::BF16))
        {
            (
                weight.cast(FloatDType::F32),
                bias.map(|b| b.cast(FloatDType::F32)),
                features.cast(FloatDType::F32),
            )
        } else {
            (weight, bias, features)
        };
        let device = features.device();
        let dtype = features.dtype();

        let w_g = weight.clone().mean_dim(1); // [d, 1]
        let mu_g = features.clone().mean_dim(0); // [1, d]
        let w_g_norm = frob(w_g.clone());
        let mu_g_norm = frob(mu_g.clone());
        let cos = (w_g.clone().reshape([d]) * mu_g.clone().reshape([d])).sum()
            / (w_g_norm.clone() * mu_g_norm.clone());
        let w_star = weight.clone() - w_g; // [d, K]

        let mut logits = features.clone().matmul(weight.clone());
        if let Some(b) = bias {
            logits = logits + b.reshape([1, k]);
        }

        let w_star_norm = frob(w_star.clone());
        let inflation = vec![
            w_g_norm,
            mu_g_norm,
            cos,
            w_star_norm.clone(),
            frob(weight),
            logits.clone().mean(),
            logits.max(),
        ];
        let nc = if neural_collapse {
            neural_collapse_values(w_star, w_star_norm, features, mu_g, labels, k)
        } else {
            vec![Tensor::full([3], f64::NAN, (&device, dtype))]
        };
        Ok(Self {
            values: Tensor::cat([inflation, nc].concat(), 0),
        })
    }

    /// Reads all values back in one transfer.
    pub fn summary(&self) -> NfiSummary {
        let v = self
            .values
            .clone()
            .into_data()
            .convert::<f64>()
            .to_vec::<f64>()
            .expect("f64 diagnostics");
        NfiSummary {
            w_g_norm: v[0],
            mu_g_norm: v[1],
            cos_wg_mug: v[2],
            centered_weight_norm: v[3],
            weight_norm: v[4],
            mean_logit: v[5],
            max_logit: v[6],
            nc1: v[7],
            nc2: v[8],
            nc3: v[9],
        }
    }
}

/// NC1-NC3 of [`NfiDiagnostics`], as three `[1]` tensors.
fn neural_collapse_values<B: Backend>(
    w_star: Tensor<B, 2>,
    w_star_norm: Tensor<B, 1>,
    features: Tensor<B, 2>,
    mu_g: Tensor<B, 2>,
    labels: Tensor<B, 1, Int>,
    k: usize,
) -> Vec<Tensor<B, 1>> {
    let [n, _] = features.dims();
    let device = features.device();
    let dtype = features.dtype();
    // Class means through a one-hot matrix built by an O(N) scatter.
    let ones = Tensor::<B, 2>::full([n, 1], 1.0, (&device, dtype));
    let onehot = Tensor::<B, 2>::zeros([n, k], (&device, dtype)).scatter(
        1,
        labels.reshape([n, 1]),
        ones,
        IndexingUpdateOp::Add,
    );
    let counts = onehot.clone().sum_dim(0).clamp_min(1.0); // [1, K]
    let means = onehot.clone().transpose().matmul(features.clone()) / counts.transpose(); // [K, d]
    let centered_means = means.clone() - mu_g; // [K, d]
    let within = (features - onehot.matmul(means)).powi_scalar(2).sum() / n as f64;
    let between = centered_means.clone().powi_scalar(2).sum() / k as f64;
    let nc1 = within / between;

    let gram = centered_means
        .clone()
        .matmul(centered_means.clone().transpose());
    let etf =
        (Tensor::<B, 2>::eye(k, &device).cast(dtype) - 1.0 / k as f64) / ((k - 1) as f64).sqrt();
    let gram_norm = frob(gram.clone()).reshape([1, 1]);
    let nc2 = frob(gram / gram_norm - etf);

    let means_norm = frob(centered_means.clone()).reshape([1, 1]);
    let nc3 = frob(w_star.transpose() / w_star_norm.reshape([1, 1]) - centered_means / means_norm);
    vec![nc1, nc2, nc3]
}

/// The Frobenius norm of `t`, as a `[1]` tensor.
fn frob<B: Backend>(t: Tensor<B, 2>) -> Tensor<B, 1> {
    t.powi_scalar(2).sum().sqrt()
}
