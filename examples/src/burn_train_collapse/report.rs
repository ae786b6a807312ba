//! What an arm's run wrote, read back from burn-train's metric logs: `metrics.csv` (one row
//! per step), `summary.json`, and the figure of every arm.

use std::path::Path;

use serde::{Deserialize, Serialize};
use slingshot_experiments::ExperimentError;
use slingshot_experiments::output::{write_atomic, write_json};
use slingshot_experiments::plot::{self, PlotPanel, XyPanel, XySeries};
use slingshot_train::{metric_log_path, read_numeric_log};

use super::{CollapseRunConfig, EXPERIMENT};

/// `metrics.csv`'s training columns and the burn-train metric each is read from.
pub const TRAIN_COLUMNS: [(&str, &str); 13] = [
    ("loss", "Loss"),
    ("accuracy_percent", "Accuracy"),
    ("collapsed_fraction", "Collapsed Fraction"),
    ("zero_loss_fraction", "Zero-Loss Fraction"),
    ("residual_mass", "Residual Mass"),
    ("margin_over_threshold", "Margin Over Threshold"),
    ("mean_logit", "Mean Logit"),
    ("w_g_norm", "W_G Norm"),
    ("mu_g_norm", "mu_G Norm"),
    ("cos_wg_mug", "cos(W_G, mu_G)"),
    ("eff_lr_median", "Effective LR Median"),
    ("eff_lr_max", "Effective LR Max"),
    ("eff_lr_near_ceiling", "Effective LR Near Ceiling"),
];

/// The validation columns, filled on each epoch's last step.
pub const VALID_COLUMNS: [(&str, &str); 3] = [
    ("valid_loss", "Loss"),
    ("valid_accuracy_percent", "Accuracy"),
    ("valid_collapsed_fraction", "Collapsed Fraction"),
];

/// An arm's logged values, one per training step (validation: one per epoch).
#[derive(Debug, Clone, PartialEq)]
pub struct ArmLogs {
    /// [`TRAIN_COLUMNS`]' values, column by column.
    pub train: Vec<Vec<f64>>,
    /// [`VALID_COLUMNS`]' values, column by column.
    pub valid: Vec<Vec<f64>>,
    /// Per step, whether the collapse warning's threshold was reached.
    pub warned: Vec<bool>,
}

impl ArmLogs {
    /// The validation column `name` of [`VALID_COLUMNS`] (one value per epoch).
    pub fn valid_column(&self, name: &str) -> &[f64] {
        column_of(&VALID_COLUMNS, &self.valid, name)
    }

    /// The training column `name` of [`TRAIN_COLUMNS`].
    pub fn column(&self, name: &str) -> &[f64] {
        column_of(&TRAIN_COLUMNS, &self.train, name)
    }
}

/// The values of the column named `name` in `columns`; a name that is not one of them is a
/// bug in this file, not bad input.
fn column_of<'a>(columns: &[(&str, &str)], values: &'a [Vec<f64>], name: &str) -> &'a [f64] {
    let i = columns
        .iter()
        .position(|(c, _)| *c == name)
        .unwrap_or_else(|| panic!("{name} is not one of this report's columns"));
    &values[i]
}

/// What `summary.json` holds for one arm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmSummary {
    /// Always `burn-train-collapse`.
    pub experiment: String,
    /// The arm's label.
    pub arm: String,
    /// Training steps (epochs times steps per epoch).
    pub steps: usize,
    /// The first step with a collapsed row, if any.
    pub first_collapse_step: Option<usize>,
    /// The first step at which the collapse warning fired, if any.
    pub warning_step: Option<usize>,
    /// The largest collapsed fraction of any step.
    pub max_collapsed_fraction: f64,
    /// The largest `||mu_G||`.
    pub max_mu_g_norm: f64,
    /// The largest effective learning rate of the classifier weight.
    pub max_effective_lr: f64,
    /// The last step's training loss.
    pub final_loss: f64,
    /// The last step's training accuracy, in percent.
    pub final_accuracy_percent: f64,
    /// The last epoch's validation accuracy, in percent.
    pub final_valid_accuracy_percent: f64,
    /// Wall time of the launch that finished the arm, in seconds.
    pub wall_seconds: f64,
}

fn read_column(
    dir: &Path,
    split: &str,
    name: &str,
    config: &CollapseRunConfig,
    per_epoch: usize,
) -> Result<Vec<(f64, usize)>, ExperimentError> {
    let mut all = Vec::new();
    for epoch in 1..=config.epochs {
        let path = metric_log_path(dir, split, epoch, name);
        let values = read_numeric_log(&path).map_err(|e| ExperimentError::Read {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if values.len() != per_epoch {
            return Err(ExperimentError::Read {
                path,
                reason: format!("{} lines, expected {per_epoch}", values.len()),
            });
        }
        all.extend(values);
    }
    Ok(all)
}

/// How many leading epochs have every log complete. burn-train writes its logs on threads of
/// their own: a kill just after a checkpoint can leave that epoch's lines short.
pub fn complete_epochs(dir: &Path, config: &CollapseRunConfig) -> usize {
    let train = TRAIN_COLUMNS
        .iter()
        .map(|(_, n)| (*n, "train", config.steps_per_epoch));
    let valid = VALID_COLUMNS.iter().map(|(_, n)| (*n, "valid", 1));
    let warning = std::iter::once(("Collapse Warning", "train", config.steps_per_epoch));
    let logs: Vec<_> = train.chain(valid).chain(warning).collect();
    (1..=config.epochs)
        .take_while(|&epoch| {
            logs.iter().all(|&(name, split, lines)| {
                read_numeric_log(&metric_log_path(dir, split, epoch, name))
                    .is_ok_and(|values| values.len() == lines)
            })
        })
        .count()
}

/// Reads every column of the arm in `dir` back from burn-train's logs.
pub fn read_arm(dir: &Path, config: &CollapseRunConfig) -> Result<ArmLogs, ExperimentError> {
    let steps = config.steps_per_epoch;
    let values = |split, name, per_epoch| -> Result<Vec<f64>, ExperimentError> {
        let column = read_column(dir, split, name, config, per_epoch)?;
        Ok(column.into_iter().map(|(v, _)| v).collect())
    };
    let train = TRAIN_COLUMNS
        .iter()
        .map(|(_, name)| values("train", name, steps))
        .collect::<Result<_, _>>()?;
    let valid = VALID_COLUMNS
        .iter()
        .map(|(_, name)| values("valid", name, 1))
        .collect::<Result<_, _>>()?;
    // The warning's lines are `fraction,flag`.
    let warned = read_column(dir, "train", "Collapse Warning", config, steps)?
        .into_iter()
        .map(|(_, flag)| flag == 1)
        .collect();
    Ok(ArmLogs {
        train,
        valid,
        warned,
    })
}

/// Writes `metrics.csv`: `step,epoch`, the training columns, then the validation columns
/// (empty except on each epoch's last step).
pub fn write_metrics(
    dir: &Path,
    logs: &ArmLogs,
    config: &CollapseRunConfig,
) -> Result<(), ExperimentError> {
    let mut csv = String::from("step,epoch");
    for (name, _) in TRAIN_COLUMNS.iter().chain(&VALID_COLUMNS) {
        csv.push(',');
        csv.push_str(name);
    }
    csv.push('\n');
    let steps = config.steps_per_epoch;
    for i in 0..logs.warned.len() {
        let epoch = i / steps + 1;
        csv.push_str(&format!("{},{epoch}", i + 1));
        for column in &logs.train {
            csv.push_str(&format!(",{}", column[i]));
        }
        let last = (i + 1) % steps == 0;
        for column in &logs.valid {
            match last {
                true => csv.push_str(&format!(",{}", column[epoch - 1])),
                false => csv.push(','),
            }
        }
        csv.push('\n');
    }
    write_atomic(&dir.join("metrics.csv"), csv.as_bytes())
}

/// The arm's summary from its logs, written to `summary.json`.
pub fn write_summary(
    dir: &Path,
    logs: &ArmLogs,
    config: &CollapseRunConfig,
    wall_seconds: f64,
) -> Result<ArmSummary, ExperimentError> {
    let collapsed = logs.column("collapsed_fraction");
    let max = |c: &[f64]| c.iter().copied().fold(0.0, f64::max);
    let last = |c: &[f64]| c.last().copied().unwrap_or(f64::NAN);
    let summary = ArmSummary {
        experiment: EXPERIMENT.into(),
        arm: config.arm.label().into(),
        steps: logs.warned.len(),
        first_collapse_step: collapsed.iter().position(|&f| f > 0.0).map(|i| i + 1),
        warning_step: logs.warned.iter().position(|&w| w).map(|i| i + 1),
        max_collapsed_fraction: max(collapsed),
        max_mu_g_norm: max(logs.column("mu_g_norm")),
        max_effective_lr: max(logs.column("eff_lr_max")),
        final_loss: last(logs.column("loss")),
        final_accuracy_percent: last(logs.column("accuracy_percent")),
        final_valid_accuracy_percent: last(logs.valid_column("valid_accuracy_percent")),
        wall_seconds,
    };
    write_json(&dir.join("summary.json"), &summary)?;
    Ok(summary)
}

/// `figure.png` in `out`: loss, collapsed fraction, `||mu_G||` and the classifier's largest
/// effective learning rate against the step, one line per arm.
pub fn draw_figure(out: &Path, arms: &[(String, ArmLogs)]) -> Result<(), ExperimentError> {
    let panel = |title: &'static str, column: &str, log_y: bool| {
        let series = arms
            .iter()
            .map(|(label, logs)| XySeries {
                label,
                points: (1..)
                    .zip(logs.column(column))
                    .map(|(step, &v)| (step as f64, v))
                    .collect(),
            })
            .collect();
        let panel = XyPanel {
            title,
            x_label: "step",
            log_y,
            series,
        };
        PlotPanel::Lines(panel.line_panel())
    };
    let panels = [
        panel("training loss", "loss", true),
        panel("collapsed fraction", "collapsed_fraction", false),
        panel("||mu_G||", "mu_g_norm", true),
        panel("classifier's max effective LR", "eff_lr_max", true),
    ];
    let title = format!("{EXPERIMENT}: burn-train's Learner with slingshot's metrics");
    plot::draw_panels(&out.join("figure.png"), &title, 2, &panels)
}
