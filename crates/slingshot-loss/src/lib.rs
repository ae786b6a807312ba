//! Collapse-aware cross-entropy for burn.
//!
//! [`CollapseAwareCrossEntropy`] replaces burn's `CrossEntropyLoss` and returns, from the same
//! forward and backward, the numerics the paper is about:
//!
//! * a **precision policy** ([`LossPrecision`]): the logits' own dtype, f32, f64 for the loss
//!   only (Fig. 1(a)'s "float64 loss"), or bf16/f16, native where the backend has the dtype
//!   and emulated by rounding every intermediate where it does not (ndarray);
//! * **zero-sum projection** of each row's logit gradient (§4.1), label smoothing, z-loss, and
//!   Prieto et al.'s **StableMax**;
//! * [`CollapseStats`] computed on the device in the same pass: per-row collapse mask, margin,
//!   residual mass, and batch fractions, read back only when you read them.
//!
//! ```
//! use burn::backend::Autodiff;
//! use burn::tensor::{Int, Tensor};
//! use burn_ndarray::NdArray;
//! use slingshot_loss::{CollapseAwareCrossEntropyConfig, LossPrecision};
//!
//! type B = Autodiff<NdArray>;
//! let device = Default::default();
//! let loss_fn = CollapseAwareCrossEntropyConfig::new().init::<B>(&device);
//! let logits = Tensor::<B, 2>::from_floats([[20.0, 0.0, 0.0], [1.0, 0.0, 0.0]], &device).require_grad();
//! let targets = Tensor::<B, 1, Int>::from_ints([0, 0], &device);
//! let out = loss_fn.forward(logits.clone(), targets);
//! let stats = out.stats.as_ref().unwrap().summary();
//! assert_eq!(stats.collapsed_fraction, 0.5); // the first row is in softmax collapse
//! let grads = out.loss.backward();
//! let g = logits.grad(&grads).unwrap().into_data().to_vec::<f32>().unwrap();
//! assert_eq!(g[0], 0.0); // its correct class gets exactly no gradient
//! assert!(g[1] > 0.0); // while its wrong classes still do
//! ```

mod backend;
mod config;
#[cfg(feature = "cuda")]
mod cube;
// The fused kernels' plan coverage (shared with the host kernel) and the CubeCL kernel's
// launch geometry, tested without the `cuda` feature.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
mod cube_plan;
mod error;
mod host;
mod kernel;
mod loss;
mod rounding;
mod stats;

pub use backend::{CollapseLossBackend, LossParts};
pub use config::{CollapseAwareCrossEntropyConfig, LossPrecision, Normalizer, Reduction};
pub use error::LossError;
pub use kernel::LossPlan;
pub use loss::{CollapseAwareCrossEntropy, CrossEntropyOutput};
pub use stats::{CollapseStats, CollapseSummary};
