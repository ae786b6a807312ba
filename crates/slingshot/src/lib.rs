#![doc = include_str!("../../../README.md")]
//!
//! # Modules
//!
//! * [`numerics`]: float formats, absorption margins, the rounding simulator, Adam arithmetic
//!   (crate `slingshot-numerics`).

pub use slingshot_numerics as numerics;
