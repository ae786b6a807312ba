//! Launching burn-train's `Learner` for each arm, with slingshot's metrics registered, and
//! resuming from burn-train's last complete checkpoint.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use burn::backend::Autodiff;
use burn::data::dataloader::DataLoaderBuilder;
use burn::module::Module;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, Recorder};
use burn::tensor::backend::AutodiffBackend;
use burn_train::checkpoint::KeepLastNCheckpoints;
use burn_train::logger::FileMetricLogger;
use burn_train::metric::SerializedEntry;
use burn_train::metric::{AccuracyMetric, LossMetric, Metric, MetricMetadata, MetricName};
use burn_train::{Interrupter, Learner, SupervisedTraining};
use slingshot::optim::ProbedAdamConfig;
use slingshot_experiments::ExperimentError;
use slingshot_train::{
    AtomicFileRecorder, CollapseMetric, CollapseQuantity, CollapseWarning, EffectiveLrMetric,
    EffectiveLrQuantity, LearnerAdam, MetricLinesRenderer, NfiMetric, NfiQuantity, ProbeFeed,
    ProbeScope, ResumedMetricLogger,
};

use super::model::{CollapseMlp, PairBatcher, Repeated, split_pairs};
use super::{CollapseRunConfig, CpuBackend};

/// The checkpoint format: burn's named MessagePack at full precision, written atomically.
pub type CheckpointRecorder = AtomicFileRecorder<NamedMpkFileRecorder<FullPrecisionSettings>>;

/// The checkpoint files' extension.
pub const CHECKPOINT_EXTENSION: &str = "mpk";

/// A test hook: `ARM:ITERATION` stops that arm's training at that iteration of its first
/// launch, as a kill would, through burn-train's interrupter.
pub const TEST_INTERRUPT: &str = "SLINGSHOT_TEST_INTERRUPT";

/// The Learner's builder for this example's model and optimizer, with a constant
/// learning rate.
type Training<B> = SupervisedTraining<
    burn_train::LearningComponentsMarker<B, f64, CollapseMlp<B>, LearnerAdam<CollapseMlp<B>, B>>,
>;

/// How the arms run.
#[derive(Debug, Clone, Copy)]
pub struct LaunchOptions {
    /// Print a line of metric values at every this-many-th iteration of an epoch.
    pub log_every: usize,
    /// Print only the warnings.
    pub quiet: bool,
}

/// Trains `config`'s arm into `dir` with burn-train, from scratch or after its checkpoint
/// of epoch `start_after`; returns the wall time of this launch in seconds.
pub fn train_arm(
    config: &CollapseRunConfig,
    dir: &Path,
    start_after: Option<usize>,
    options: LaunchOptions,
) -> Result<f64, ExperimentError> {
    match config.backend {
        CpuBackend::Flex => {
            train_on::<Autodiff<burn_flex::Flex>>(config, dir, start_after, options)
        }
        CpuBackend::Ndarray => {
            train_on::<Autodiff<burn_ndarray::NdArray>>(config, dir, start_after, options)
        }
    }
}

fn train_on<B: AutodiffBackend>(
    config: &CollapseRunConfig,
    dir: &Path,
    start_after: Option<usize>,
    options: LaunchOptions,
) -> Result<f64, ExperimentError> {
    let device = B::Device::default();
    B::seed(&device, config.seed);
    let mut model = CollapseMlp::<B>::new(config.p, config.width, config.arm, &device);
    if let Some(k) = start_after {
        // A record restores the saved parameter ids too: the probe must name those.
        let path = dir.join("checkpoint").join(format!("model-{k}"));
        let record = CheckpointRecorder::default()
            .load(path.clone(), &device)
            .map_err(|e| ExperimentError::Resume {
                path,
                reason: e.to_string(),
            })?;
        model = model.load_record(record);
    }
    let feed = ProbeFeed::new();
    let adam = ProbedAdamConfig::new().with_epsilon(config.eps);
    let scope = ProbeScope::Param(model.classifier.weight.id);
    let optim = LearnerAdam::try_new(&adam, feed.clone(), scope, 1)
        .map_err(|e| ExperimentError::InvalidConfig(e.to_string()))?;
    let interrupter = Interrupter::new();
    let mut training = with_metrics::<B>(config, dir, feed)?
        .num_epochs(config.epochs)
        .renderer(renderer(config, start_after, options))
        .with_application_logger(None)
        .with_file_checkpointer(CheckpointRecorder::default())
        .with_checkpointing_strategy(KeepLastNCheckpoints::new(2))
        .with_metric_logger(ResumedMetricLogger::new(
            FileMetricLogger::new(dir),
            start_after.map_or(1, |k| k + 1),
        ))
        .with_interrupter(interrupter.clone());
    if let Some(at) = test_interrupt(dir, start_after) {
        training = training.metric_train(InterruptAt::new(at, interrupter.clone()));
    }
    if let Some(k) = start_after {
        training = training.checkpoint(k);
    }
    let started = Instant::now();
    training.launch(Learner::new(model, optim, config.lr));
    if let Some(reason) = interrupter.get_message() {
        return Err(ExperimentError::ArmFailed {
            arm: config.arm.label().into(),
            reason: format!("{reason}; continue with --resume"),
        });
    }
    Ok(started.elapsed().as_secs_f64())
}

/// The Learner's builder with its data and every metric: burn's loss and accuracy, the
/// collapse statistics and the warning, the NFI values, and Adam's effective LR.
fn with_metrics<B: AutodiffBackend>(
    config: &CollapseRunConfig,
    dir: &Path,
    feed: ProbeFeed,
) -> Result<Training<B>, ExperimentError> {
    let (train, valid) = split_pairs(config.p, config.train_fraction, config.seed);
    let batcher = PairBatcher { p: config.p };
    let train_loader = DataLoaderBuilder::new(batcher.clone())
        .batch_size(train.len())
        .build(Repeated {
            pairs: train,
            times: config.steps_per_epoch,
        });
    let valid_loader = DataLoaderBuilder::new(batcher)
        .batch_size(valid.len())
        .build(Repeated {
            pairs: valid,
            times: 1,
        });
    let warning = CollapseWarning::try_new(config.warning_threshold)
        .map_err(|e| ExperimentError::InvalidConfig(e.to_string()))?;
    let mut training = SupervisedTraining::new(dir, train_loader, valid_loader)
        .metric_train_numeric(LossMetric::new())
        .metric_valid_numeric(LossMetric::new())
        .metric_train_numeric(AccuracyMetric::new())
        .metric_valid_numeric(AccuracyMetric::new())
        .metric_train(warning);
    for q in CollapseQuantity::ALL {
        training = training
            .metric_train_numeric(CollapseMetric::new(q))
            .metric_valid_numeric(CollapseMetric::new(q));
    }
    for q in NfiQuantity::ALL {
        training = training.metric_train_numeric(NfiMetric::new(q));
    }
    for q in EffectiveLrQuantity::ALL {
        training = training.metric_train_numeric(EffectiveLrMetric::new(q, feed.clone()));
    }
    Ok(training)
}

fn renderer(
    config: &CollapseRunConfig,
    start_after: Option<usize>,
    options: LaunchOptions,
) -> MetricLinesRenderer {
    if options.quiet {
        return MetricLinesRenderer::warnings_only();
    }
    // A resumed launch trains only the epochs after its checkpoint.
    let epochs = config.epochs - start_after.unwrap_or(0).min(config.epochs);
    let total = (epochs * config.steps_per_epoch) as u64;
    MetricLinesRenderer::new(options.log_every).with_progress_bar(total, false)
}

/// The test hook's iteration for the arm in `dir`, on its first launch only.
fn test_interrupt(dir: &Path, start_after: Option<usize>) -> Option<usize> {
    let hook = std::env::var(TEST_INTERRUPT).ok()?;
    let (label, at) = hook.split_once(':')?;
    let this = dir.file_name()?.to_str()?;
    (this == label && start_after.is_none())
        .then(|| at.parse().ok())
        .flatten()
}

/// Stops training at the `at`-th batch (see [`TEST_INTERRUPT`]).
#[derive(Clone)]
struct InterruptAt {
    at: usize,
    seen: usize,
    interrupter: Interrupter,
    name: MetricName,
}

impl InterruptAt {
    fn new(at: usize, interrupter: Interrupter) -> Self {
        Self {
            at,
            seen: 0,
            interrupter,
            name: Arc::new("Test Interrupt".into()),
        }
    }
}

impl Metric for InterruptAt {
    type Input = ();

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn update(&mut self, _: &(), _: &MetricMetadata) -> SerializedEntry {
        self.seen += 1;
        if self.seen == self.at {
            self.interrupter.stop(Some(&format!(
                "stopped at iteration {} (test hook)",
                self.at
            )));
        }
        SerializedEntry::new(String::new(), self.seen.to_string())
    }

    fn clear(&mut self) {}
}
