//! The experiment harness of slingshot: the paper's models and tasks, a training loop with the
//! collapse-aware loss, probed Adam, NFI diagnostics and spike detection, and the outputs every
//! experiment writes (`config.json`, `metrics.csv`, `summary.json`, figures), with checkpoints
//! and `--resume`.
//!
//! The binaries in `examples/` are thin: they build [`TrainConfig`]s from flags, call
//! [`run`], and draw the figures.

pub mod batches;
pub mod cifar;
pub mod cli;
pub mod config;
pub mod data;
mod error;
pub mod generalization;
pub mod image_arms;
pub mod lm;
pub mod low_precision;
pub mod margins;
pub mod metrics;
pub mod mitigation;
pub mod model;
pub mod output;
pub mod plot;
pub mod run;
pub mod sharpness;
pub mod train;
pub mod update_analysis;

pub use config::{BackendKind, BatchSize, ImageTask, Mitigations, Precision, TrainConfig};
pub use error::ExperimentError;
pub use metrics::{MetricsRow, Summary};
pub use output::RunDir;
pub use run::RunOptions;
pub use train::{RunResult, run};
