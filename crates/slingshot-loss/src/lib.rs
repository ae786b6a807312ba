//! Collapse-aware cross-entropy for burn.
//!
//! [`CollapseAwareCrossEntropy`] replaces burn's `CrossEntropyLoss` and returns, from the same
//! forward and backward, the numerics the paper is about:
//!
//! * burn's `pad_tokens`, class `weights` and label `smoothing`, with burn's names and types;
//! * a **precision policy** ([`LossPrecision`]): the logits' own dtype, f32, f64 for the loss
//!   only (Fig. 1(a)'s "float64 loss"), or bf16/f16, native where the backend has the dtype
//!   and emulated by rounding every intermediate where it does not (ndarray), or FP8
//!   (E4M3, E5M2), always emulated;
//! * **zero-sum projection** of each row's logit gradient (§4.1), z-loss, and Prieto et al.'s
//!   **StableMax**;
//! * [`CollapseStats`] computed on the device in the same pass: per-row collapse mask, margin,
//!   residual mass, and batch fractions, read back only when you read them.
//!
//! Moving from burn's loss is a one-line change, and `forward` returns the loss tensor as
//! burn's does; [`CollapseAwareCrossEntropy::forward_with_stats`] adds the statistics:
//!
//! ```
//! use burn::backend::Autodiff;
//! use burn::tensor::{Int, Tensor};
//! use burn_ndarray::NdArray;
//! use slingshot_loss::CollapseAwareCrossEntropyConfig;
//!
//! type B = Autodiff<NdArray>;
//! let device = Default::default();
//! // was: let loss_fn = burn::nn::loss::CrossEntropyLossConfig::new().init::<B>(&device);
//! let loss_fn = CollapseAwareCrossEntropyConfig::new().init::<B>(&device);
//! let logits = Tensor::<B, 2>::from_floats([[20.0, 0.0, 0.0], [1.0, 0.0, 0.0]], &device).require_grad();
//! let targets = Tensor::<B, 1, Int>::from_ints([0, 0], &device);
//! let out = loss_fn.forward_with_stats(logits.clone(), targets);
//! assert_eq!(out.stats.summary().collapsed_fraction, 0.5); // the first row is in softmax collapse
//! let grads = out.loss.backward();
//! let g = logits.grad(&grads).unwrap().into_data().to_vec::<f32>().unwrap();
//! assert_eq!(g[0], 0.0); // its correct class gets exactly no gradient
//! assert!(g[1] > 0.0); // while its wrong classes still do
//! ```
//!
//! Generic code needs only burn's bounds:
//!
//! ```
//! use burn::tensor::backend::AutodiffBackend;
//! use burn::tensor::{Int, Tensor};
//! use slingshot_loss::CollapseAwareCrossEntropy;
//!
//! fn step<B: AutodiffBackend>(
//!     loss_fn: &CollapseAwareCrossEntropy<B>,
//!     logits: Tensor<B, 2>,
//!     targets: Tensor<B, 1, Int>,
//! ) -> B::Gradients {
//!     loss_fn.forward(logits, targets).backward()
//! }
//! ```

mod autodiff;
mod config;
#[cfg(feature = "cubecl")]
mod cube;
// The fused kernels' plan coverage (shared with the host kernel) and the CubeCL kernel's
// launch geometry, tested without the CubeCL features.
#[cfg_attr(not(feature = "cubecl"), allow(dead_code))]
mod cube_plan;
mod dispatch;
mod error;
#[cfg(feature = "cubecl")]
mod fusion;
mod host;
mod kernel;
mod loss;
mod rounding;
mod stats;

pub use config::{CollapseAwareCrossEntropyConfig, LossPrecision, LossReduction, Normalizer};
pub use error::LossError;
pub use loss::{CollapseAwareCrossEntropy, CrossEntropyOutput};
pub use stats::{CollapseStats, CollapseSummary};
