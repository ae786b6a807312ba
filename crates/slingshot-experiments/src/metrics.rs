//! One row of `metrics.csv` per logged step, and the `summary.json` contract.

use std::fs::File;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::ExperimentError;

/// Everything measured at one logged step. Optional fields are empty in the CSV when the run
/// does not measure them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsRow {
    /// Optimizer steps taken (1 after the first step).
    pub step: u64,
    /// Training loss of this step's batch, before the step.
    pub loss: f64,
    /// Accuracy on the whole training split.
    pub train_acc: f64,
    /// Loss on the test split.
    pub test_loss: f64,
    /// Accuracy on the test split.
    pub test_acc: f64,
    /// Fraction of the batch's rows in softmax collapse.
    pub collapsed_fraction: f64,
    /// Fraction of the batch's rows with exactly zero loss.
    pub zero_loss_fraction: f64,
    /// Mean residual mass `sum_{k != y} p_k`.
    pub mean_residual_mass: f64,
    /// Smallest margin `z_y - max_{k != y} z_k`.
    pub min_margin: f64,
    /// Mean logit over the batch.
    pub mean_logit: f64,
    /// Largest logit.
    pub max_logit: f64,
    /// Mean correct-class logit (Fig. 1(c): it goes negative under NFI).
    pub mean_correct_logit: f64,
    /// `||W_G||`, the norm of the classifier's mean row.
    pub w_g_norm: f64,
    /// `||mu_G||`, the norm of the features' global mean.
    pub mu_g_norm: f64,
    /// `cos(W_G, mu_G)`.
    pub cos_wg_mug: f64,
    /// Frobenius norm of the classifier weight.
    pub last_layer_norm: f64,
    /// Adam's effective learning rate `lr / (sqrt(v_hat) + eps)` of the classifier weight:
    /// median over entries.
    pub eff_lr_median: Option<f64>,
    /// Largest effective learning rate of the classifier weight.
    pub eff_lr_max: Option<f64>,
    /// Fraction of the classifier weight's entries within 10% of the ceiling `lr / eps`.
    pub eff_lr_ceiling_fraction: Option<f64>,
    /// Mean absolute update of the classifier weight in this step.
    pub update_mean: Option<f64>,
    /// This step's mean update over the previous step's.
    pub update_ratio: Option<f64>,
    /// Gradient norm over every parameter.
    pub grad_norm: Option<f64>,
    /// Gradient norm of the classifier weight.
    #[serde(default)]
    pub classifier_grad_norm: Option<f64>,
    /// Largest Hessian eigenvalue of the training loss, where measured (Fig. 5).
    #[serde(default)]
    pub sharpness: Option<f64>,
    /// Largest eigenvalue of Adam's preconditioned Hessian `P^-1 H`, measured with
    /// `sharpness` while Adam steps: its edge of stability is 38/lr at beta1 = 0.9.
    #[serde(default)]
    pub preconditioned_sharpness: Option<f64>,
    /// Seconds since the run started (resumed runs continue the count).
    pub wall_seconds: f64,
}

/// Reads a `metrics.csv` back.
pub fn read_metrics(path: &Path) -> Result<Vec<MetricsRow>, ExperimentError> {
    crate::run::csv_log::read_rows(path)
}

/// The file of [`crate::run::RunOptions::record_updates`].
pub const UPDATES_FILE: &str = "classifier-updates.csv";

/// `classifier-updates.csv`: one `step,update` line per classifier-weight entry.
pub(crate) struct UpdatesWriter {
    path: PathBuf,
    writer: csv::Writer<File>,
}

impl UpdatesWriter {
    pub(crate) fn create(path: &Path) -> Result<Self, ExperimentError> {
        let mut writer = csv::Writer::from_path(path).map_err(|e| ExperimentError::Write {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        writer
            .write_record(["step", "update"])
            .map_err(|e| ExperimentError::Write {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            path: path.to_path_buf(),
            writer,
        })
    }

    pub(crate) fn write<B: burn::tensor::backend::Backend>(
        &mut self,
        step: u64,
        delta: burn::tensor::Tensor<B, 2>,
    ) -> Result<(), ExperimentError> {
        let err = |e: &dyn std::fmt::Display| ExperimentError::Write {
            path: self.path.clone(),
            reason: e.to_string(),
        };
        let values = delta
            .into_data()
            .convert::<f64>()
            .into_vec::<f64>()
            .map_err(|e| err(&format!("{e:?}")))?;
        let step = step.to_string();
        for v in values {
            self.writer
                .write_record([step.as_str(), &format!("{v:e}")])
                .map_err(|e| err(&e))?;
        }
        self.writer.flush().map_err(|e| err(&e))
    }
}

/// Reads `classifier-updates.csv` back: `(step, updates)` in step order.
pub fn read_updates(path: &Path) -> Result<Vec<(u64, Vec<f64>)>, ExperimentError> {
    let err = |e: &dyn std::fmt::Display| ExperimentError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut out: Vec<(u64, Vec<f64>)> = Vec::new();
    let mut reader = csv::Reader::from_path(path).map_err(|e| err(&e))?;
    for record in reader.deserialize::<(u64, f64)>() {
        let (step, v) = record.map_err(|e| err(&e))?;
        match out.last_mut() {
            Some((s, values)) if *s == step => values.push(v),
            _ => out.push((step, vec![v])),
        }
    }
    Ok(out)
}

/// `summary.json`: a stable contract other tools read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The experiment (binary) name.
    pub experiment: String,
    /// The arm within the experiment (`f32`, `f64-loss`, ...).
    pub arm: String,
    /// The network: `mlp`, `transformer`, `vgg11`, `vgg11-bn`, `resnet18` or `vit`.
    pub model: String,
    /// The image data: `cifar10`, or `synthetic` for the offline stand-in (absent for the
    /// modular task).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// `ndarray` or `cuda`.
    pub backend: String,
    /// `f32`, `f64` or `f64-loss`.
    pub precision: String,
    /// Optimizer steps taken.
    pub steps: u64,
    /// Steps where a loss spike starts.
    pub spikes: Vec<u64>,
    /// `spikes.len()`.
    pub n_spikes: usize,
    /// Steps where an NFI event starts: `||mu_G||` or `||W_G||` doubled within 500 steps
    /// while rows were collapsed (`SpikeKind::Nfi`), with or without a loss spike.
    #[serde(default)]
    pub nfi_events: Vec<u64>,
    /// First logged step with a collapsed fraction of at least 0.5.
    pub first_sc_step: Option<u64>,
    /// Largest collapsed fraction logged.
    #[serde(deserialize_with = "f64_or_nan")]
    pub max_collapsed_fraction: f64,
    /// Largest `||mu_G||` logged.
    #[serde(deserialize_with = "f64_or_nan")]
    pub max_mu_g_norm: f64,
    /// `cos(W_G, mu_G)` at the last logged step.
    #[serde(deserialize_with = "f64_or_nan")]
    pub final_cos_wg_mug: f64,
    /// Training accuracy at the last logged step.
    #[serde(deserialize_with = "f64_or_nan")]
    pub final_train_acc: f64,
    /// Test accuracy at the last logged step.
    #[serde(deserialize_with = "f64_or_nan")]
    pub final_test_acc: f64,
    /// Largest step-over-step ratio of the mean update logged (null when not probed).
    pub max_update_ratio: Option<f64>,
    /// Training time in seconds.
    #[serde(deserialize_with = "f64_or_nan")]
    pub wall_seconds: f64,
    /// `steps / wall_seconds`.
    #[serde(deserialize_with = "f64_or_nan")]
    pub steps_per_second: f64,
    /// The logged step after which the run switched to gradient descent (§4.2), or null.
    #[serde(default)]
    pub switched_to_gd_at: Option<u64>,
    /// The logged step whose loss or classifier weight was not finite, where the run stopped,
    /// or null.
    #[serde(default)]
    pub diverged_at: Option<u64>,
    /// Where rows collapsed, by margin, over every logged row (`margins.csv` has the bins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collapse_margins: Option<CollapseMargins>,
}

/// The margins at which a run's rows collapsed: what App. A.3.3's thresholds predict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CollapseMargins {
    /// The first logged step with a collapsed row.
    pub first_collapse_step: Option<u64>,
    /// The smallest margin among that step's collapsed rows.
    pub first_collapse_margin: Option<f64>,
    /// The smallest margin of any collapsed row in the run.
    pub min_collapsed_margin: Option<f64>,
    /// The largest margin of any row that did not collapse although its label led.
    pub max_uncollapsed_margin: Option<f64>,
    /// The lowest margin bin (0.25 wide) in which at least half the rows collapsed.
    pub half_collapsed_margin: Option<f64>,
}

impl CollapseMargins {
    /// The margins of a run's histogram.
    pub fn of(h: &crate::margins::MarginHistogram) -> Self {
        Self {
            first_collapse_step: h.first_collapse.map(|(s, _)| s),
            first_collapse_margin: h.first_collapse.map(|(_, m)| m),
            min_collapsed_margin: h.min_collapsed_margin,
            max_uncollapsed_margin: h.max_uncollapsed_margin,
            half_collapsed_margin: h.half_collapsed_margin(),
        }
    }
}

impl Summary {
    /// Writes `summary.json`, pretty-printed.
    pub fn write(&self, path: &Path) -> Result<(), ExperimentError> {
        crate::output::write_json(path, self)
    }
}

/// JSON has no NaN: serde_json writes it as `null` (a diverged run's final cosine, say), so
/// read `null` back as NaN.
pub(crate) fn f64_or_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// Writes any serializable value as pretty JSON (see [`crate::output::write_json`]).
pub use crate::output::write_json;
