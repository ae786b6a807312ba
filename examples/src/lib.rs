//! Library code of the example binaries that their tests also drive.

pub mod burn_train_collapse;
