//! The language-model training loop: AdamW with clipping and the cosine schedule, the
//! collapse-aware loss every step, and on logged steps only one read-back of the statistics.
//!
//! The per-token tally of zero-loss targets stays on the device between logged steps: each
//! step scatter-adds its zero-loss mask into a `[vocab]` integer counter, and a logged step
//! reads the counter, adds it to the host's `u64` counts and starts it again from zero (so
//! the device's `i32` on cuda never overflows).

use std::time::Instant;

use burn::backend::Autodiff;
use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{IndexingUpdateOp, Int, Tensor};
use burn_ndarray::NdArray;
use slingshot_loss::{CollapseAwareCrossEntropyConfig, LossPrecision};

use super::batches::TokenStream;
use super::checkpoint::{self, LmCheckpointState};
use super::config::{LmArm, LmConfig, TokenizerKind};
use super::corpus::Corpus;
use super::measure::{Pending, add_counts};
use super::metrics::{
    CsvLog, LmRow, LmSummary, TOP_TOKENS, TOP_TOKENS_FILE, TopToken, format_top_tokens, read_rows,
    top_tokens,
};
use super::model::Gpt;
use super::schedule::cosine_with_warmup;
use super::tokenizer::Tokenizer;
use crate::ExperimentError;
use crate::config::BackendKind;
use crate::metrics::write_json;
use crate::output::{RunDir, progress_bar};
use crate::train::RunOptions;
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
        (BackendKind::Ndarray, _) => {
            train::<Autodiff<NdArray<f32>>>(config, &data, dir, options, &Default::default())
        }
        #[cfg(feature = "cuda")]
        (BackendKind::Cuda, LmArm::Bf16) => train::<
            Autodiff<burn_cuda::Cuda<burn::tensor::bf16, i32>>,
        >(
            config, &data, dir, options, &Default::default()
        ),
        #[cfg(feature = "cuda")]
        (BackendKind::Cuda, _) => train::<Autodiff<burn_cuda::Cuda<f32, i32>>>(
            config,
            &data,
            dir,
            options,
            &Default::default(),
        ),
        #[cfg(not(feature = "cuda"))]
        (BackendKind::Cuda, _) => unreachable!("validate() refuses cuda without the feature"),
        (BackendKind::Flex, LmArm::Bf16) => unreachable!("validate() refuses bf16 off cuda"),
        (BackendKind::Flex, _) => {
            train::<Autodiff<burn_flex::Flex>>(config, &data, dir, options, &Default::default())
        }
        #[cfg(feature = "wgpu")]
        (BackendKind::Wgpu, LmArm::Bf16) => unreachable!("validate() refuses bf16 off cuda"),
        #[cfg(feature = "wgpu")]
        (BackendKind::Wgpu, _) => train::<Autodiff<burn_wgpu::Wgpu<f32, i32>>>(
            config,
            &data,
            dir,
            options,
            &Default::default(),
        ),
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

fn train<B>(
    config: &LmConfig,
    data: &Prepared,
    dir: &RunDir,
    options: &RunOptions,
    device: &B::Device,
) -> Result<LmRunResult, ExperimentError>
where
    B: AutodiffBackend,
{
    claim_float_dtype::<B::InnerBackend>(device, <B::FloatElem as burn::tensor::Element>::dtype())?;
    let vocab = data.tokenizer.vocab_size();
    let mut model: Gpt<B> = {
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
    let mut optim = AdamWConfig::new()
        .with_beta_1(config.beta1 as f32)
        .with_beta_2(config.beta2 as f32)
        .with_epsilon(config.eps as f32)
        .with_weight_decay(0.0)
        .init::<B, Gpt<B>>();
    let loss_fn = CollapseAwareCrossEntropyConfig::new()
        .with_precision(loss_precision(config.arm))
        .try_init::<B>(device)?;

    let mut rows: Vec<LmRow> = Vec::new();
    let mut start = 0;
    let mut wall_before = 0.0;
    let mut tally = Tally::<B::InnerBackend> {
        device: Tensor::zeros([vocab], device),
        host: vec![0; vocab],
        first_collapse: None,
    };
    if options.resume {
        let (checkpoint_dir, state) = checkpoint::read_state(&dir.checkpoint())?;
        if &state.config != config {
            return Err(ExperimentError::Resume {
                path: checkpoint_dir,
                reason: "the checkpoint was written with another configuration (see its state.json); resume with the same flags".into(),
            });
        }
        (model, optim) = checkpoint::load(&checkpoint_dir, model, optim, device)?;
        rows = read_rows(&dir.metrics())?;
        if rows.len() < state.metrics_rows || state.counts.len() != vocab {
            return Err(ExperimentError::Resume {
                path: dir.metrics(),
                reason: format!(
                    "has {} rows and {} token counts, the checkpoint expects {} and {vocab}",
                    rows.len(),
                    state.counts.len(),
                    state.metrics_rows
                ),
            });
        }
        // Rows logged after the checkpoint are logged again.
        rows.truncate(state.metrics_rows);
        start = state.step;
        wall_before = state.wall_seconds;
        tally.host = state.counts;
        tally.first_collapse = state.first_collapse;
    }
    write_json(&dir.config(), config)?;
    let mut writer = CsvLog::create(&dir.metrics(), &rows)?;

    let tokens_per_step = (config.batch * config.seq_len) as u64;
    let bar = progress_bar(config.steps, options.quiet, &config.arm.to_string());
    bar.set_position(start);
    let clock = Instant::now();
    let end = options
        .stop_after
        .map_or(config.steps, |s| s.min(config.steps));
    let mut diverged = false;
    for step in start..end {
        let taken = step + 1;
        let log = taken.is_multiple_of(config.log_every) || taken == config.steps;
        let lr = cosine_with_warmup(step, config.steps, config.warmup, config.lr, config.min_lr);
        let (inputs, targets) =
            data.stream
                .batch::<B>(config.seed, step, config.batch, config.seq_len, device);
        let out = model.forward(inputs);
        let ce = loss_fn.try_forward_3d_with_stats(out.logits.clone(), targets.clone())?;
        let stats = ce.stats.clone();
        let zero_loss = stats.zero_loss.clone().inner();
        let flat_targets = targets.inner().reshape([config.batch * config.seq_len]);
        tally.device = tally.device.clone().scatter(
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
        model = optim.step(lr, model, grads);
        if let Some(pending) = pending {
            let counts = std::mem::replace(&mut tally.device, Tensor::zeros([vocab], device));
            let mut row = pending.read(taken, lr, tokens_per_step, counts, &mut tally.host);
            row.wall_seconds = wall_before + clock.elapsed().as_secs_f64();
            if tally.first_collapse.is_none() && row.cumulative_zero_loss_tokens > 0 {
                tally.first_collapse =
                    Some((taken, top_tokens(&tally.host, &data.tokenizer, TOP_TOKENS)));
            }
            bar.set_message(format!(
                "loss {:.3}  zero-loss {:.2}%  mean logit {:.2}",
                row.loss,
                100.0 * row.zero_loss_fraction,
                row.mean_logit
            ));
            writer.write(&row)?;
            diverged = !row.loss.is_finite();
            rows.push(row);
            if diverged {
                bar.inc(1);
                break;
            }
        }
        bar.inc(1);
        if let Some(every) = options.checkpoint_every
            && (taken.is_multiple_of(every) || taken == config.steps)
        {
            // Fold the device counts in, so that the checkpoint holds every step's.
            let counts = std::mem::replace(&mut tally.device, Tensor::zeros([vocab], device));
            add_counts(&mut tally.host, counts);
            let state = LmCheckpointState {
                step: taken,
                metrics_rows: rows.len(),
                wall_seconds: wall_before + clock.elapsed().as_secs_f64(),
                config: config.clone(),
                counts: tally.host.clone(),
                first_collapse: tally.first_collapse.clone(),
            };
            checkpoint::save(&dir.checkpoint(), &model, &optim, &state)?;
        }
    }
    bar.finish_and_clear();
    add_counts(&mut tally.host, tally.device);
    let wall = wall_before + clock.elapsed().as_secs_f64();
    let steps_done = match (diverged, rows.last()) {
        (true, Some(last)) => last.step,
        _ => end,
    };
    let summary = summarize(
        config,
        data,
        model.num_params(),
        &rows,
        &tally.host,
        tally.first_collapse,
        steps_done,
        wall,
    );
    if end == config.steps || diverged {
        write_json(&dir.summary(), &summary)?;
        let path = dir.root().join(TOP_TOKENS_FILE);
        std::fs::write(
            &path,
            format_top_tokens(&summary.arm, &summary.top_collapsed_tokens),
        )
        .map_err(|e| ExperimentError::Write {
            path,
            reason: e.to_string(),
        })?;
    }
    Ok(LmRunResult { summary, rows })
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
