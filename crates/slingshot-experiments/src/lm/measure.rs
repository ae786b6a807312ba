//! What a logged step measures: the logit and output-embedding statistics of its forward
//! pass, kept as tensors until one `Transaction` reads them together with the loss, the
//! collapse statistics and the device's zero-loss counter.

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Bool, Int, Tensor, Transaction};

use super::metrics::LmRow;
use super::model::{Gpt, GptOutput};

/// Reads the device counter and adds it to the host's counts.
pub(super) fn add_counts<B: Backend>(host: &mut [u64], device: Tensor<B, 1, Int>) {
    let values = device.into_data().convert::<i64>();
    for (h, v) in host.iter_mut().zip(values.iter::<i64>()) {
        *h += v.max(0) as u64;
    }
}

/// A logged step's measurements, still on the device.
pub(super) struct Pending<B: Backend> {
    loss: Tensor<B, 1>,
    collapse: Tensor<B, 1>,
    scalars: Tensor<B, 1>,
    zero_loss: Tensor<B, 1, Int>,
}

impl<B: Backend> Pending<B> {
    /// The logit and output-embedding measures of one forward pass, as tensors.
    pub(super) fn new<A>(
        out: &GptOutput<A>,
        model: &Gpt<A>,
        loss: Tensor<B, 1>,
        collapse: Tensor<B, 1>,
        zero_loss: Tensor<B, 1, Bool>,
    ) -> Self
    where
        A: AutodiffBackend<InnerBackend = B>,
    {
        let [b, t, v] = out.logits.dims();
        let n = b * t;
        let logits = out.logits.clone().inner().reshape([n, v]);
        let features = out.features.clone().inner();
        let d = features.dims()[2];
        let features = features.reshape([n, d]);
        // `W_G` and `mu_G` as NfiDiagnostics defines them; its class means need an [n, vocab]
        // one-hot, too large for a language model's batch, so only these are computed here.
        let weight = model.head.linear.weight.val().inner(); // [d, vocab]
        let w_g = weight.mean_dim(1); // [d, 1]
        let mu_g = features.clone().mean_dim(0); // [1, d]
        let norm = |x: Tensor<B, 2>| x.powi_scalar(2).sum().sqrt();
        let (w_g_norm, mu_g_norm) = (norm(w_g.clone()), norm(mu_g.clone()));
        let cos = mu_g.matmul(w_g.clone()).reshape([1]) / (w_g_norm.clone() * mu_g_norm.clone());
        let mean_logit = logits.clone().mean();
        // The per-row shift `h . W_G` that removing `W_G` from the head takes away (none for
        // the centered arm, whose head already computes with `W - W_G`).
        let shift = if model.is_centered() {
            mean_logit.zeros_like()
        } else {
            features.matmul(w_g).mean()
        };
        let scalars = Tensor::cat(
            vec![
                mean_logit.clone(),
                logits.clone().powi_scalar(2).sum_dim(1).sqrt().mean(),
                logits.max(),
                mean_logit - shift,
                w_g_norm,
                mu_g_norm,
                cos,
            ],
            0,
        );
        Self {
            loss,
            collapse,
            scalars,
            zero_loss: zero_loss.int().sum(),
        }
    }

    /// One read-back of everything, the device counter included (added to `host`).
    pub(super) fn read(
        self,
        step: u64,
        lr: f64,
        tokens: u64,
        counts: Tensor<B, 1, Int>,
        host: &mut [u64],
    ) -> LmRow {
        let data = Transaction::default()
            .register(self.loss)
            .register(self.collapse)
            .register(self.scalars)
            .register(self.zero_loss)
            .register(counts)
            .execute();
        let floats = |i: usize| -> Vec<f64> {
            data[i]
                .clone()
                .convert::<f64>()
                .to_vec()
                .unwrap_or_default()
        };
        let (loss, collapse, s) = (floats(0), floats(1), floats(2));
        let zero: i64 = data[3]
            .clone()
            .convert::<i64>()
            .iter::<i64>()
            .next()
            .unwrap_or(0);
        for (h, v) in host
            .iter_mut()
            .zip(data[4].clone().convert::<i64>().iter::<i64>())
        {
            *h += v.max(0) as u64;
        }
        let at = |v: &[f64], i: usize| v.get(i).copied().unwrap_or(f64::NAN);
        LmRow {
            step,
            lr,
            loss: at(&loss, 0),
            tokens,
            zero_loss_tokens: zero.max(0) as u64,
            zero_loss_fraction: zero.max(0) as f64 / tokens as f64,
            collapsed_fraction: at(&collapse, 0),
            mean_logit: at(&s, 0),
            logit_norm: at(&s, 1),
            max_logit: at(&s, 2),
            centered_mean_logit: at(&s, 3),
            w_g_norm: at(&s, 4),
            mu_g_norm: at(&s, 5),
            cos_wg_mug: at(&s, 6),
            cumulative_zero_loss_tokens: host.iter().sum(),
            wall_seconds: 0.0,
        }
    }
}
