//! Optimizer-side tools for slingshot.
//!
//! * [`SpikeDetector`]: online detection of loss spikes (a jump over a running baseline of
//!   recent low values, above an absolute level) and update spikes (a mean update many times
//!   the previous step's), with the steps where they start.
//!
//! `ProbedAdam` (Adam with effective-learning-rate probes) and `OrthoGrad` are planned here
//! (issue 4).

mod error;
mod spike;

pub use error::OptimError;
pub use spike::{SpikeDetector, SpikeDetectorConfig, SpikeEvent, SpikeKind};
