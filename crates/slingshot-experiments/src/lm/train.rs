//! The language-model task: AdamW with clipping and the cosine schedule, the collapse-aware
//! loss every step, and on logged steps only one read-back of the statistics. The run layer
//! ([`crate::run`]) drives it.
//!
//! The per-token tally of zero-loss targets stays on the device between logged steps: each
//! step scatter-adds its zero-loss mask into a `[vocab]` integer counter, and a logged step
//! reads the counter, adds it to the host's `u64` counts and starts it again from zero (so
//! the device's `i32` on cuda never overflows).

use std::path::Path;

use burn::backend::Autodiff;
use burn::module::Module;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{IndexingUpdateOp, Int, Tensor};
use burn_ndarray::NdArray;
use serde::{Deserialize, Serialize};
use slingshot_loss::{CollapseAwareCrossEntropy, CollapseAwareCrossEntropyConfig, LossPrecision};

use super::batches::TokenStream;
use super::config::{LmArm, LmConfig, TokenizerKind};
use super::corpus::Corpus;
use super::measure::{Pending, add_counts};
use super::metrics::{
    LmRow, LmSummary, TOP_TOKENS, TOP_TOKENS_FILE, TopToken, format_top_tokens, top_tokens,
};
use super::model::Gpt;
use super::schedule::cosine_with_warmup;
use super::tokenizer::Tokenizer;
use crate::config::BackendKind;
use crate::error::ExperimentError;
use crate::metrics::write_json;
use crate::output::RunDir;
use crate::run::{RunOptions, Training, checkpoint, train_loop};
use crate::train::{INIT_RNG, Materialize, claim_float_dtype};

/// What a finished run returns.
#[derive(Debug, Clone)]
pub struct LmRunResult {
    /// `summary.json`'s contents.
    pub summary: LmSummary,
    /// Every logged row.
    pub rows: Vec<LmRow>,
}

/// The text, its tokenizer and its tokens, checked before any training.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The corpus.
    pub corpus: Corpus,
    /// The tokenizer (BPE trained on the corpus when asked for).
    pub tokenizer: Tokenizer,
    /// The corpus's tokens.
    pub stream: TokenStream,
}

/// Loads the corpus, builds the tokenizer and checks that a window fits.
pub fn prepare(config: &LmConfig) -> Result<Prepared, ExperimentError> {
    let corpus = Corpus::load(config.corpus.as_deref())?;
    let tokenizer = match config.tokenizer {
        TokenizerKind::Byte => Tokenizer::byte(),
        TokenizerKind::Bpe { vocab } => Tokenizer::train_bpe(&corpus.documents, vocab),
    };
    let stream = TokenStream::new(&corpus, &tokenizer, config.seq_len)?;
    Ok(Prepared {
        corpus,
        tokenizer,
        stream,
    })
}

/// Validates `config` and the corpus, then trains (with `options`' progress bar, checkpoints,
/// resume and stop; `record_updates` is refused) on the backend and dtype of its arm,
/// writing `config.json`, `metrics.csv`, `summary.json` and `top-collapsed-tokens.txt` into
/// `dir`.
pub fn run(
    config: &LmConfig,
    dir: &RunDir,
    options: &RunOptions,
) -> Result<LmRunResult, ExperimentError> {
    config.validate()?;
    if options.record_updates.is_some() {
        return Err(ExperimentError::InvalidConfig(
            "recording classifier updates is an option of the modular harness only".into(),
        ));
    }
    let data = prepare(config)?;
    match (config.backend, config.arm) {
        (BackendKind::Ndarray, LmArm::Bf16) => {
            unreachable!("validate() refuses bf16 on ndarray")
        }
        (BackendKind::Ndarray, _) => run_on::<Autodiff<NdArray<f32>>>(config, &data, dir, options),
        #[cfg(feature = "cuda")]
        (BackendKind::Cuda, LmArm::Bf16) => run_on::<
            Autodiff<burn_cuda::Cuda<burn::tensor::bf16, i32>>,
        >(config, &data, dir, options),
        #[cfg(feature = "cuda")]
        (BackendKind::Cuda, _) => {
            run_on::<Autodiff<burn_cuda::Cuda<f32, i32>>>(config, &data, dir, options)
        }
        #[cfg(not(feature = "cuda"))]
        (BackendKind::Cuda, _) => unreachable!("validate() refuses cuda without the feature"),
        (BackendKind::Flex, LmArm::Bf16) => unreachable!("validate() refuses bf16 off cuda"),
        (BackendKind::Flex, _) => run_on::<Autodiff<burn_flex::Flex>>(config, &data, dir, options),
        #[cfg(feature = "wgpu")]
        (BackendKind::Wgpu, LmArm::Bf16) => unreachable!("validate() refuses bf16 off cuda"),
        #[cfg(feature = "wgpu")]
        (BackendKind::Wgpu, _) => {
            run_on::<Autodiff<burn_wgpu::Wgpu<f32, i32>>>(config, &data, dir, options)
        }
        #[cfg(not(feature = "wgpu"))]
        (BackendKind::Wgpu, _) => unreachable!("validate() refuses wgpu without the feature"),
    }
}

/// The loss's precision in an arm: f64 for the f64-loss arm, f32 otherwise (bf16 logits are
/// widened).
fn loss_precision(arm: LmArm) -> LossPrecision {
    match arm {
        LmArm::F64Loss => LossPrecision::F64,
        LmArm::F32 | LmArm::Bf16 | LmArm::Centered => LossPrecision::F32,
    }
}

/// What the loop carries from step to step besides the model and optimizer.
struct Tally<B: Backend> {
    /// Zero-loss targets per token since the last read.
    device: Tensor<B, 1, Int>,
    /// Everything read so far.
    host: Vec<u64>,
    first_collapse: Option<(u64, Vec<TopToken>)>,
}

/// What the language-model task keeps in a checkpoint besides the model and optimizer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LmState {
    /// Zero-loss count of every token so far.
    pub counts: Vec<u64>,
    /// The first logged step with a zero-loss token, and the tally then.
    pub first_collapse: Option<(u64, Vec<TopToken>)>,
}

type LmOptim<B> = OptimizerAdaptor<burn::optim::AdamW, Gpt<B>, B>;

/// The language-model task, as the run layer trains it.
struct LmTraining<'a, B: AutodiffBackend> {
    config: LmConfig,
    data: &'a Prepared,
    /// `None` only inside a step, while the optimizer owns it.
    model: Option<Gpt<B>>,
    optim: LmOptim<B>,
    loss_fn: CollapseAwareCrossEntropy<B>,
    tally: Tally<B::InnerBackend>,
    device: B::Device,
}

fn adamw<B: AutodiffBackend>(config: &LmConfig) -> LmOptim<B> {
    AdamWConfig::new()
        .with_beta_1(config.beta1 as f32)
        .with_beta_2(config.beta2 as f32)
        .with_epsilon(config.eps as f32)
        .with_weight_decay(0.0)
        .init::<B, Gpt<B>>()
}

impl<'a, B: AutodiffBackend> LmTraining<'a, B> {
    fn new(
        config: &LmConfig,
        data: &'a Prepared,
        device: &B::Device,
    ) -> Result<Self, ExperimentError> {
        claim_float_dtype::<B::InnerBackend>(
            device,
            <B::FloatElem as burn::tensor::Element>::dtype(),
        )?;
        let vocab = data.tokenizer.vocab_size();
        let model: Gpt<B> = {
            // burn's generator is global: hold it from seeding to the last parameter drawn.
            let _guard = INIT_RNG
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            B::seed(device, config.seed);
            let model = config
                .model
                .init(vocab, config.arm == LmArm::Centered, device)?;
            model.visit(&mut Materialize);
            model
        };
        let loss_fn = CollapseAwareCrossEntropyConfig::new()
            .with_precision(loss_precision(config.arm))
            .try_init::<B>(device)?;
        Ok(Self {
            config: config.clone(),
            data,
            model: Some(model),
            optim: adamw(config),
            loss_fn,
            tally: Tally {
                device: Tensor::zeros([vocab], device),
                host: vec![0; vocab],
                first_collapse: None,
            },
            device: device.clone(),
        })
    }

    fn vocab(&self) -> usize {
        self.data.tokenizer.vocab_size()
    }
}

impl<B: AutodiffBackend> Training for LmTraining<'_, B> {
    type Config = LmConfig;
    type Row = LmRow;
    type State = LmState;
    type Summary = LmSummary;
    // The cosine schedule spans the whole run.
    const STEPS_EXTEND: bool = false;

    fn config(&self) -> &LmConfig {
        &self.config
    }

    fn total_steps(&self) -> u64 {
        self.config.steps
    }

    fn label(&self) -> String {
        self.config.arm.to_string()
    }

    fn is_logged(&self, taken: u64) -> bool {
        taken.is_multiple_of(self.config.log_every) || taken == self.config.steps
    }

    fn step(&mut self, step: u64, log: bool) -> Result<Option<LmRow>, ExperimentError> {
        let (config, device, vocab) = (&self.config, &self.device, self.vocab());
        let lr = cosine_with_warmup(step, config.steps, config.warmup, config.lr, config.min_lr);
        let (inputs, targets) =
            self.data
                .stream
                .batch::<B>(config.seed, step, config.batch, config.seq_len, device);
        let model = self
            .model
            .take()
            .expect("the model is back after every step");
        let out = model.forward(inputs);
        let ce = self
            .loss_fn
            .try_forward_3d_with_stats(out.logits.clone(), targets.clone())?;
        let stats = ce.stats.clone();
        let zero_loss = stats.zero_loss.clone().inner();
        let flat_targets = targets.inner().reshape([config.batch * config.seq_len]);
        self.tally.device = self.tally.device.clone().scatter(
            0,
            flat_targets,
            zero_loss.clone().int(),
            IndexingUpdateOp::Add,
        );
        // The logged quantities describe the batch the step was computed on.
        let pending = log.then(|| {
            Pending::new(
                &out,
                &model,
                ce.loss.clone().inner(),
                stats.batch.clone().inner(),
                zero_loss,
            )
        });
        let grads = GradientsParams::from_grads(ce.loss.backward(), &model);
        // Clipping by the global norm, as the paper's PyTorch recipe does (burn's own
        // clipping is per parameter tensor).
        let (grads, _) = slingshot_optim::clip_grad_norm(&model, grads, config.grad_clip)?;
        self.model = Some(self.optim.step(lr, model, grads));
        let Some(pending) = pending else {
            return Ok(None);
        };
        let taken = step + 1;
        let tokens_per_step = (config.batch * config.seq_len) as u64;
        let counts = std::mem::replace(&mut self.tally.device, Tensor::zeros([vocab], device));
        let row = pending.read(taken, lr, tokens_per_step, counts, &mut self.tally.host);
        if self.tally.first_collapse.is_none() && row.cumulative_zero_loss_tokens > 0 {
            let top = top_tokens(&self.tally.host, &self.data.tokenizer, TOP_TOKENS);
            self.tally.first_collapse = Some((taken, top));
        }
        Ok(Some(row))
    }

    fn row_step(row: &LmRow) -> u64 {
        row.step
    }

    fn set_wall_seconds(row: &mut LmRow, seconds: f64) {
        row.wall_seconds = seconds;
    }

    fn diverged(row: &LmRow) -> bool {
        !row.loss.is_finite()
    }

    fn message(row: &LmRow) -> String {
        format!(
            "loss {:.3}  zero-loss {:.2}%  mean logit {:.2}",
            row.loss,
            100.0 * row.zero_loss_fraction,
            row.mean_logit
        )
    }

    fn save_parts(&self, dir: &Path) -> Result<(), ExperimentError> {
        let model = self
            .model
            .as_ref()
            .expect("the model is back after every step");
        checkpoint::save_model(dir, model, &self.optim)
    }

    fn load_parts(&mut self, dir: &Path) -> Result<(), ExperimentError> {
        let model = self
            .model
            .take()
            .expect("the model is back after every step");
        let optim = std::mem::replace(&mut self.optim, adamw(&self.config));
        let (model, optim) = checkpoint::load_model(dir, model, optim, &self.device)?;
        self.model = Some(model);
        self.optim = optim;
        Ok(())
    }

    fn state(&mut self) -> LmState {
        // Fold the device counts in, so that the checkpoint holds every step's.
        let vocab = self.vocab();
        let counts =
            std::mem::replace(&mut self.tally.device, Tensor::zeros([vocab], &self.device));
        add_counts(&mut self.tally.host, counts);
        LmState {
            counts: self.tally.host.clone(),
            first_collapse: self.tally.first_collapse.clone(),
        }
    }

    fn restore(&mut self, state: LmState, _rows: &[LmRow]) -> Result<(), ExperimentError> {
        if state.counts.len() != self.vocab() {
            return Err(ExperimentError::Resume {
                path: "checkpoint/state.json".into(),
                reason: format!(
                    "has {} token counts, this run's vocabulary has {}",
                    state.counts.len(),
                    self.vocab()
                ),
            });
        }
        self.tally.host = state.counts;
        self.tally.first_collapse = state.first_collapse;
        Ok(())
    }

    fn summary(&mut self, rows: &[LmRow], steps: u64, wall_seconds: f64) -> LmSummary {
        let vocab = self.vocab();
        let counts =
            std::mem::replace(&mut self.tally.device, Tensor::zeros([vocab], &self.device));
        add_counts(&mut self.tally.host, counts);
        let params = self.model.as_ref().map_or(0, |m| m.num_params());
        summarize(
            &self.config,
            self.data,
            params,
            rows,
            &self.tally.host,
            self.tally.first_collapse.clone(),
            steps,
            wall_seconds,
        )
    }

    fn write_outputs(&self, dir: &RunDir, summary: &LmSummary) -> Result<(), ExperimentError> {
        write_json(&dir.summary(), summary)?;
        let path = dir.root().join(TOP_TOKENS_FILE);
        std::fs::write(
            &path,
            format_top_tokens(&summary.arm, &summary.top_collapsed_tokens),
        )
        .map_err(|e| ExperimentError::Write {
            path,
            reason: e.to_string(),
        })
    }
}

fn run_on<B: AutodiffBackend>(
    config: &LmConfig,
    data: &Prepared,
    dir: &RunDir,
    options: &RunOptions,
) -> Result<LmRunResult, ExperimentError> {
    let mut task = LmTraining::<B>::new(config, data, &Default::default())?;
    let trained = train_loop(&mut task, dir, options)?;
    Ok(LmRunResult {
        summary: trained.summary,
        rows: trained.rows,
    })
}

/// `summary.json` from the rows and the tally.
#[allow(clippy::too_many_arguments)]
fn summarize(
    config: &LmConfig,
    data: &Prepared,
    params: usize,
    rows: &[LmRow],
    counts: &[u64],
    first_collapse: Option<(u64, Vec<TopToken>)>,
    steps: u64,
    wall_seconds: f64,
) -> LmSummary {
    let last = rows.last();
    let last_of = |f: fn(&LmRow) -> f64| last.map_or(f64::NAN, f);
    let max_of = |f: fn(&LmRow) -> f64| rows.iter().map(f).fold(f64::NEG_INFINITY, f64::max);
    let tokens_per_step = (config.batch * config.seq_len) as u64;
    let (first_step, first_tokens) = first_collapse.unzip();
    LmSummary {
        experiment: config.experiment.clone(),
        arm: config.arm.to_string(),
        backend: config.backend.to_string(),
        model_dtype: if config.arm == LmArm::Bf16 {
            "bf16"
        } else {
            "f32"
        }
        .into(),
        loss_precision: if config.arm == LmArm::F64Loss {
            "f64"
        } else {
            "f32"
        }
        .into(),
        centered_head: config.arm == LmArm::Centered,
        corpus: data.corpus.source.clone(),
        corpus_bytes: data.corpus.bytes(),
        corpus_tokens: data.stream.tokens.len(),
        tokenizer: config.tokenizer.to_string(),
        vocab_size: data.tokenizer.vocab_size(),
        params,
        steps,
        tokens_per_step,
        wall_seconds,
        tokens_per_second: if wall_seconds > 0.0 {
            (steps * tokens_per_step) as f64 / wall_seconds
        } else {
            0.0
        },
        final_loss: last_of(|r| r.loss),
        final_mean_logit: last_of(|r| r.mean_logit),
        max_mean_logit: max_of(|r| r.mean_logit),
        final_centered_mean_logit: last_of(|r| r.centered_mean_logit),
        final_w_g_norm: last_of(|r| r.w_g_norm),
        final_logit_norm: last_of(|r| r.logit_norm),
        final_zero_loss_fraction: last_of(|r| r.zero_loss_fraction),
        max_zero_loss_fraction: max_of(|r| r.zero_loss_fraction),
        total_zero_loss_tokens: counts.iter().sum(),
        first_zero_loss_step: first_step,
        first_collapsed_tokens: first_tokens.unwrap_or_default(),
        top_collapsed_tokens: top_tokens(counts, &data.tokenizer, TOP_TOKENS),
        diverged_at: rows.iter().find(|r| !r.loss.is_finite()).map(|r| r.step),
    }
}
