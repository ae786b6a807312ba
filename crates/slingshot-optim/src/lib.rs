//! Optimizer-side tools for slingshot, on burn.
//!
//! * [`ProbedAdam`] ([`ProbedAdamConfig`]): burn's Adam, bit for bit, with a probe of the
//!   quantity the paper blames for the slingshot spike: the effective learning rate
//!   `lr / (sqrt(v_hat) + eps)` (minimum, median, maximum, fraction near the ceiling
//!   `lr / eps`), the update magnitudes (mean, maximum, log-spaced histogram), the ratio of
//!   each step's mean update to the previous one's, and the gradient norm. Each step keeps a
//!   few device values; [`AdamProbe::read`] computes the statistics when you log.
//! * [`burn_adam_effective_lr`]: the same effective-LR statistics for burn's own `Adam`, from
//!   its optimizer record.
//! * [`SwitchOptimizer`]: one optimizer, then another (the paper's §4.2: Adam, then gradient
//!   descent at lr 1e5 once the loss is exactly zero).
//! * [`OrthoGrad`]: Prieto et al.'s perpendicular-gradient transform around any burn optimizer
//!   ([`orthogonalize`] on one tensor).
//! * [`clip_grad_norm`]: clipping by the global gradient norm, as PyTorch's
//!   `clip_grad_norm_` does (burn's own clipping is per parameter).
//! * [`SpikeDetector`]: online detection of loss spikes (a jump over a running baseline of
//!   recent low values, above an absolute level) and update spikes (a mean update many times
//!   the one observed before it, `log_every` steps earlier when fed at logging steps), with
//!   the steps where they start.
//!
//! Bad input (an invalid configuration, a non-finite learning rate to
//! [`ProbedAdam::try_step`]) is an [`OptimError`]. See `docs/optim.md` for the costs.

mod adam_rule;
mod burn_adam;
mod clip;
mod config;
mod erased;
mod error;
mod grads;
mod histogram;
mod orthograd;
mod probe;
mod probed_adam;
mod record;
mod report;
mod spike;
mod stats;
mod switch;

pub use burn_adam::{BurnAdamHyper, BurnAdamProbeReport, burn_adam_effective_lr};
pub use clip::{Clipped, clip_grad_norm, global_grad_norm};
pub use config::ProbedAdamConfig;
pub use error::OptimError;
pub use histogram::{LogBins, UpdateHistogram};
pub use orthograd::{OrthoGrad, orthogonalize, orthogonalize_grads};
pub use probe::AdamProbe;
pub use probed_adam::ProbedAdam;
pub use record::{ProbedAdamParamRecord, ProbedAdamRecord};
pub use report::{AdamProbeReport, ModelProbe, ParamProbe, SelectedProbeReport};
pub use spike::{NfiObservation, SpikeDetector, SpikeDetectorConfig, SpikeEvent, SpikeKind};
pub use stats::{EffectiveLrStats, UpdateStats};
pub use switch::SwitchOptimizer;
