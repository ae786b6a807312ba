//! The run layer every task shares: the training loop ([`train_loop`] over a [`Training`]),
//! checkpoints, `metrics.csv`, the output-directory rules of a fresh run and a resume, and the
//! arms protocol of the multi-arm binaries.
//!
//! A task (the modular and image task in [`crate::train`], the language model in
//! [`crate::lm::train`]) holds its model, optimizer, data and measurements, and implements
//! [`Training`]; it never touches the files.

pub mod arms;
pub mod checkpoint;
pub mod compare;
pub mod csv_log;
pub mod resume;
mod train_loop;

pub use arms::{Arm, ArmTask, child_entry, run_arms};
pub use checkpoint::{CheckpointState, SaveStage};
pub use train_loop::{RunOptions, Trained, Training, train_loop};
