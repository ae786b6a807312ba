//! Numerically aware training for [burn](https://burn.dev): tools against softmax collapse,
//! numerical feature inflation and the slingshot loss spikes they cause.
//!
//! Late in unregularized training the correct-class logit can lead the others by more than
//! about `p ln 2` (16.6 in f32). The softmax denominator then rounds to exactly 1 (softmax
//! collapse): the correct class gets exactly no gradient while the wrong classes keep theirs,
//! so the classifier gradient stops summing to zero. The classifier mean `W_G` and the feature
//! mean `mu_G` then grow, anti-parallel, and Adam's inflated effective learning rate throws
//! the loss back to chance when gradients return. The account is from *Grokking or
//! Glitching? How Low-Precision Drives Slingshot Loss Spikes* (arXiv:2605.06152).
//!
//! This crate gathers the library crates under one name.
//!
//! # What each module is for
//!
//! * [`numerics`] (crate `slingshot-numerics`, no burn): float formats from f64 to fp8, exact
//!   absorption margins ([`numerics::AbsorptionThresholds`]), a simulator of what a
//!   cross-entropy computes when every operation rounds, Adam arithmetic, and with the
//!   `proptest` feature, strategies for property-testing your own loss.
//! * [`loss`] (crate `slingshot-loss`): [`loss::CollapseAwareCrossEntropy`], a cross-entropy
//!   for burn with a precision policy (f64 loss for f32 models, bf16/f16), zero-sum gradient
//!   projection, StableMax, and collapse statistics from the same pass.
//! * [`nn`] (crate `slingshot-nn`): last-layer mean removal ([`nn::CenteredLinear`],
//!   [`nn::remove_class_mean`], [`nn::mu_loss`]), centered and normalized classifier heads,
//!   and [`nn::NfiDiagnostics`] for feature inflation and neural collapse.
//! * [`optim`] (crate `slingshot-optim`): [`optim::ProbedAdam`], burn's Adam bit for bit with
//!   an effective-learning-rate probe, the optimizer switch, OrthoGrad, global-norm gradient
//!   clipping and [`optim::SpikeDetector`].
//!
//! # Example
//!
//! A row past f32's absorption margin, as the numerics predict it and as the loss computes it:
//!
//! ```
//! use burn::backend::Autodiff;
//! use burn::tensor::{Int, Tensor};
//! use burn_ndarray::NdArray;
//! use slingshot::loss::CollapseAwareCrossEntropyConfig;
//! use slingshot::numerics::{AbsorptionThresholds, CollapsePrediction, FloatFormat};
//!
//! type B = Autodiff<NdArray>;
//! let device = Default::default();
//!
//! // In f32 with 3 classes, a margin of 20 collapses whatever the summation order.
//! let thresholds = AbsorptionThresholds::new(FloatFormat::F32, 3).unwrap();
//! assert_eq!(thresholds.predict(20.0).unwrap(), CollapsePrediction::Certain);
//!
//! let loss_fn = CollapseAwareCrossEntropyConfig::new().init::<B>(&device);
//! let logits =
//!     Tensor::<B, 2>::from_floats([[20.0, 0.0, 0.0], [1.0, 0.0, 0.0]], &device).require_grad();
//! let targets = Tensor::<B, 1, Int>::from_ints([0, 0], &device);
//! let out = loss_fn.forward_with_stats(logits.clone(), targets);
//! assert_eq!(out.stats.summary().collapsed_fraction, 0.5); // the first row collapsed
//! let grads = out.loss.backward();
//! let g = logits.grad(&grads).unwrap().into_data().to_vec::<f32>().unwrap();
//! assert_eq!(g[0], 0.0); // its correct class gets exactly no gradient
//! assert!(g[1] > 0.0); // while its wrong classes still do
//! ```
//!
//! # Further reading
//!
//! The repository's `docs/` folder has the guides, named here by path because they are not
//! part of this documentation: `docs/loss.md` (the loss, its kernels and tolerances),
//! `docs/nn.md` (heads and diagnostics), `docs/optim.md` (the probe, the switch, OrthoGrad,
//! the spike detector), `docs/numerics.md` (the derivations of the margins),
//! `docs/architecture.md` (how the crates fit into a training step) and `docs/results.md` (the
//! paper's experiments rebuilt with this library). Its `README.md` covers building, the
//! backends and the experiment binaries.

#[doc(inline)]
pub use slingshot_loss as loss;
#[doc(inline)]
pub use slingshot_nn as nn;
#[doc(inline)]
pub use slingshot_numerics as numerics;
#[doc(inline)]
pub use slingshot_optim as optim;

// The README's snippets stay doctests without being the front page, whose relative links
// rustdoc cannot resolve.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
mod readme {}
