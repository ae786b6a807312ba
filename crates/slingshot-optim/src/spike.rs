//! Online detection of loss spikes and update spikes.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::OptimError;

/// When a value counts as a spike.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SpikeDetectorConfig {
    /// A loss spike starts when the loss exceeds `loss_factor` times the larger of the
    /// baseline (the lowest loss among the last `window` non-spike steps) and
    /// `loss_resolution`: a jump of `log10(loss_factor)` decades on a log scale.
    pub loss_factor: f64,
    /// The smallest loss the training precision resolves: a row's loss is `ln S` with
    /// `S >= 1 + eps` unless it is exactly 0, so losses below about `eps` (the format's machine
    /// epsilon, `2^-23` for f32) are rounding, not signal. The default is f32's;
    /// [`SpikeDetectorConfig::for_format`] takes another format's. A loss leaving exact zero
    /// (softmax collapse) is a spike once it passes `loss_factor * loss_resolution`.
    #[serde(default = "f32_resolution")]
    pub loss_resolution: f64,
    /// An absolute floor besides: a loss at or below it is never a spike (0: none).
    pub min_loss: f64,
    /// Steps in the running baseline.
    pub window: usize,
    /// Steps of history needed before anything is called a spike.
    pub warmup: usize,
    /// An update spike: the mean update magnitude is at least this many times the one passed
    /// to the previous [`SpikeDetector::observe_update`] call (§3.3 reports about 50x at a
    /// slingshot; the default is 20x).
    pub update_factor: f64,
    /// An NFI event: `||mu_G||` or `||W_G||` is at least this many times its lowest value of
    /// the last `nfi_window` steps while at least `nfi_min_collapsed` of the rows are collapsed.
    #[serde(default = "default_nfi_factor")]
    pub nfi_factor: f64,
    /// Steps over which the NFI growth is measured.
    #[serde(default = "default_nfi_window")]
    pub nfi_window: u64,
    /// The collapsed fraction from which norm growth counts as feature inflation (one row of
    /// a few hundred collapsing early in training does not).
    #[serde(default = "default_nfi_min_collapsed")]
    pub nfi_min_collapsed: f64,
}

fn f32_resolution() -> f64 {
    f64::from(f32::EPSILON)
}

fn default_nfi_factor() -> f64 {
    2.0
}

fn default_nfi_window() -> u64 {
    500
}

fn default_nfi_min_collapsed() -> f64 {
    0.01
}

impl Default for SpikeDetectorConfig {
    /// Loss 10x above its recent minimum or f32's resolution; a 100-step baseline after 10
    /// steps; update spikes at 20x; NFI events at 2x `||mu_G||` or `||W_G||` within 500 steps
    /// while at least 1% of the rows are collapsed.
    fn default() -> Self {
        Self {
            loss_factor: 10.0,
            loss_resolution: f32_resolution(),
            min_loss: 0.0,
            window: 100,
            warmup: 10,
            update_factor: 20.0,
            nfi_factor: default_nfi_factor(),
            nfi_window: default_nfi_window(),
            nfi_min_collapsed: default_nfi_min_collapsed(),
        }
    }
}

impl SpikeDetectorConfig {
    /// The defaults, with the loss resolution of the precision the loss is computed in: its
    /// machine epsilon (`2^-52` for f64, `2^-7` for bf16, `2^-3` for E4M3).
    pub fn for_format(format: slingshot_numerics::FloatFormat) -> Self {
        Self {
            loss_resolution: format.epsilon(),
            ..Self::default()
        }
    }

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
        if !(self.loss_resolution.is_finite() && self.loss_resolution >= 0.0) {
            return bad(
                "loss_resolution",
                self.loss_resolution,
                "a finite value >= 0",
            );
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
        if !(self.nfi_factor.is_finite() && self.nfi_factor > 1.0) {
            return bad("nfi_factor", self.nfi_factor, "a finite value > 1");
        }
        if self.nfi_window == 0 {
            return bad("nfi_window", 0.0, "at least 1 step");
        }
        if !(0.0..=1.0).contains(&self.nfi_min_collapsed) {
            return bad(
                "nfi_min_collapsed",
                self.nfi_min_collapsed,
                "a fraction in [0, 1]",
            );
        }
        Ok(())
    }
}

/// What [`SpikeDetector::observe_nfi`] reads from a logged step: `NfiDiagnostics`' norms and
/// the loss's collapsed fraction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NfiObservation {
    /// `||mu_G||`, the norm of the global feature mean.
    pub mu_g_norm: f64,
    /// `||W_G||`, the norm of the classifier's mean row.
    pub w_g_norm: f64,
    /// The fraction of rows whose softmax sum absorbed to 1.
    pub collapsed_fraction: f64,
}

/// What spiked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SpikeKind {
    /// The training loss.
    Loss,
    /// The mean parameter update.
    Update,
    /// Numerical feature inflation: `||mu_G||` or `||W_G||` jumped while rows were collapsed,
    /// with or without a visible loss spike.
    Nfi,
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
    /// What it was compared with: the loss baseline, the update of the previous
    /// [`SpikeDetector::observe_update`] call (`log_every` steps earlier when it is called
    /// every `log_every` steps), or the norm's lowest value in the NFI window.
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
/// to `loss_factor` times the baseline (or the resolution), and steps inside it do not enter
/// the baseline. Non-finite losses count as spikes. Jumps are judged on a log scale against
/// the precision's resolution, not a fixed floor, so a spike from 1e-7 to 1e-5 in f32, or
/// from 1e-16 to 1e-7 in f64, is found (the paper's partial absorption without a large
/// visible spike).
///
/// [`observe_nfi`](Self::observe_nfi) adds the other sign of a slingshot: numerical feature
/// inflation, `||mu_G||` or `||W_G||` doubling while rows are collapsed
/// ([`SpikeKind::Nfi`], [`nfi_event_steps`](Self::nfi_event_steps)).
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
    /// `(step, ||mu_G||, ||W_G||)` of the NFI window's observations, oldest first.
    norms: VecDeque<(u64, f64, f64)>,
    in_nfi: bool,
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
            norms: VecDeque::new(),
            in_nfi: false,
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
        // On a log scale: `loss_factor` above the baseline, or above the precision's
        // resolution when the baseline is below it (rounding noise, or exact zero).
        let above = |b: f64| {
            !loss.is_finite()
                || (loss > c.loss_factor * b.max(c.loss_resolution) && loss > c.min_loss)
        };
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

    /// Records the classifier's norms and the collapsed fraction of `step`; returns the event
    /// if an NFI event starts here: `||mu_G||` or `||W_G||` at least `nfi_factor` times its
    /// lowest value of the last `nfi_window` steps, with at least `nfi_min_collapsed` of the
    /// rows collapsed. One event lasts while both hold; the window counts steps, so the
    /// logging cadence does not change what is found.
    pub fn observe_nfi(&mut self, step: u64, nfi: NfiObservation) -> Option<SpikeEvent> {
        let c = self.config;
        while self
            .norms
            .front()
            .is_some_and(|&(s, _, _)| s + c.nfi_window < step)
        {
            self.norms.pop_front();
        }
        // The larger growth of the two norms against their lows in the window.
        let low = |pick: fn(&(u64, f64, f64)) -> f64| {
            self.norms.iter().map(pick).fold(f64::INFINITY, f64::min)
        };
        let growth = [(nfi.mu_g_norm, low(|o| o.1)), (nfi.w_g_norm, low(|o| o.2))]
            .into_iter()
            .filter(|&(_, lo)| lo > 0.0 && lo.is_finite())
            .max_by(|a, b| (a.0 / a.1).total_cmp(&(b.0 / b.1)));
        self.norms.push_back((step, nfi.mu_g_norm, nfi.w_g_norm));
        let jumped = growth.filter(|&(v, lo)| {
            v >= c.nfi_factor * lo
                && nfi.collapsed_fraction >= c.nfi_min_collapsed.max(f64::MIN_POSITIVE)
        });
        let event = match jumped {
            Some((value, reference)) => {
                let starts = !self.in_nfi;
                self.in_nfi = true;
                starts.then_some(SpikeEvent {
                    step,
                    kind: SpikeKind::Nfi,
                    value,
                    reference,
                })
            }
            None => {
                self.in_nfi = false;
                None
            }
        };
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

    /// The steps at which NFI events started.
    pub fn nfi_event_steps(&self) -> Vec<u64> {
        self.steps_of(SpikeKind::Nfi)
    }

    fn steps_of(&self, kind: SpikeKind) -> Vec<u64> {
        self.events
            .iter()
            .filter(|e| e.kind == kind)
            .map(|e| e.step)
            .collect()
    }
}
