//! The training loop: Adam (probed) on the modular task, with the loss, diagnostics, spike
//! detection, outputs, progress bar and checkpoints.

use std::path::Path;

use burn::backend::Autodiff;
use burn::module::{AutodiffModule, Module, ModuleVisitor, Param};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{GradientsAccumulator, GradientsParams, Optimizer, Sgd, SgdConfig};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{DType, ElementConversion, Int, Tensor, Transaction};
use burn_flex::Flex;
use burn_ndarray::NdArray;
use serde::{Deserialize, Serialize};
use slingshot_loss::{CollapseAwareCrossEntropy, CollapseAwareCrossEntropyConfig};
use slingshot_nn::NfiDiagnostics;
use slingshot_optim::{
    NfiObservation, ProbedAdam, ProbedAdamConfig, SpikeDetector, SwitchOptimizer,
};

use crate::batches::TaskTensors;
use crate::config::{BackendKind, Precision, TaskConfig, TrainConfig};
use crate::data::ModularTask;
use crate::error::ExperimentError;
use crate::margins::MarginHistogram;
use crate::metrics::{CollapseMargins, MetricsRow, Summary, UPDATES_FILE, UpdatesWriter};
use crate::model::{InputSpec, Inputs, Model};
use crate::output::RunDir;
use crate::run::{RunOptions, Training, checkpoint, train_loop};
use crate::sharpness::{
    Start, adam_inverse_preconditioner, top_hessian_eigenvalue, top_preconditioned_eigenvalue,
};

/// Adam (probed) until §4.2's switch, plain gradient descent after it.
type Optim<B> = SwitchOptimizer<
    ProbedAdam<Model<B>, B>,
    OptimizerAdaptor<Sgd<<B as AutodiffBackend>::InnerBackend>, Model<B>, B>,
>;

/// Power iterations per sharpness estimate (Fig. 5). Each estimate starts from the previous
/// one's eigenvector, so the iterations accumulate while the top eigenvector moves slowly.
const SHARPNESS_ITERATIONS: usize = 20;

/// Touches every float parameter, which makes burn draw the lazily initialized ones.
pub(crate) struct Materialize;

impl<B: Backend> ModuleVisitor<B> for Materialize {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let _ = param.val();
    }
}

/// Serializes seeding and initialization across threads.
pub(crate) static INIT_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// What a finished run returns.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// `summary.json`'s contents.
    pub summary: Summary,
    /// Every logged row.
    pub rows: Vec<MetricsRow>,
}

/// Validates `config`, then trains on the backend and precision it names, writing
/// `config.json`, `metrics.csv` and `summary.json` into `dir`.
pub fn run(
    config: &TrainConfig,
    dir: &RunDir,
    options: &RunOptions,
) -> Result<RunResult, ExperimentError> {
    config.validate()?;
    if options.resume && options.record_updates.is_some() {
        return Err(ExperimentError::InvalidConfig(
            "recording classifier updates cannot be combined with --resume".into(),
        ));
    }
    match (config.backend, config.precision) {
        (BackendKind::Ndarray, Precision::F64) => {
            run_on::<Autodiff<NdArray<f64>>>(config, dir, options)
        }
        // The 16-bit models are refused off flex by `validate`.
        (BackendKind::Ndarray, _) => run_on::<Autodiff<NdArray<f32>>>(config, dir, options),
        #[cfg(feature = "cuda")]
        (BackendKind::Cuda, Precision::F64) => {
            run_on::<Autodiff<burn_cuda::Cuda<f64, i32>>>(config, dir, options)
        }
        #[cfg(feature = "cuda")]
        (BackendKind::Cuda, _) => {
            run_on::<Autodiff<burn_cuda::Cuda<f32, i32>>>(config, dir, options)
        }
        #[cfg(not(feature = "cuda"))]
        (BackendKind::Cuda, _) => unreachable!("validate() refuses cuda without the feature"),
        // burn-flex implements `Backend` for f32 only: the f64 arm is the same type with f64
        // as the device's default float dtype (`claim_float_dtype`).
        (BackendKind::Flex, _) => run_on::<Autodiff<Flex>>(config, dir, options),
        #[cfg(feature = "wgpu")]
        (BackendKind::Wgpu, _) => {
            run_on::<Autodiff<burn_wgpu::Wgpu<f32, i32>>>(config, dir, options)
        }
        #[cfg(not(feature = "wgpu"))]
        (BackendKind::Wgpu, _) => unreachable!("validate() refuses wgpu without the feature"),
    }
}

fn run_on<B: AutodiffBackend>(
    config: &TrainConfig,
    dir: &RunDir,
    options: &RunOptions,
) -> Result<RunResult, ExperimentError> {
    let mut task = ModularTraining::<B>::try_new(config, dir, options, &Default::default())?;
    let trained = train_loop(&mut task, dir, options)?;
    Ok(RunResult {
        summary: trained.summary,
        rows: trained.rows,
    })
}

/// Adam's learning rate at 0-based `step`: linear warm-up over `warmup` steps.
pub fn learning_rate(config: &TrainConfig, step: u64) -> f64 {
    if config.warmup == 0 {
        config.lr
    } else {
        config.lr * ((step + 1) as f64 / config.warmup as f64).min(1.0)
    }
}

/// The losses of a run: with statistics for logged steps, without otherwise, and for
/// evaluation on the inner backend, and the unprojected loss whose Hessian is measured.
struct Losses<B: AutodiffBackend> {
    train: CollapseAwareCrossEntropy<B>,
    eval: CollapseAwareCrossEntropy<B::InnerBackend>,
    hessian: CollapseAwareCrossEntropy<B>,
}

impl<B: AutodiffBackend> Losses<B> {
    fn new(config: &TrainConfig, device: &B::Device) -> Result<Self, ExperimentError> {
        let precision = config.precision.loss_precision();
        let base = config
            .mitigations
            .loss(CollapseAwareCrossEntropyConfig::new().with_precision(precision));
        Ok(Self {
            train: base.clone().try_init(device)?,
            hessian: base
                .clone()
                .with_zero_sum_projection(false)
                .try_init(device)?,
            eval: base.with_zero_sum_projection(false).try_init(device)?,
        })
    }
}

/// What the modular and image task keeps in a checkpoint besides the model and optimizer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ModularState {
    /// The last sharpness estimate's eigenvector, where the next estimate starts.
    #[serde(default)]
    pub sharpness_vector: Option<Vec<f64>>,
    /// The same for the preconditioned sharpness.
    #[serde(default)]
    pub preconditioned_vector: Option<Vec<f64>>,
    /// The logged rows so far, binned by margin (empty in checkpoints from before it).
    #[serde(default)]
    pub margins: MarginHistogram,
}

/// The modular-arithmetic and image task, as the run layer trains it. Public so that the
/// benches time the harness's own step ([`Training::step`]), logged and not.
pub struct ModularTraining<B: AutodiffBackend> {
    config: TrainConfig,
    dir: RunDir,
    data: TaskTensors<B>,
    /// `None` only inside a step, while the optimizer owns it.
    model: Option<Model<B>>,
    optim: Optim<B>,
    losses: Losses<B>,
    detector: SpikeDetector,
    record_updates: Option<std::ops::RangeInclusive<u64>>,
    updates: Option<UpdatesWriter>,
    sharpness_vector: Option<Vec<f64>>,
    preconditioned_vector: Option<Vec<f64>>,
    margins: MarginHistogram,
    device: B::Device,
}

impl<B: AutodiffBackend> ModularTraining<B> {
    /// The task of `config` on `device`, writing into `dir` only what `options` asks for
    /// (the recorded updates); `config` must be valid ([`TrainConfig::validate`]).
    pub fn try_new(
        config: &TrainConfig,
        dir: &RunDir,
        options: &RunOptions,
        device: &B::Device,
    ) -> Result<Self, ExperimentError> {
        let float = config
            .precision
            .model_dtype()
            .unwrap_or(<B::FloatElem as burn::tensor::Element>::dtype());
        claim_float_dtype::<B::InnerBackend>(device, float)?;
        let (data, input, classes) = task_data::<B>(config, device)?;
        let model: Model<B> = init_model(&config.model, input, classes, config.seed, device);
        let adam = ProbedAdamConfig::new()
            .with_beta_1(config.beta1 as f32)
            .with_beta_2(config.beta2 as f32)
            .with_epsilon(config.eps as f32)
            .with_weight_decay(config.weight_decay as f32)
            .try_init()?;
        Ok(Self {
            config: config.clone(),
            dir: dir.clone(),
            data,
            model: Some(model),
            optim: SwitchOptimizer::new(adam, SgdConfig::new().init()),
            losses: Losses::<B>::new(config, device)?,
            detector: SpikeDetector::try_new(config.spikes)?,
            record_updates: options.record_updates.clone(),
            updates: None,
            sharpness_vector: None,
            preconditioned_vector: None,
            margins: MarginHistogram::default(),
            device: device.clone(),
        })
    }

    fn model(&self) -> &Model<B> {
        self.model
            .as_ref()
            .expect("the model is back after every step")
    }

    /// The logged step's row: measurements, the recorded update, and the sharpness.
    fn logged_row(
        &mut self,
        taken: u64,
        before: PreStep<B::InnerBackend>,
    ) -> Result<MetricsRow, ExperimentError> {
        if let Some(range) = &self.record_updates
            && range.contains(&taken)
        {
            let after = self.model().classifier().weight.val().inner();
            let delta = after - before.weight.clone();
            if self.updates.is_none() {
                self.updates = Some(UpdatesWriter::create(&self.dir.root().join(UPDATES_FILE))?);
            }
            self.updates
                .as_mut()
                .expect("created above")
                .write(taken, delta)?;
        }
        // After the switch the probe would repeat Adam's last step: leave it unread.
        let model = self
            .model
            .as_ref()
            .expect("the model is back after every step");
        let probe = (!self.optim.is_switched()).then(|| self.optim.first_mut());
        let (mut row, rows) = measure(
            taken,
            before,
            model,
            probe,
            &self.data,
            &self.losses,
            &self.config,
        )?;
        if self
            .config
            .sharpness_every
            .is_some_and(|every| taken.is_multiple_of(every))
        {
            row.sharpness = Some(self.sharpness(false));
            // Adam's preconditioner is stale once gradient descent has taken over.
            if !self.optim.is_switched() {
                row.preconditioned_sharpness = Some(self.sharpness(true));
            }
        }
        self.margins.observe(taken, &rows.margins, &rows.collapsed);
        observe(&mut self.detector, &row);
        Ok(row)
    }

    /// The largest eigenvalue of the training loss's Hessian, or of Adam's preconditioned
    /// Hessian `P^-1 H` (`preconditioned`), continuing that quantity's last estimate.
    fn sharpness(&mut self, preconditioned: bool) -> f64 {
        let config = &self.config;
        let (inputs, labels) = (
            self.data.train.inputs.clone(),
            self.data.train.labels.clone(),
        );
        let hessian = &self.losses.hessian;
        let loss = |m: &Model<B>| {
            let logits = config.logits(m.forward(inputs.clone()).logits);
            hessian
                .try_forward(logits, labels.clone())
                .expect("the harness's own labels are valid")
        };
        let model = self
            .model
            .as_ref()
            .expect("the model is back after every step");
        let last = if preconditioned {
            &self.preconditioned_vector
        } else {
            &self.sharpness_vector
        };
        let start = match last {
            Some(v) => Start::Vector(v, config.seed),
            None => Start::Seed(config.seed),
        };
        let estimate = if preconditioned {
            let record = burn::optim::Optimizer::to_record(self.optim.first_mut());
            let inverse = adam_inverse_preconditioner(&record, config.beta2, config.eps);
            top_preconditioned_eigenvalue(model, loss, &inverse, SHARPNESS_ITERATIONS, None, start)
        } else {
            top_hessian_eigenvalue(model, loss, SHARPNESS_ITERATIONS, None, start)
        };
        let eigenvalue = estimate.eigenvalue;
        if preconditioned {
            self.preconditioned_vector = Some(estimate.vector);
        } else {
            self.sharpness_vector = Some(estimate.vector);
        }
        eigenvalue
    }
}

/// The split tensors of `config`'s task, what the network reads, and the classes.
fn task_data<B: AutodiffBackend>(
    config: &TrainConfig,
    device: &B::Device,
) -> Result<(TaskTensors<B>, InputSpec, usize), ExperimentError> {
    Ok(match &config.task {
        TaskConfig::Modular(m) => {
            let task = ModularTask::try_new(m.p, m.op, m.train_fraction, config.seed)?;
            let input = InputSpec::Tokens {
                vocab: task.vocab(),
            };
            let tensors = TaskTensors::<B>::new(&task, config.model.kind(), device);
            (tensors, input, task.classes())
        }
        TaskConfig::Images(images) => {
            let dataset = crate::cifar::load(images, config.seed)?;
            let tensors = TaskTensors::<B>::images(&dataset, device);
            (tensors, InputSpec::Images, crate::cifar::CLASSES)
        }
    })
}

impl<B: AutodiffBackend> Training for ModularTraining<B> {
    type Config = TrainConfig;
    type Row = MetricsRow;
    type State = ModularState;
    type Summary = Summary;

    fn config(&self) -> &TrainConfig {
        &self.config
    }

    fn total_steps(&self) -> u64 {
        self.config.steps
    }

    fn label(&self) -> String {
        self.config.arm.clone()
    }

    fn is_logged(&self, taken: u64) -> bool {
        taken.is_multiple_of(self.config.log_every)
            || taken == self.config.steps
            || self
                .record_updates
                .as_ref()
                .is_some_and(|r| r.contains(&taken))
    }

    fn step(&mut self, step: u64, log: bool) -> Result<Option<MetricsRow>, ExperimentError> {
        if self.updates.is_none() && self.record_updates.is_some() {
            // Created with the run, so that it exists even if no recorded step is reached.
            let path = self.dir.root().join(UPDATES_FILE);
            self.updates = Some(UpdatesWriter::create(&path)?);
        }
        let config = &self.config;
        let (inputs, labels) = self.data.batch(config.batch, config.seed, step);
        let model = self
            .model
            .take()
            .expect("the model is back after every step");
        let (grads, before) =
            batch_gradients(&model, inputs, labels, &self.losses.train, config, log)?;
        let grads = config.mitigations.gradients(&model, grads);
        let lr = match config.mitigations.gd_switch() {
            Some(gd) if self.optim.is_switched() => gd.lr,
            _ => learning_rate(config, step),
        };
        let model = self.optim.step(lr, model, grads);
        self.model = Some(config.mitigations.after_step(model));
        let Some(before) = before else {
            return Ok(None);
        };
        let row = self.logged_row(step + 1, before)?;
        // `summarize` finds the same step from the rows (`switch_step`).
        if let Some(gd) = self.config.mitigations.gd_switch()
            && !self.optim.is_switched()
            && row.loss <= gd.loss_at_most
            && !is_diverged(&row)
        {
            self.optim.switch();
        }
        Ok(Some(row))
    }

    fn row_step(row: &MetricsRow) -> u64 {
        row.step
    }

    fn set_wall_seconds(row: &mut MetricsRow, seconds: f64) {
        row.wall_seconds = seconds;
    }

    fn diverged(row: &MetricsRow) -> bool {
        // Nothing after a non-finite loss or classifier is informative (§4.2's divergence).
        is_diverged(row)
    }

    fn message(row: &MetricsRow) -> String {
        format!(
            "loss {:.3e}  collapsed {:.1}%  |mu_G| {:.2e}",
            row.loss,
            100.0 * row.collapsed_fraction,
            row.mu_g_norm
        )
    }

    fn save_parts(&self, dir: &Path) -> Result<(), ExperimentError> {
        checkpoint::save_model(dir, self.model(), &self.optim)
    }

    fn load_parts(&mut self, dir: &Path) -> Result<(), ExperimentError> {
        let model = self
            .model
            .take()
            .expect("the model is back after every step");
        let optim = std::mem::replace(
            &mut self.optim,
            SwitchOptimizer::new(ProbedAdamConfig::new().try_init()?, SgdConfig::new().init()),
        );
        let (model, optim) = checkpoint::load_model(dir, model, optim, &self.device)?;
        self.model = Some(model);
        self.optim = optim;
        Ok(())
    }

    fn state(&mut self) -> ModularState {
        ModularState {
            sharpness_vector: self.sharpness_vector.clone(),
            preconditioned_vector: self.preconditioned_vector.clone(),
            margins: self.margins.clone(),
        }
    }

    fn restore(&mut self, state: ModularState, rows: &[MetricsRow]) -> Result<(), ExperimentError> {
        for row in rows {
            observe(&mut self.detector, row);
        }
        self.sharpness_vector = state.sharpness_vector;
        self.preconditioned_vector = state.preconditioned_vector;
        self.margins = state.margins;
        Ok(())
    }

    fn summary(&mut self, rows: &[MetricsRow], steps: u64, wall_seconds: f64) -> Summary {
        let mut summary = summarize(&self.config, rows, &self.detector, steps, wall_seconds);
        summary.collapse_margins = Some(CollapseMargins::of(&self.margins));
        summary
    }

    fn write_outputs(&self, dir: &RunDir, summary: &Summary) -> Result<(), ExperimentError> {
        self.margins.write_csv(&dir.root().join(MARGINS_FILE))?;
        summary.write(&dir.summary())
    }
}

/// The per-row collapse record every modular and image run writes beside `metrics.csv`.
pub const MARGINS_FILE: &str = "margins.csv";

/// Feeds a logged row to the spike detector: its loss, and its norms for NFI events.
fn observe(detector: &mut SpikeDetector, row: &MetricsRow) {
    detector.observe_loss(row.step, row.loss);
    let nfi = NfiObservation {
        mu_g_norm: row.mu_g_norm,
        w_g_norm: row.w_g_norm,
        collapsed_fraction: row.collapsed_fraction,
    };
    detector.observe_nfi(row.step, nfi);
}

/// The model `run` trains: `config`'s network for `input` and `classes`, its parameters drawn
/// from burn's generator seeded with `seed`. burn's generator is global: the seeding and every
/// draw happen under one lock, so that models made on other threads (by this function or by
/// `run`) cannot interleave their draws with these, and the same seed gives the same model.
pub fn init_model<B: Backend>(
    config: &crate::model::ModelConfig,
    input: InputSpec,
    classes: usize,
    seed: u64,
    device: &B::Device,
) -> Model<B> {
    let _guard = INIT_RNG
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    B::seed(device, seed);
    let model = config.init_for(input, classes, device);
    // burn draws parameters lazily, at first use: draw them all now, under the lock.
    model.visit(&mut Materialize);
    model
}

/// burn 0.21 fixes one default float dtype per device and process, at the first tensor made
/// there, and layers create their parameters in it: after an f32 run, an "f64" model on the
/// same device would silently be f32. Claim the dtype, and refuse if another run already
/// claimed a different one (the binaries run each precision in its own process).
pub(crate) fn claim_float_dtype<B: Backend>(
    device: &B::Device,
    want: DType,
) -> Result<(), ExperimentError> {
    let int = <B::IntElem as burn::tensor::Element>::dtype();
    // Fails harmlessly when the device is already initialized; the check below decides.
    let _ = burn::tensor::set_default_dtypes::<B>(device, want, int);
    let have: DType = burn::tensor::get_device_settings::<B>(device)
        .float_dtype
        .into();
    if have == want {
        Ok(())
    } else {
        Err(ExperimentError::InvalidConfig(format!(
            "this process already made {have:?} tensors on this device, and burn 0.21 keeps one default float dtype per device and process: run the {want:?} arm in a separate process"
        )))
    }
}

/// One chunk of a batch: its rows, and its share of the batch (`None`: the whole batch).
struct Chunk<B: Backend> {
    inputs: Inputs<B>,
    labels: Tensor<B, 1, Int>,
    rows: usize,
    share: Option<f64>,
}

impl<B: Backend> Chunk<B> {
    /// The chunk's mean `loss` weighted by its share, so that the chunks sum to the batch mean.
    fn weigh(&self, loss: Tensor<B, 1>) -> Tensor<B, 1> {
        match self.share {
            Some(share) => loss.mul_scalar(share),
            None => loss,
        }
    }
}

/// The chunks of at most `config.grad_chunk` rows a batch goes through the network in (one
/// chunk, the batch itself, without it).
fn chunks<B: Backend>(
    config: &TrainConfig,
    inputs: &Inputs<B>,
    labels: &Tensor<B, 1, Int>,
) -> Vec<Chunk<B>> {
    let n = labels.dims()[0];
    let size = config.grad_chunk.unwrap_or(n).clamp(1, n.max(1));
    if size >= n {
        return vec![Chunk {
            inputs: inputs.clone(),
            labels: labels.clone(),
            rows: n,
            share: None,
        }];
    }
    (0..n)
        .step_by(size)
        .map(|start| {
            let range = start..(start + size).min(n);
            Chunk {
                inputs: inputs.rows_in(range.clone()),
                labels: labels.clone().narrow(0, start, range.len()),
                rows: range.len(),
                share: Some(range.len() as f64 / n as f64),
            }
        })
        .collect()
}

/// A step's gradients, and on logged steps what `measure` needs.
type StepGradients<B> = (
    GradientsParams,
    Option<PreStep<<B as AutodiffBackend>::InnerBackend>>,
);

/// One step's gradient of the batch's mean loss, and on logged steps what `measure` needs.
/// In chunks (`config.grad_chunk`), each chunk's mean loss is weighted by its share of the
/// batch and the gradients accumulate, so the step equals the unchunked one up to summation
/// order (tested in `tests/image_harness.rs`).
fn batch_gradients<B>(
    model: &Model<B>,
    inputs: Inputs<B>,
    labels: Tensor<B, 1, Int>,
    loss_fn: &CollapseAwareCrossEntropy<B>,
    config: &TrainConfig,
    log: bool,
) -> Result<StepGradients<B>, ExperimentError>
where
    B: AutodiffBackend,
{
    let chunks = chunks(config, &inputs, &labels);
    let whole = chunks.len() == 1;
    let mut accumulator = GradientsAccumulator::<Model<B>>::new();
    let mut single = None;
    let mut parts = Vec::new();
    for (i, chunk) in chunks.into_iter().enumerate() {
        let mut out = model.forward(chunk.inputs.clone());
        out.logits = config.logits(out.logits);
        // Statistics only on logged steps: the loss alone otherwise.
        let (ce_loss, stats) = if log {
            let ce = loss_fn.try_forward_with_stats(out.logits.clone(), chunk.labels.clone())?;
            (ce.loss, Some(ce.stats))
        } else {
            let loss = loss_fn.try_forward(out.logits.clone(), chunk.labels.clone())?;
            (loss, None)
        };
        let weighted = chunk.weigh(ce_loss);
        let mut loss = weighted.clone();
        if i == 0 {
            loss = config.mitigations.add_loss_terms(model, loss);
        }
        let grads = GradientsParams::from_grads(loss.backward(), model);
        if let Some(stats) = stats {
            // Kept on the device: `measure` reads them in its one transaction.
            parts.push(LoggedChunk {
                loss: weighted.inner(),
                batch: (stats.batch.inner(), chunk.rows),
                margins: stats.margin.inner(),
                collapsed: stats.collapsed.int().inner(),
                features: out.features.inner(),
                logits: out.logits.inner(),
            });
        }
        if whole {
            single = Some(grads);
        } else {
            accumulator.accumulate(model, grads);
        }
    }
    let grads = single.unwrap_or_else(|| accumulator.grads());
    if !log {
        return Ok((grads, None));
    }
    // The logged diagnostics describe the batch the step was computed on.
    let cat = |f: fn(&LoggedChunk<B::InnerBackend>) -> Tensor<B::InnerBackend, 1>| {
        Tensor::cat(parts.iter().map(f).collect(), 0)
    };
    let pre = PreStep {
        loss: cat(|c| c.loss.clone()).sum(),
        margins: cat(|c| c.margins.clone()),
        collapsed: Tensor::cat(parts.iter().map(|c| c.collapsed.clone()).collect(), 0),
        features: Tensor::cat(parts.iter().map(|c| c.features.clone()).collect(), 0),
        logits: Tensor::cat(parts.iter().map(|c| c.logits.clone()).collect(), 0),
        batch: parts.into_iter().map(|c| c.batch).collect(),
        labels: labels.inner(),
        weight: model.classifier().weight.val().inner(),
        bias: model.classifier().bias.as_ref().map(|b| b.val().inner()),
    };
    Ok((grads, Some(pre)))
}

/// One logged chunk's tensors, still on the device.
struct LoggedChunk<B: Backend> {
    loss: Tensor<B, 1>,
    /// [`slingshot_loss::CollapseStats::batch`] and the chunk's row count.
    batch: (Tensor<B, 1>, usize),
    margins: Tensor<B, 1>,
    collapsed: Tensor<B, 1, Int>,
    features: Tensor<B, 2>,
    logits: Tensor<B, 2>,
}

/// What a logged step's measurements need from before the optimizer step.
struct PreStep<B: Backend> {
    loss: Tensor<B, 1>,
    /// Each chunk's collapse statistics ([`slingshot_loss::CollapseStats::batch`]) and rows.
    batch: Vec<(Tensor<B, 1>, usize)>,
    /// Every row's margin and collapse flag (1: collapsed), for [`MarginHistogram`].
    margins: Tensor<B, 1>,
    collapsed: Tensor<B, 1, Int>,
    features: Tensor<B, 2>,
    logits: Tensor<B, 2>,
    labels: Tensor<B, 1, Int>,
    weight: Tensor<B, 2>,
    bias: Option<Tensor<B, 1>>,
}

/// Per-row margins and collapse flags of a logged batch, on the host.
#[derive(Debug, Clone, Default)]
struct RowCollapse {
    margins: Vec<f64>,
    collapsed: Vec<bool>,
}

/// Reads one step's measurements back: the batch's loss, collapse statistics and NFI
/// diagnostics (before the step), Adam's probe (of the step), and accuracies (after it).
fn measure<B>(
    step: u64,
    before: PreStep<B::InnerBackend>,
    model: &Model<B>,
    probe: Option<&mut ProbedAdam<Model<B>, B>>,
    data: &TaskTensors<B>,
    losses: &Losses<B>,
    config: &TrainConfig,
) -> Result<(MetricsRow, RowCollapse), ExperimentError>
where
    B: AutodiffBackend,
{
    let (read, nfi) = measure_before(before)?;
    let collapse = read.collapse;
    let scalar = |i: usize| read.scalars[i];
    // A centered head outputs `h (W - W_G)`, not the stored `W`'s logits, which the NFI
    // diagnostics describe: report the logits the loss saw.
    let (mean_logit, max_logit) = if config.model.head.centered {
        (collapse.mean_logit, scalar(2))
    } else {
        (nfi.mean_logit, nfi.max_logit)
    };

    let eval = model.valid();
    // The row has no training loss after the step: only the accuracy is computed there.
    let (_, train_acc) = evaluate(&eval, &data_inner(data, true), None, config)?;
    let (test_loss, test_acc) =
        evaluate(&eval, &data_inner(data, false), Some(&losses.eval), config)?;

    let weight_id = model.classifier().weight.id;
    // The row logs the classifier's statistics and whole-model scalars: read only those.
    let report = probe
        .and_then(|optim| optim.take_probe())
        .map(|p| p.read_params(&[weight_id]));
    let classifier = report.as_ref().and_then(|r| r.param(weight_id).cloned());
    let row = MetricsRow {
        step,
        loss: scalar(0),
        train_acc,
        test_loss,
        test_acc,
        collapsed_fraction: collapse.collapsed_fraction,
        zero_loss_fraction: collapse.zero_loss_fraction,
        mean_residual_mass: collapse.mean_residual_mass,
        min_margin: collapse.min_margin,
        mean_logit,
        max_logit,
        mean_correct_logit: scalar(1),
        w_g_norm: nfi.w_g_norm,
        mu_g_norm: nfi.mu_g_norm,
        cos_wg_mug: nfi.cos_wg_mug,
        last_layer_norm: nfi.weight_norm,
        eff_lr_median: classifier.as_ref().map(|c| c.effective_lr.median),
        eff_lr_max: classifier.as_ref().map(|c| c.effective_lr.max),
        eff_lr_ceiling_fraction: classifier
            .as_ref()
            .map(|c| c.effective_lr.near_ceiling_fraction),
        update_mean: classifier.as_ref().map(|c| c.update.mean),
        update_ratio: report.as_ref().and_then(|r| r.max_update_ratio),
        grad_norm: report.as_ref().map(|r| r.grad_norm),
        classifier_grad_norm: classifier.as_ref().map(|c| c.grad_norm),
        sharpness: None,
        preconditioned_sharpness: None,
        wall_seconds: 0.0,
    };
    Ok((row, read.rows))
}

/// The batch's values from before the step: the loss, the mean correct-class logit and the
/// largest logit (`scalars`), the collapse statistics and rows, and the NFI diagnostics.
fn measure_before<B: Backend>(
    before: PreStep<B>,
) -> Result<(LoggedValues, slingshot_nn::NfiSummary), ExperimentError> {
    let [n, _] = before.logits.dims();
    let correct = before
        .logits
        .clone()
        .gather(1, before.labels.clone().reshape([n, 1]))
        .mean();
    let read = read_logged(
        [before.loss, correct, before.logits.max()],
        before.margins,
        before.collapsed,
        before.batch,
    );
    let nfi = NfiDiagnostics::try_new_inflation(
        before.weight,
        before.bias,
        before.features,
        before.labels,
    )?
    .summary();
    Ok((read, nfi))
}

/// A logged batch's values on the host, from one device read.
struct LoggedValues {
    scalars: Vec<f64>,
    collapse: slingshot_loss::CollapseSummary,
    rows: RowCollapse,
}

/// Reads `scalars` (one-element tensors), the per-row margins and collapse flags, and each
/// chunk's collapse statistics in one transaction, and merges the chunks' statistics.
fn read_logged<B: Backend, const S: usize>(
    scalars: [Tensor<B, 1>; S],
    margins: Tensor<B, 1>,
    collapsed: Tensor<B, 1, Int>,
    chunks: Vec<(Tensor<B, 1>, usize)>,
) -> LoggedValues {
    let mut read = Transaction::default().register(margins).register(collapsed);
    for s in scalars {
        read = read.register(s);
    }
    let rows: Vec<usize> = chunks.iter().map(|&(_, n)| n).collect();
    for (batch, _) in chunks {
        read = read.register(batch);
    }
    let data = read.execute();
    let parts: Vec<_> = data[2 + S..]
        .iter()
        .zip(rows)
        .map(|(d, n)| {
            let v: Vec<f64> = d.iter::<f64>().collect();
            let v: [f64; 8] = v.try_into().expect("8 batch statistics per chunk");
            (slingshot_loss::CollapseSummary::from_batch_values(&v), n)
        })
        .collect();
    LoggedValues {
        scalars: data[2..2 + S]
            .iter()
            .map(|d| d.iter::<f64>().next().unwrap_or(f64::NAN))
            .collect(),
        collapse: slingshot_loss::CollapseSummary::merge(&parts),
        rows: RowCollapse {
            margins: data[0].iter::<f64>().collect(),
            collapsed: data[1].iter::<i64>().map(|v| v != 0).collect(),
        },
    }
}

/// A split on the inner backend.
fn data_inner<B: AutodiffBackend>(
    data: &TaskTensors<B>,
    train: bool,
) -> (Inputs<B::InnerBackend>, Tensor<B::InnerBackend, 1, Int>) {
    let split = if train { &data.train } else { &data.test };
    let inputs = match &split.inputs {
        Inputs::OneHot(x) => Inputs::OneHot(x.clone().inner()),
        Inputs::Tokens(t) => Inputs::Tokens(t.clone().inner()),
        Inputs::Images(x) => Inputs::Images(x.clone().inner()),
    };
    (inputs, split.labels.clone().inner())
}

/// Loss (NaN without `loss`) and accuracy of `model` on one split, read back together; in
/// chunks of `config.grad_chunk` rows, so that evaluating 50,000 images fits where training
/// does.
fn evaluate<B: Backend>(
    model: &Model<B>,
    (inputs, labels): &(Inputs<B>, Tensor<B, 1, Int>),
    loss: Option<&CollapseAwareCrossEntropy<B>>,
    config: &TrainConfig,
) -> Result<(f64, f64), ExperimentError> {
    let n = labels.dims()[0];
    let mut values = Vec::new();
    let mut counts = Vec::new();
    for chunk in chunks(config, inputs, labels) {
        let logits = config.logits(model.forward(chunk.inputs.clone()).logits);
        counts.push(
            logits
                .clone()
                .argmax(1)
                .reshape([chunk.rows])
                .equal(chunk.labels.clone())
                .int()
                .sum(),
        );
        if let Some(loss) = loss {
            values.push(chunk.weigh(loss.try_forward(logits, chunk.labels.clone())?));
        }
    }
    let mut read = Transaction::default().register(Tensor::cat(counts, 0).sum());
    if !values.is_empty() {
        read = read.register(Tensor::cat(values, 0).sum());
    }
    let data = read.execute();
    let correct: i64 = data[0].iter::<i64>().next().unwrap_or(0).elem();
    let value = data
        .get(1)
        .and_then(|d| d.iter::<f64>().next())
        .unwrap_or(f64::NAN);
    Ok((value, correct as f64 / n as f64))
}

/// `summary.json` from the logged rows.
pub fn summarize(
    config: &TrainConfig,
    rows: &[MetricsRow],
    detector: &SpikeDetector,
    steps: u64,
    wall_seconds: f64,
) -> Summary {
    let spikes = detector.loss_spike_steps();
    let last = rows.last();
    let max = |f: fn(&MetricsRow) -> f64| rows.iter().map(f).fold(0.0, f64::max);
    let update_ratios: Vec<f64> = rows.iter().filter_map(|r| r.update_ratio).collect();
    Summary {
        experiment: config.experiment.clone(),
        arm: config.arm.clone(),
        model: config.model.kind().name().into(),
        dataset: config.images().map(|i| i.dataset_name().into()),
        backend: config.backend.to_string(),
        precision: config.precision.to_string(),
        steps,
        n_spikes: spikes.len(),
        spikes,
        nfi_events: detector.nfi_event_steps(),
        first_sc_step: rows
            .iter()
            .find(|r| r.collapsed_fraction >= 0.5)
            .map(|r| r.step),
        max_collapsed_fraction: max(|r| r.collapsed_fraction),
        max_mu_g_norm: max(|r| r.mu_g_norm),
        final_cos_wg_mug: last.map_or(f64::NAN, |r| r.cos_wg_mug),
        final_train_acc: last.map_or(f64::NAN, |r| r.train_acc),
        final_test_acc: last.map_or(f64::NAN, |r| r.test_acc),
        max_update_ratio: (!update_ratios.is_empty())
            .then(|| update_ratios.iter().copied().fold(0.0, f64::max)),
        wall_seconds,
        steps_per_second: if wall_seconds > 0.0 {
            steps as f64 / wall_seconds
        } else {
            0.0
        },
        switched_to_gd_at: switch_step(config, rows),
        diverged_at: rows.iter().find(|r| is_diverged(r)).map(|r| r.step),
        collapse_margins: None,
    }
}

/// A logged step whose loss or classifier weight is not finite: the run stops there.
fn is_diverged(row: &MetricsRow) -> bool {
    !(row.loss.is_finite() && row.last_layer_norm.is_finite())
}

/// The logged step after which the run switched to gradient descent: the first whose loss is at
/// most the threshold (the rule the loop applies).
fn switch_step(config: &TrainConfig, rows: &[MetricsRow]) -> Option<u64> {
    let gd = config.mitigations.gd_switch()?;
    rows.iter()
        .find(|r| r.loss <= gd.loss_at_most)
        .map(|r| r.step)
}
