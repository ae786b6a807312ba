//! The configuration of one language-model run: presets, arms, and validation before any
//! training.

use std::fmt;
use std::path::PathBuf;

use burn::config::Config;
use serde::{Deserialize, Serialize};

use crate::config::BackendKind;
use crate::error::ExperimentError;

/// The decoder's shape (App. D Table 4 fixes the kind of layers; the sizes come from the
/// preset). The vocabulary comes from the tokenizer.
#[derive(Config, Debug, PartialEq)]
pub struct GptConfig {
    /// Width of the residual stream `d`.
    pub d_model: usize,
    /// Transformer blocks.
    pub n_layers: usize,
    /// Attention heads (`d_model` must be a multiple, with an even head width for RoPE).
    pub n_heads: usize,
    /// Hidden width of the SwiGLU feed-forward.
    pub ffn_hidden: usize,
    /// RoPE base.
    #[config(default = 10000.0)]
    pub rope_theta: f64,
    /// LayerNorm epsilon.
    #[config(default = 1e-5)]
    pub norm_eps: f64,
}

impl GptConfig {
    /// Width of one head.
    pub fn head_dim(&self) -> usize {
        self.d_model / self.n_heads.max(1)
    }

    /// Parameters of the model over `vocab` tokens, from the shape alone (nothing is
    /// allocated): untied input and output embeddings, per block two LayerNorm gains, the four
    /// attention projections, the two QK-LayerNorm gains over a head, and the three SwiGLU
    /// matrices; the final LayerNorm gain. No biases anywhere.
    pub fn num_params(&self, vocab: usize) -> usize {
        let d = self.d_model;
        let block = 2 * d + 4 * d * d + 2 * self.head_dim() + 3 * d * self.ffn_hidden;
        2 * vocab * d + self.n_layers * block + d
    }

    /// Checks the shape.
    pub fn validate(&self) -> Result<(), ExperimentError> {
        let bad = |m: String| Err(ExperimentError::InvalidConfig(m));
        if self.d_model == 0 || self.n_layers == 0 || self.n_heads == 0 || self.ffn_hidden == 0 {
            return bad("d_model, n_layers, n_heads and ffn_hidden must be positive".into());
        }
        if !self.d_model.is_multiple_of(self.n_heads) {
            return bad(format!(
                "d_model {} is not a multiple of n_heads {}",
                self.d_model, self.n_heads
            ));
        }
        if !self.head_dim().is_multiple_of(2) {
            return bad(format!(
                "the head width {} must be even for RoPE",
                self.head_dim()
            ));
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 1.0) {
            return bad(format!("rope theta {} must be > 1", self.rope_theta));
        }
        if !(self.norm_eps.is_finite() && self.norm_eps > 0.0) {
            return bad(format!("norm eps {} must be > 0", self.norm_eps));
        }
        Ok(())
    }
}

/// One arm of the experiment (Fig. 13 and App. A.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
pub enum LmArm {
    /// f32 model, loss in f32.
    #[serde(rename = "f32")]
    #[value(name = "f32")]
    F32,
    /// f32 model, loss upcast to f64 (Fig. 13's float64 loss).
    #[serde(rename = "f64-loss")]
    #[value(name = "f64-loss")]
    F64Loss,
    /// bf16 model, loss in f32 (the paper's standard training; cuda only).
    #[serde(rename = "bf16")]
    #[value(name = "bf16")]
    Bf16,
    /// f32 model and loss, the output embedding's mean `W_G` removed in training: the head
    /// computes with `W - W_G` (App. A.4).
    #[serde(rename = "centered")]
    #[value(name = "centered")]
    Centered,
}

impl LmArm {
    /// Every arm, in the order of the figures.
    pub const ALL: [LmArm; 4] = [LmArm::F32, LmArm::F64Loss, LmArm::Bf16, LmArm::Centered];

    /// Whether `backend` can run this arm (bf16 needs cuda: ndarray has no bf16 matmul).
    pub fn runs_on(self, backend: BackendKind) -> bool {
        self != LmArm::Bf16 || backend == BackendKind::Cuda
    }
}

impl fmt::Display for LmArm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LmArm::F32 => "f32",
            LmArm::F64Loss => "f64-loss",
            LmArm::Bf16 => "bf16",
            LmArm::Centered => "centered",
        })
    }
}

/// The tokenizer a run builds from its corpus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenizerKind {
    /// One token per byte, plus the end-of-text token: 257 tokens.
    Byte,
    /// Byte-level BPE trained on the corpus up to this many tokens (specials included).
    Bpe {
        /// Target vocabulary size.
        vocab: usize,
    },
}

impl fmt::Display for TokenizerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenizerKind::Byte => f.write_str("byte"),
            TokenizerKind::Bpe { vocab } => write!(f, "bpe:{vocab}"),
        }
    }
}

impl std::str::FromStr for TokenizerKind {
    type Err = String;

    /// `byte` or `bpe:VOCAB`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "byte" => Ok(Self::Byte),
            other => match other.strip_prefix("bpe:").map(str::parse::<usize>) {
                Some(Ok(vocab)) => Ok(Self::Bpe { vocab }),
                _ => Err(format!(
                    "tokenizer {other:?}: expected `byte` or `bpe:VOCAB` (e.g. bpe:1024)"
                )),
            },
        }
    }
}

/// Which starting configuration the flags modify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LmPreset {
    /// Minutes on two CPU cores: d = 64, 2 layers, byte tokens, 64-token windows.
    Tiny,
    /// App. D Table 4 at ~110M parameters (GPU): d = 640, 10 layers, BPE to 50304 tokens,
    /// 2048-token windows, batch 64, 100k steps, 5k warm-up.
    Paper,
}

/// Everything that determines a run's numbers; written to `config.json` and compared on
/// `--resume`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LmConfig {
    /// Experiment name (the output directory's name by default).
    pub experiment: String,
    /// The preset the flags started from.
    pub preset: LmPreset,
    /// The arm.
    pub arm: LmArm,
    /// Where it computes.
    pub backend: BackendKind,
    /// The decoder's shape.
    pub model: GptConfig,
    /// The tokenizer.
    pub tokenizer: TokenizerKind,
    /// The corpus file or directory; `None`: the built-in default (see [`super::corpus`]).
    pub corpus: Option<PathBuf>,
    /// Tokens per window.
    pub seq_len: usize,
    /// Windows per step.
    pub batch: usize,
    /// Optimizer steps.
    pub steps: u64,
    /// Peak learning rate.
    pub lr: f64,
    /// The cosine's floor (Table 4: 1e-5).
    pub min_lr: f64,
    /// Linear warm-up steps.
    pub warmup: u64,
    /// AdamW's beta1.
    pub beta1: f64,
    /// AdamW's beta2.
    pub beta2: f64,
    /// AdamW's epsilon.
    pub eps: f64,
    /// Clipping threshold of the global gradient norm (`slingshot_optim::clip_grad_norm`, as
    /// PyTorch's `clip_grad_norm_`).
    pub grad_clip: f64,
    /// Seed of the initialization and the batches.
    pub seed: u64,
    /// Read statistics back every this many steps.
    pub log_every: u64,
}

impl LmConfig {
    /// The `tiny` preset: a CPU demo of a few minutes for all arms.
    pub fn tiny() -> Self {
        Self {
            experiment: "lm-collapse".into(),
            preset: LmPreset::Tiny,
            arm: LmArm::F32,
            backend: BackendKind::CPU_DEFAULT,
            model: GptConfig::new(64, 2, 4, 192),
            tokenizer: TokenizerKind::Byte,
            corpus: None,
            seq_len: 64,
            batch: 16,
            steps: 600,
            lr: 3e-3,
            min_lr: 1e-5,
            warmup: 30,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            grad_clip: 1.0,
            seed: 42,
            log_every: 10,
        }
    }

    /// The `paper` preset: App. D Table 4 with a ~110M-parameter decoder (Table 4 gives no
    /// width, depth or learning rate: d = 640, 10 layers of 10 heads, SwiGLU width 1536 give
    /// 110.3M parameters with untied 50304-token embeddings; the learning rate is nanoGPT's
    /// 6e-4).
    pub fn paper() -> Self {
        Self {
            preset: LmPreset::Paper,
            model: GptConfig::new(640, 10, 10, 1536),
            tokenizer: TokenizerKind::Bpe { vocab: 50304 },
            seq_len: 2048,
            batch: 64,
            steps: 100_000,
            lr: 6e-4,
            warmup: 5000,
            log_every: 100,
            ..Self::tiny()
        }
    }

    /// The preset's configuration.
    pub fn preset(preset: LmPreset) -> Self {
        match preset {
            LmPreset::Tiny => Self::tiny(),
            LmPreset::Paper => Self::paper(),
        }
    }

    /// Checks every value that does not need the corpus; [`super::train::run`] checks the
    /// corpus against `seq_len` before the first step.
    pub fn validate(&self) -> Result<(), ExperimentError> {
        let bad = |m: String| Err(ExperimentError::InvalidConfig(m));
        self.model.validate()?;
        if !self.arm.runs_on(self.backend) {
            return bad(format!(
                "the {} arm needs --backend cuda (burn-ndarray has no bf16 arithmetic); run it on a GPU or leave it out of --arms",
                self.arm
            ));
        }
        if self.backend == BackendKind::Wgpu && !cfg!(feature = "wgpu") {
            return bad("--backend wgpu needs a build with `--features wgpu`".into());
        }
        if self.backend == BackendKind::Cuda && !cfg!(feature = "cuda") {
            return bad("--backend cuda needs a build with the `cuda` feature".into());
        }
        if self.seq_len < 2 || self.batch == 0 || self.steps == 0 || self.log_every == 0 {
            return bad("seq-len must be >= 2 and batch, steps, log-every positive".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("learning rate {} must be > 0", self.lr));
        }
        if !(self.min_lr.is_finite() && self.min_lr >= 0.0 && self.min_lr <= self.lr) {
            return bad(format!(
                "min-lr {} must be in [0, lr = {}]",
                self.min_lr, self.lr
            ));
        }
        if self.warmup >= self.steps {
            return bad(format!(
                "warm-up {} must be shorter than the run ({} steps)",
                self.warmup, self.steps
            ));
        }
        for (name, beta) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&beta) {
                return bad(format!("{name} {beta} must be in [0, 1)"));
            }
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return bad(format!("eps {} must be > 0", self.eps));
        }
        if !(self.grad_clip.is_finite() && self.grad_clip > 0.0) {
            return bad(format!("grad-clip {} must be > 0", self.grad_clip));
        }
        if let TokenizerKind::Bpe { vocab } = self.tokenizer
            && !(super::tokenizer::BYTE_VOCAB..=65536).contains(&vocab)
        {
            return bad(format!(
                "BPE vocabulary {vocab} must be in [{}, 65536]",
                super::tokenizer::BYTE_VOCAB
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_paper_preset_has_about_110m_parameters() {
        let paper = LmConfig::paper();
        let n = paper.model.num_params(50304);
        assert_eq!(n, 110_279_040);
        assert!((105_000_000..115_000_000).contains(&n), "{n}");
        assert_eq!(paper.model.head_dim(), 64);
        paper.validate().unwrap();
    }

    #[test]
    fn the_tiny_preset_is_valid_and_bf16_is_refused_on_ndarray() {
        LmConfig::tiny().validate().unwrap();
        let bf16 = LmConfig {
            arm: LmArm::Bf16,
            ..LmConfig::tiny()
        };
        let err = bf16.validate().unwrap_err().to_string();
        assert!(err.contains("bf16") && err.contains("cuda"), "{err}");
    }

    #[test]
    fn bad_values_are_named() {
        let cases: [(&str, LmConfig); 4] = [
            (
                "n_heads",
                LmConfig {
                    model: GptConfig::new(64, 1, 3, 8),
                    ..LmConfig::tiny()
                },
            ),
            (
                "warm-up",
                LmConfig {
                    warmup: 600,
                    ..LmConfig::tiny()
                },
            ),
            (
                "min-lr",
                LmConfig {
                    min_lr: 1.0,
                    ..LmConfig::tiny()
                },
            ),
            (
                "beta2",
                LmConfig {
                    beta2: 1.0,
                    ..LmConfig::tiny()
                },
            ),
        ];
        for (word, config) in cases {
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(word), "{word}: {err}");
        }
    }

    #[test]
    fn tokenizer_kinds_parse() {
        assert_eq!("byte".parse(), Ok(TokenizerKind::Byte));
        assert_eq!("bpe:512".parse(), Ok(TokenizerKind::Bpe { vocab: 512 }));
        assert!("bpe:x".parse::<TokenizerKind>().is_err());
        assert_eq!(TokenizerKind::Bpe { vocab: 512 }.to_string(), "bpe:512");
    }
}
