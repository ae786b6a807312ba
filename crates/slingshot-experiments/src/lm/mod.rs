//! The language-model experiment (§4.3, Fig. 13, App. A.4): a small nanoGPT-style decoder
//! (App. D Table 4) trained with the collapse-aware loss, counting the tokens whose loss is
//! exactly zero, which tokens they are, and how the logits and the output embedding's mean
//! `W_G` grow, with the loss in f32 or f64, a bf16 model (cuda), and a centered head.
//!
//! The pieces, one concept a file: [`corpus`] (the text), [`tokenizer`] (bytes or BPE),
//! [`batches`] (seeded windows), [`rope`] and [`model`] (the GPT), [`schedule`] (warm-up and
//! cosine decay), [`config`] (presets and validation), `measure` (a logged step's read-back),
//! [`metrics`] (rows, summary, the collapsed-token tally), [`train`] (the task the run layer drives)
//! and [`cli`] (flags, arms in child processes, figures).

pub mod batches;
pub mod cli;
pub mod config;
pub mod corpus;
mod measure;
pub mod metrics;
pub mod model;
pub mod rope;
pub mod schedule;
pub mod tokenizer;
pub mod train;

pub use config::{GptConfig, LmArm, LmConfig, LmPreset, TokenizerKind};
pub use corpus::Corpus;
pub use metrics::{LmRow, LmSummary, TopToken};
pub use model::Gpt;
pub use tokenizer::Tokenizer;
pub use train::{LmRunResult, run};
