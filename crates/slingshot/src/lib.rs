#![doc = include_str!("../../../README.md")]
//!
//! # Modules
//!
//! * [`numerics`]: float formats, absorption margins, the rounding simulator, Adam arithmetic
//!   (crate `slingshot-numerics`).
//! * [`loss`]: the collapse-aware cross-entropy and its statistics (crate `slingshot-loss`).

pub use slingshot_loss as loss;
pub use slingshot_numerics as numerics;
