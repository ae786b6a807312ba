//! Online detection of loss spikes and update spikes.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::OptimError;

/// When a value counts as a spike.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SpikeDetectorConfig {
    /// A loss spike starts when the loss exceeds `loss_factor` times the baseline (the lowest
    /// loss among the last `window` non-spike steps)...
    pub loss_factor: f64,
    /// ...and also exceeds this absolute level, so that noise at 1e-7 is not a spike. A loss
    /// that was exactly zero (softmax collapse) has baseline 0: any loss above this level
    /// after it is a spike.
    pub min_loss: f64,
    /// Steps in the running baseline.
    pub window: usize,
    /// Steps of history needed before anything is called a spike.
    pub warmup: usize,
    /// An update spike: the mean update magnitude is at least this many times the one passed
    /// to the previous [`SpikeDetector::observe_update`] call (§3.3 reports about 50x at a
    /// slingshot; the default is 20x).
    pub update_factor: f64,
}

impl Default for SpikeDetectorConfig {
    /// Loss 10x its recent minimum and above 1e-3; a 100-step baseline after 10 steps; update
    /// spikes at 20x.
    fn default() -> Self {
        Self {
            loss_factor: 10.0,
            min_loss: 1e-3,
            window: 100,
            warmup: 10,
            update_factor: 20.0,
        }
    }
}

impl SpikeDetectorConfig {
    /// Checks every value.
    pub fn validate(&self) -> Result<(), OptimError> {
        let bad = |name, value, expected| {
            Err(OptimError::InvalidConfig {
                name,
                value,
                expected,
            })
        };
        if !(self.loss_factor.is_finite() && self.loss_factor > 1.0) {
            return bad("loss_factor", self.loss_factor, "a finite value > 1");
        }
        if !(self.min_loss.is_finite() && self.min_loss >= 0.0) {
            return bad("min_loss", self.min_loss, "a finite value >= 0");
        }
        if self.window == 0 {
            return bad("window", 0.0, "at least 1 step");
        }
        if self.warmup > self.window {
            return bad("warmup", self.warmup as f64, "at most `window` steps");
        }
        if !(self.update_factor.is_finite() && self.update_factor > 1.0) {
            return bad("update_factor", self.update_factor, "a finite value > 1");
        }
        Ok(())
    }
}

/// What spiked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SpikeKind {
    /// The training loss.
    Loss,
    /// The mean parameter update.
    Update,
}

/// One detected spike.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SpikeEvent {
    /// The step at which it started.
    pub step: u64,
    /// Loss or update.
    pub kind: SpikeKind,
    /// The value that triggered it.
    pub value: f64,
    /// What it was compared with: the loss baseline, or the update of the previous
    /// [`SpikeDetector::observe_update`] call (`log_every` steps earlier when it is called
    /// every `log_every` steps).
    pub reference: f64,
}

/// Watches a training run step by step and records where spikes start.
///
/// Build it with [`SpikeDetector::try_new`] from a [`SpikeDetectorConfig`] (`default()` is
/// a loss 10x its recent minimum, an update 20x the last one). Then feed it as the run goes:
/// [`observe_loss`](Self::observe_loss) with each step's loss (or each logged one), and
/// [`observe_update`](Self::observe_update) with the mean update magnitude where you have it,
/// usually at logging steps from `ProbedAdam`'s probe (`report.model.update.mean`). Both
/// return the event that starts at that step; [`events`](Self::events),
/// [`loss_spike_steps`](Self::loss_spike_steps) and
/// [`update_spike_steps`](Self::update_spike_steps) give all of them afterwards.
///
/// A loss spike is one event however many steps it lasts: it ends when the loss falls back
/// to `loss_factor` times the baseline, and steps inside it do not enter the baseline.
/// Non-finite losses count as spikes.
///
/// An update is compared with the one passed to the previous `observe_update` call, not with
/// the previous step's: fed every `log_every` steps, the window is `log_every` steps.
///
/// ```
/// use slingshot_optim::{OptimError, SpikeDetector, SpikeDetectorConfig};
///
/// fn main() -> Result<(), OptimError> {
///     let mut detector = SpikeDetector::try_new(SpikeDetectorConfig::default())?;
///     let log_every = 10;
///     for step in 0..1000u64 {
///         // Stand-ins for a training step's loss and the probe's mean |update|.
///         let loss = if step == 600 { 2.0 } else { 1e-2 };
///         detector.observe_loss(step, loss);
///         if step % log_every == 0 {
///             let mean_update = if step == 600 { 5e-3 } else { 1e-4 };
///             // Compared with the update observed at `step - log_every`.
///             detector.observe_update(step, mean_update);
///         }
///     }
///     assert_eq!(detector.loss_spike_steps(), vec![600]);
///     assert_eq!(detector.update_spike_steps(), vec![600]);
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone)]
pub struct SpikeDetector {
    config: SpikeDetectorConfig,
    recent: VecDeque<f64>,
    in_loss_spike: bool,
    previous_update: Option<f64>,
    events: Vec<SpikeEvent>,
}

impl SpikeDetector {
    /// A detector, or which configuration value is invalid.
    pub fn try_new(config: SpikeDetectorConfig) -> Result<Self, OptimError> {
        config.validate()?;
        Ok(Self {
            config,
            recent: VecDeque::with_capacity(config.window),
            in_loss_spike: false,
            previous_update: None,
            events: Vec::new(),
        })
    }

    /// The lowest loss among the recent non-spike steps, once the warm-up has passed.
    pub fn baseline(&self) -> Option<f64> {
        (self.recent.len() >= self.config.warmup.max(1))
            .then(|| self.recent.iter().copied().fold(f64::INFINITY, f64::min))
    }

    /// Records the loss of `step`; returns the event if a loss spike starts here.
    pub fn observe_loss(&mut self, step: u64, loss: f64) -> Option<SpikeEvent> {
        let c = self.config;
        let baseline = self.baseline();
        let above = |b: f64| !loss.is_finite() || (loss > c.loss_factor * b && loss > c.min_loss);
        let event = match baseline {
            Some(b) if above(b) => {
                let starts = !self.in_loss_spike;
                self.in_loss_spike = true;
                starts.then_some(SpikeEvent {
                    step,
                    kind: SpikeKind::Loss,
                    value: loss,
                    reference: b,
                })
            }
            _ => {
                self.in_loss_spike = false;
                if self.recent.len() == c.window {
                    self.recent.pop_front();
                }
                self.recent.push_back(loss);
                None
            }
        };
        self.events.extend(event);
        event
    }

    /// Records the mean update magnitude of `step`; returns the event if it is at least
    /// `update_factor` times the value of the previous `observe_update` call.
    ///
    /// The window is the distance between calls, not one step: called every `log_every`
    /// steps, it compares with the update `log_every` steps earlier (the event's
    /// `reference`). A jump that builds up over those steps counts, and a spike that comes
    /// and goes between two calls is missed; `ProbedAdam`'s `max_update_ratio` covers every
    /// step. The first call only sets the reference.
    pub fn observe_update(&mut self, step: u64, mean_update: f64) -> Option<SpikeEvent> {
        let event = self.previous_update.and_then(|prev| {
            (prev > 0.0 && mean_update >= self.config.update_factor * prev).then_some(SpikeEvent {
                step,
                kind: SpikeKind::Update,
                value: mean_update,
                reference: prev,
            })
        });
        self.previous_update = Some(mean_update);
        self.events.extend(event);
        event
    }

    /// Every event so far, in order.
    pub fn events(&self) -> &[SpikeEvent] {
        &self.events
    }

    /// The steps at which loss spikes started (the `spikes` field of an experiment summary).
    pub fn loss_spike_steps(&self) -> Vec<u64> {
        self.steps_of(SpikeKind::Loss)
    }

    /// The steps at which update spikes happened.
    pub fn update_spike_steps(&self) -> Vec<u64> {
        self.steps_of(SpikeKind::Update)
    }

    fn steps_of(&self, kind: SpikeKind) -> Vec<u64> {
        self.events
            .iter()
            .filter(|e| e.kind == kind)
            .map(|e| e.step)
            .collect()
    }
}
