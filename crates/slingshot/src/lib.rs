#![doc = include_str!("../../../README.md")]
//!
//! # Modules
//!
//! * [`numerics`]: float formats, absorption margins, the rounding simulator, Adam arithmetic
//!   (crate `slingshot-numerics`).
//! * [`loss`]: the collapse-aware cross-entropy and its statistics (crate `slingshot-loss`).
//! * [`nn`]: centered classifiers, mean removal, normalized heads and NFI diagnostics (crate
//!   `slingshot-nn`).
//! * [`optim`]: `ProbedAdam` (burn's Adam with an effective-learning-rate probe), the optimizer
//!   switch, OrthoGrad and the spike detector (crate `slingshot-optim`).

pub use slingshot_loss as loss;
pub use slingshot_nn as nn;
pub use slingshot_numerics as numerics;
pub use slingshot_optim as optim;
