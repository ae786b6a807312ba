//! Classifier heads and diagnostics against numerical feature inflation (NFI).
//!
//! Under softmax collapse the classifier's class mean `W_G` and the batch feature mean `mu_G`
//! grow exponentially and anti-parallel (Thm. 3.7). This crate removes that direction and
//! measures it:
//!
//! * [`CenteredLinear`]: a classifier whose forward uses `W - W_G` (last-layer mean removal
//!   during training, §4.3); [`remove_class_mean`] does the same as a post-step projection of
//!   any burn `Linear` (mu-centering), and [`mu_loss`] is the `gamma ||W_G||^2` penalty.
//! * [`FeatureCentering`] and [`ClassifierHead`] with [`HeadNorm`]: batch-mean subtraction,
//!   BatchNorm (Fig. 3(c)) or LayerNorm (Fig. 3(b)) before the classifier.
//! * [`clamp_logit_margin`]: logits raised to at least `row max - margin` (App. A.1.4), which
//!   rules out underflow but leaves absorption, so spikes persist.
//! * [`NfiDiagnostics`]: `||W_G||`, `||mu_G||`, `cos(W_G, mu_G)`, `||W*||`, `||W||`, logit
//!   statistics and the neural-collapse measures NC1-NC3, on the device.

mod centered;
mod diagnostics;
mod error;
mod heads;
mod logit_clamp;
mod mean_removal;

pub use centered::{CenteredLinear, CenteredLinearConfig, class_mean};
pub use diagnostics::{NfiDiagnostics, NfiSummary};
pub use error::NnError;
pub use heads::{ClassifierHead, ClassifierHeadConfig, FeatureCentering, HeadNorm};
pub use logit_clamp::{clamp_logit_margin, try_clamp_logit_margin};
pub use mean_removal::{mu_loss, remove_class_mean, try_mu_loss};
