//! The configuration of one training run, as written to `config.json` and checked on resume.

pub mod memory;

use std::fmt;
use std::str::FromStr;

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};
use slingshot_loss::LossPrecision;
use slingshot_numerics::FloatFormat;
use slingshot_optim::SpikeDetectorConfig;

pub use crate::cifar::ImageTask;
use crate::data::Operation;
use crate::error::ExperimentError;
pub use crate::mitigation::{GdSwitch, Mitigations};
use crate::model::{
    InputSpec, MlpConfig, ModelConfig, ModelKind, NetworkConfig, ResNetConfig, VggConfig, VitConfig,
};

/// The numeric precision of a run: Fig. 1(a)'s three arms, and the low-precision arms of
/// App. A.3.3 (the `low-precision` binary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Precision {
    /// Model and loss in f32.
    #[serde(rename = "f32")]
    #[value(name = "f32")]
    F32,
    /// Model and loss in f64.
    #[serde(rename = "f64")]
    #[value(name = "f64")]
    F64,
    /// Model in f32, the loss upcast to f64.
    #[serde(rename = "f64-loss")]
    #[value(name = "f64-loss")]
    F64Loss,
    /// Model in f32, the loss (softmax, log, sums) in bfloat16.
    #[serde(rename = "bf16-loss")]
    #[value(name = "bf16-loss")]
    Bf16Loss,
    /// Model in f32, the loss in IEEE half.
    #[serde(rename = "f16-loss")]
    #[value(name = "f16-loss")]
    F16Loss,
    /// Model in f32, the loss in FP8 E4M3 (emulated).
    #[serde(rename = "e4m3-loss")]
    #[value(name = "e4m3-loss")]
    E4m3Loss,
    /// Model in f32, the loss in FP8 E5M2 (emulated).
    #[serde(rename = "e5m2-loss")]
    #[value(name = "e5m2-loss")]
    E5m2Loss,
    /// Model in f32, the logits rounded to bfloat16 (forward and gradient), the loss in f32:
    /// what autocast does to a classifier's output.
    #[serde(rename = "bf16-logits")]
    #[value(name = "bf16-logits")]
    Bf16Logits,
    /// Model, optimizer state and loss in bfloat16 (burn-flex only).
    #[serde(rename = "bf16")]
    #[value(name = "bf16")]
    Bf16,
    /// Model, optimizer state and loss in IEEE half (burn-flex only).
    #[serde(rename = "f16")]
    #[value(name = "f16")]
    F16,
    /// Model in bfloat16, the loss upcast to f32 (the upcast as a mitigation).
    #[serde(rename = "bf16-f32-loss")]
    #[value(name = "bf16-f32-loss")]
    Bf16F32Loss,
    /// Model in IEEE half, the loss upcast to f32.
    #[serde(rename = "f16-f32-loss")]
    #[value(name = "f16-f32-loss")]
    F16F32Loss,
}

impl Precision {
    /// Every precision, in the order above.
    pub const ALL: [Precision; 12] = [
        Precision::F32,
        Precision::F64,
        Precision::F64Loss,
        Precision::Bf16Loss,
        Precision::F16Loss,
        Precision::E4m3Loss,
        Precision::E5m2Loss,
        Precision::Bf16Logits,
        Precision::Bf16,
        Precision::F16,
        Precision::Bf16F32Loss,
        Precision::F16F32Loss,
    ];

    /// The model's float dtype, or `None` for the backend's own (f32).
    pub fn model_dtype(self) -> Option<burn::tensor::DType> {
        use burn::tensor::DType;
        match self {
            Precision::F64 => Some(DType::F64),
            Precision::Bf16 | Precision::Bf16F32Loss => Some(DType::BF16),
            Precision::F16 | Precision::F16F32Loss => Some(DType::F16),
            _ => None,
        }
    }

    /// The loss's precision policy.
    pub fn loss_precision(self) -> LossPrecision {
        match self {
            Precision::F32 | Precision::F64 | Precision::Bf16 | Precision::F16 => {
                LossPrecision::Native
            }
            Precision::F64Loss => LossPrecision::F64,
            Precision::Bf16Loss => LossPrecision::BF16,
            Precision::F16Loss => LossPrecision::F16,
            Precision::E4m3Loss => LossPrecision::E4M3,
            Precision::E5m2Loss => LossPrecision::E5M2,
            Precision::Bf16Logits | Precision::Bf16F32Loss | Precision::F16F32Loss => {
                LossPrecision::F32
            }
        }
    }

    /// The format the loss computes in: what its collapse thresholds and the spike detector's
    /// resolution are for.
    pub fn loss_format(self) -> FloatFormat {
        match self {
            Precision::F64 | Precision::F64Loss => FloatFormat::F64,
            Precision::Bf16Loss | Precision::Bf16 => FloatFormat::BF16,
            Precision::F16Loss | Precision::F16 => FloatFormat::F16,
            Precision::E4m3Loss => FloatFormat::E4M3,
            Precision::E5m2Loss => FloatFormat::E5M2,
            _ => FloatFormat::F32,
        }
    }

    /// The format the logits are rounded to before the loss, if any.
    pub fn logit_format(self) -> Option<burn::tensor::DType> {
        (self == Precision::Bf16Logits).then_some(burn::tensor::DType::BF16)
    }

    /// Whether the whole model is in a 16-bit format (burn-flex only).
    pub fn is_half_model(self) -> bool {
        self.model_dtype()
            .is_some_and(|d| d != burn::tensor::DType::F64)
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use clap::ValueEnum;
        let value = self.to_possible_value().expect("no variant is skipped");
        f.write_str(value.get_name())
    }
}

/// Where the run computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// burn-ndarray on the CPU.
    Ndarray,
    /// burn-flex on the CPU (gemm and SIMD).
    Flex,
    /// burn-wgpu, fusion-free (needs the `wgpu` feature and a Vulkan, Metal or DX12 adapter;
    /// WGSL has no f64, so only the f32 arms run).
    Wgpu,
    /// burn-cuda (needs the `cuda` feature and a GPU).
    Cuda,
}

impl BackendKind {
    /// The CPU backend the presets and flags default to: burn-flex, about 2x burn-ndarray's
    /// steps/s on the demo (docs/performance.md, "The CPU backend").
    pub const CPU_DEFAULT: BackendKind = BackendKind::Flex;
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::Ndarray => "ndarray",
            BackendKind::Flex => "flex",
            BackendKind::Wgpu => "wgpu",
            BackendKind::Cuda => "cuda",
        })
    }
}

/// Rows per optimizer step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchSize {
    /// The whole training split every step.
    Full,
    /// A fixed number of rows, sampled without replacement each step.
    Rows(usize),
}

impl FromStr for BatchSize {
    type Err = String;

    /// `full` or a positive number of rows.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "full" => Ok(Self::Full),
            n => match n.parse::<usize>() {
                Ok(rows) if rows > 0 => Ok(Self::Rows(rows)),
                _ => Err(format!(
                    "batch {n:?}: expected `full` or a positive number of rows"
                )),
            },
        }
    }
}

impl fmt::Display for BatchSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchSize::Full => f.write_str("full"),
            BatchSize::Rows(n) => write!(f, "{n}"),
        }
    }
}

/// The modular-arithmetic task: `c = a op b (mod p)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ModularTaskConfig {
    /// Modulus (a prime).
    pub p: usize,
    /// Operation.
    pub op: Operation,
    /// Share of the pairs used for training.
    pub train_fraction: f64,
}

impl ModularTaskConfig {
    /// App. D Table 2: division mod 97, half the pairs for training.
    pub fn paper() -> Self {
        Self {
            p: 97,
            op: Operation::Div,
            train_fraction: 0.5,
        }
    }
}

/// What a run learns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "TaskFile", into = "TaskFile")]
pub enum TaskConfig {
    /// The modular-arithmetic task.
    Modular(ModularTaskConfig),
    /// The CIFAR-10 images (issue 6).
    Images(ImageTask),
}

/// The first format's fields: the modular task's three, and `images` (null for the modular
/// task; with images, the three keep the paper's values).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TaskFile {
    p: usize,
    op: Operation,
    train_fraction: f64,
    #[serde(default)]
    images: Option<ImageTask>,
}

impl From<TaskFile> for TaskConfig {
    fn from(f: TaskFile) -> Self {
        match f.images {
            Some(images) => TaskConfig::Images(images),
            None => TaskConfig::Modular(ModularTaskConfig {
                p: f.p,
                op: f.op,
                train_fraction: f.train_fraction,
            }),
        }
    }
}

impl From<TaskConfig> for TaskFile {
    fn from(task: TaskConfig) -> Self {
        let (m, images) = match task {
            TaskConfig::Modular(m) => (m, None),
            TaskConfig::Images(images) => (ModularTaskConfig::paper(), Some(images)),
        };
        TaskFile {
            p: m.p,
            op: m.op,
            train_fraction: m.train_fraction,
            images,
        }
    }
}

/// Everything that determines a run's numbers. Two runs with equal configs give identical
/// metrics on ndarray.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// The experiment (binary) this run belongs to.
    pub experiment: String,
    /// The arm within the experiment.
    pub arm: String,
    /// What the run learns: the modular task or images (in `config.json`, the first
    /// format's `p`, `op`, `train_fraction` and `images` fields).
    #[serde(flatten)]
    pub task: TaskConfig,
    /// Seed of the split, the initialization and the batches.
    pub seed: u64,
    /// The network.
    pub model: ModelConfig,
    /// Optimizer steps.
    pub steps: u64,
    /// Rows per step.
    pub batch: BatchSize,
    /// Adam's learning rate after warm-up.
    pub lr: f64,
    /// Linear warm-up steps.
    pub warmup: u64,
    /// Adam's beta1.
    pub beta1: f64,
    /// Adam's beta2.
    pub beta2: f64,
    /// Adam's epsilon.
    pub eps: f64,
    /// Decoupled weight decay (AdamW); 0 is Adam.
    #[serde(default)]
    pub weight_decay: f64,
    /// Model and loss precision.
    pub precision: Precision,
    /// Backend.
    pub backend: BackendKind,
    /// Log (and evaluate) every this many steps.
    pub log_every: u64,
    /// The mitigations, stage by stage ([`crate::mitigation`]).
    pub mitigations: Mitigations,
    /// Loss-spike detection.
    pub spikes: SpikeDetectorConfig,
    /// Estimate the largest Hessian eigenvalue of the training loss every this many steps
    /// (a multiple of `log_every`; Fig. 5).
    #[serde(default)]
    pub sharpness_every: Option<u64>,
    /// Forward and backward at most this many rows at a time, accumulating the gradients of a
    /// step's batch before its one optimizer step, so that a full batch of 50,000 images fits
    /// a GPU. The loss of each chunk is weighted by its share of the batch, which gives the
    /// full-batch gradient up to summation order; BatchNorm layers in the backbone normalize
    /// each chunk with its own statistics, as gradient accumulation does in PyTorch.
    #[serde(default)]
    pub grad_chunk: Option<usize>,
}

impl TrainConfig {
    /// The logits the loss sees: the mitigations' logit transform (a clamp), then the
    /// precision's rounding (`bf16-logits`). Under autodiff the cast's backward rounds the
    /// logit gradient to bf16 as well, as autocast does.
    pub fn logits<B: Backend>(&self, logits: Tensor<B, 2>) -> Tensor<B, 2> {
        let logits = self.mitigations.logits(logits);
        match self.precision.logit_format() {
            Some(format) => {
                let dtype = logits.dtype();
                logits.cast(format).cast(dtype)
            }
            None => logits,
        }
    }

    /// App. D Table 2: the 6-layer MLP on division mod 97, Adam lr 1e-3 with 10 warm-up steps,
    /// betas 0.9/0.999, eps 1e-8, batch 512, 100k steps.
    pub fn paper() -> Self {
        Self {
            experiment: "modular-division".into(),
            arm: "f32".into(),
            task: TaskConfig::Modular(ModularTaskConfig {
                p: 97,
                op: Operation::Div,
                train_fraction: 0.5,
            }),
            seed: 0,
            model: ModelConfig::paper_mlp(),
            steps: 100_000,
            batch: BatchSize::Rows(512),
            lr: 1e-3,
            warmup: 10,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            precision: Precision::F32,
            backend: BackendKind::CPU_DEFAULT,
            log_every: 100,
            mitigations: Mitigations::none(),
            spikes: SpikeDetectorConfig::default(),
            sharpness_every: None,
            grad_chunk: None,
        }
    }

    /// Issue 17's §5/§6 run (`--preset add-mod-113`): the demo with addition mod 113, a
    /// 2-layer MLP of width 200 without classifier bias, Adam lr 5e-4, beta2 0.99, eps
    /// 1e-25, 8,000 full-batch steps, logged every 50.
    pub fn add_mod_113() -> Self {
        let mut c = Self::demo();
        c.task = TaskConfig::Modular(ModularTaskConfig {
            p: 113,
            op: Operation::Add,
            train_fraction: 0.5,
        });
        c.model.network = NetworkConfig::Mlp(MlpConfig {
            width: 200,
            depth: 2,
        });
        c.model.head.classifier_bias = false;
        c.lr = 5e-4;
        c.beta2 = 0.99;
        c.eps = 1e-25;
        c.steps = 8_000;
        c.log_every = 50;
        c
    }

    /// Fig. 2(c) on the CPU (issue 17 §1): the demo with 80% of the pairs in the training
    /// split and 60,000 steps. With the larger split the demo generalizes in part, and its
    /// test accuracy steps up at its f32 spikes (about 3 minutes per f32 arm on one core).
    pub fn grokking() -> Self {
        let mut c = Self::demo();
        if let Some(task) = c.modular_mut() {
            task.train_fraction = 0.8;
        }
        c.steps = 60_000;
        c
    }

    /// The CPU demo (the README's main command): the paper's task and Adam settings, except a
    /// modulus of 23, an MLP of width 128 with 2 hidden layers, full batch, and lr 1e-2, which
    /// brings collapse, feature inflation and a spike within 12,000 steps (about 25 s per f32
    /// arm on two cores).
    pub fn demo() -> Self {
        let mut c = Self::paper();
        c.task = TaskConfig::Modular(ModularTaskConfig {
            p: 23,
            ..ModularTaskConfig::paper()
        });
        c.model.network = NetworkConfig::Mlp(MlpConfig {
            width: 128,
            depth: 2,
        });
        c.batch = BatchSize::Full;
        c.lr = 1e-2;
        c.steps = 12_000;
        c.log_every = 10;
        c
    }

    /// App. D Table 3 for the CIFAR-10 network `kind`: Adam lr 1e-3, betas 0.9/0.95, eps 1e-8,
    /// no weight decay or label smoothing, 10,000 epochs, seed 42, full batch of the 50,000
    /// training images (ViT: batch 2048, 25 steps per epoch), the 1,000-image test set.
    /// Full-batch steps go through the backbone in chunks of 2,500 images (5,000 for the
    /// MLP).
    pub fn cifar_paper(kind: ModelKind) -> Self {
        let mut c = Self::paper();
        c.experiment = "cifar".into();
        c.arm = kind.name().into();
        c.seed = 42;
        c.model = ModelConfig::paper_image(kind);
        c.task = TaskConfig::Images(ImageTask {
            data_dir: None,
            train_size: 50_000,
            test_size: crate::cifar::PAPER_TEST_SIZE,
        });
        c.lr = 1e-3;
        c.warmup = 0;
        c.beta1 = 0.9;
        c.beta2 = 0.95;
        c.eps = 1e-8;
        if kind == ModelKind::Vit {
            c.batch = BatchSize::Rows(2048);
            c.steps = 10_000 * 50_000_u64.div_ceil(2048);
            c.log_every = 250;
        } else {
            c.batch = BatchSize::Full;
            c.steps = 10_000;
            c.log_every = 10;
            c.grad_chunk = Some(if kind == ModelKind::Mlp { 5_000 } else { 2_500 });
        }
        c
    }

    /// The CPU preset of the CIFAR-10 experiments: the paper's optimizer, full batch, lr 1e-2,
    /// narrow networks, and sizes that keep an arm to minutes on two cores with burn-ndarray,
    /// whose direct convolution is slow: the MLP (width 128, 2 hidden layers) on 256 images
    /// for 3,000 steps, the ViT (width 32, 2 blocks of 4 heads) on 64 images for 600 steps,
    /// VGG11 (base width 4) on 64 images for 200 steps and ResNet18 (base width 2) on 32
    /// images for 60 steps. Without `--data-dir` the images are the synthetic stand-in; the
    /// test split has 256 images.
    pub fn cifar_demo(kind: ModelKind) -> Self {
        let mut c = Self::cifar_paper(kind);
        let (train_size, steps) = match kind {
            ModelKind::Mlp | ModelKind::Transformer => (256, 3_000),
            ModelKind::Vit => (64, 600),
            ModelKind::Vgg11 | ModelKind::Vgg11Bn => (64, 200),
            ModelKind::Resnet18 => (32, 60),
        };
        c.task = TaskConfig::Images(ImageTask {
            data_dir: None,
            train_size,
            test_size: 256,
        });
        c.model.network = match c.model.network {
            NetworkConfig::Mlp(_) => NetworkConfig::Mlp(MlpConfig {
                width: 128,
                depth: 2,
            }),
            NetworkConfig::Vgg11(v) => NetworkConfig::Vgg11(VggConfig { channels: 4, ..v }),
            NetworkConfig::Resnet18(_) => NetworkConfig::Resnet18(ResNetConfig { channels: 2 }),
            NetworkConfig::Vit(v) => NetworkConfig::Vit(VitConfig {
                d_model: 32,
                heads: 4,
                layers: 2,
                ..v
            }),
            other => other,
        };
        c.batch = BatchSize::Full;
        c.grad_chunk = None;
        c.lr = 1e-2;
        c.steps = steps;
        c.log_every = if steps >= 1_000 { 10 } else { 5 };
        c
    }

    /// The modular task, if the run learns it.
    pub fn modular(&self) -> Option<&ModularTaskConfig> {
        match &self.task {
            TaskConfig::Modular(m) => Some(m),
            TaskConfig::Images(_) => None,
        }
    }

    /// The modular task, to change it.
    pub fn modular_mut(&mut self) -> Option<&mut ModularTaskConfig> {
        match &mut self.task {
            TaskConfig::Modular(m) => Some(m),
            TaskConfig::Images(_) => None,
        }
    }

    /// The image task, if the run learns images.
    pub fn images(&self) -> Option<&ImageTask> {
        match &self.task {
            TaskConfig::Images(images) => Some(images),
            TaskConfig::Modular(_) => None,
        }
    }

    /// The image task, to change it.
    pub fn images_mut(&mut self) -> Option<&mut ImageTask> {
        match &mut self.task {
            TaskConfig::Images(images) => Some(images),
            TaskConfig::Modular(_) => None,
        }
    }

    /// The classes: `p` answers, or CIFAR-10's ten.
    pub fn classes(&self) -> usize {
        match &self.task {
            TaskConfig::Modular(m) => m.p,
            TaskConfig::Images(_) => crate::cifar::CLASSES,
        }
    }

    /// What the network reads.
    pub fn input(&self) -> InputSpec {
        match &self.task {
            TaskConfig::Images(_) => InputSpec::Images,
            TaskConfig::Modular(m) => InputSpec::Tokens { vocab: m.p + 2 },
        }
    }

    /// Checks every value that can be wrong before any training.
    pub fn validate(&self) -> Result<(), ExperimentError> {
        self.model.validate()?;
        self.spikes.validate()?;
        self.validate_optimizer()?;
        self.mitigations
            .validate()
            .map_err(ExperimentError::InvalidConfig)?;
        self.validate_sharpness()?;
        self.validate_data()?;
        memory::check(self).map_err(ExperimentError::InvalidConfig)?;
        if self.grad_chunk == Some(0) {
            return Err(ExperimentError::InvalidConfig(
                "grad-chunk must be at least 1 row".into(),
            ));
        }
        self.validate_backend()
    }

    /// Steps, log cadence and Adam's hyperparameters.
    fn validate_optimizer(&self) -> Result<(), ExperimentError> {
        let bad = |what: String| Err(ExperimentError::InvalidConfig(what));
        if self.steps == 0 {
            return bad("steps must be at least 1".into());
        }
        if self.log_every == 0 {
            return bad("log-every must be at least 1".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("learning rate {}: must be finite and > 0", self.lr));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(format!(
                "weight decay {}: must be finite and >= 0",
                self.weight_decay
            ));
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return bad(format!("eps {}: must be finite and > 0", self.eps));
        }
        for (name, beta) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&beta) {
                return bad(format!("{name} {beta}: must be in [0, 1)"));
            }
        }
        Ok(())
    }

    /// The Hessian estimate's cadence, and networks it cannot measure.
    fn validate_sharpness(&self) -> Result<(), ExperimentError> {
        let bad = |what: String| Err(ExperimentError::InvalidConfig(what));
        let Some(every) = self.sharpness_every else {
            return Ok(());
        };
        if self.model.head.head_norm == slingshot_nn::HeadNorm::BatchNorm {
            // The finite-difference passes would move BatchNorm's running statistics.
            return bad("sharpness measurement does not support a BatchNorm head".into());
        }
        if every == 0 || !every.is_multiple_of(self.log_every) {
            return bad(format!(
                "sharpness-every {every}: must be a positive multiple of log-every ({})",
                self.log_every
            ));
        }
        if self.model.kind().has_batch_norm() {
            return bad(format!(
                "sharpness measurement does not support the {} network (BatchNorm)",
                self.model.kind().name()
            ));
        }
        Ok(())
    }

    /// The task, the network's input, the data files and the batch size.
    fn validate_data(&self) -> Result<(), ExperimentError> {
        let bad = |what: String| Err(ExperimentError::InvalidConfig(what));
        if !self.model.reads(self.input()) {
            let task = match self.task {
                TaskConfig::Images(_) => "images",
                TaskConfig::Modular(_) => "the modular task",
            };
            return bad(format!(
                "the {} network cannot train on {task}",
                self.model.kind().name()
            ));
        }
        match &self.task {
            TaskConfig::Images(images) => images.validate()?,
            TaskConfig::Modular(m) => crate::data::check_task(m.p, m.train_fraction)?,
        }
        if let BatchSize::Rows(rows) = self.batch {
            let train = memory::train_rows(self);
            if rows as u64 > train {
                return bad(format!(
                    "--batch {rows} is larger than the training set ({train} rows): use --batch full, or at most {train}"
                ));
            }
        }
        Ok(())
    }

    /// The backend is built in and computes the arm's precision.
    fn validate_backend(&self) -> Result<(), ExperimentError> {
        let bad = |what: String| Err(ExperimentError::InvalidConfig(what));
        if self.backend == BackendKind::Cuda && !cfg!(feature = "cuda") {
            return bad("--backend cuda needs a build with `--features cuda`".into());
        }
        if self.backend == BackendKind::Wgpu && !cfg!(feature = "wgpu") {
            return bad("--backend wgpu needs a build with `--features wgpu`".into());
        }
        if self.backend == BackendKind::Wgpu && self.precision != Precision::F32 {
            return bad(format!(
                "--backend wgpu runs only the f32 arm (WGSL has no f64, and the emulated formats read the logits back every step): the {} arm needs ndarray, flex or cuda",
                self.precision
            ));
        }
        if self.precision.is_half_model() && self.backend != BackendKind::Flex {
            return bad(format!(
                "the {} arm trains the whole model in a 16-bit float, which only burn-flex computes here: use --backend flex",
                self.precision
            ));
        }
        Ok(())
    }
}
