//! One step of the CPU demo (the README's main command: division mod 23, MLP
//! 100 -> 128 -> 128 -> 23, all 253 training rows, Adam lr 1e-2), three ways:
//!
//! * `burn`: what a plain burn user writes: burn's `CrossEntropyLoss` and burn's `Adam`.
//! * `harness`: the harness's own step ([`ModularTraining::step`]) on a step it does not log:
//!   the collapse-aware loss, statistics off, `ProbedAdam` with its probe on.
//! * `harness_log_every_10`: the harness's steps with every tenth one logged, as the demo runs
//!   (`--log-every 10`): the logged step reads the loss, collapse statistics, NFI diagnostics
//!   and Adam's probe back and evaluates both splits. Reported per step.
//!
//! `cargo bench -p slingshot-benches --bench demo_step`; `benches/pytorch/train_step_cpu.py`
//! times the same step in PyTorch (docs/performance.md has both, side by side).

use std::time::{Duration, Instant};

use burn::backend::Autodiff;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::AdamConfig;
use burn::tensor::backend::AutodiffBackend;
use burn_flex::Flex;
use burn_ndarray::NdArray;
use criterion::{Criterion, Throughput, criterion_group};
use slingshot_benches::burn_step;
use slingshot_experiments::batches::TaskTensors;
use slingshot_experiments::config::{BackendKind, TaskConfig, TrainConfig};
use slingshot_experiments::data::ModularTask;
use slingshot_experiments::model::Model;
use slingshot_experiments::run::{RunOptions, Training};
use slingshot_experiments::train::ModularTraining;
use slingshot_experiments::{BatchSize, RunDir};

fn bench_backend<B: AutodiffBackend>(c: &mut Criterion, backend: BackendKind) {
    let device = B::Device::default();
    let mut config = TrainConfig::demo();
    config.backend = backend;
    config.validate().expect("the demo preset is valid");
    let TaskConfig::Modular(m) = &config.task else {
        unreachable!("the demo is the modular task")
    };
    let task = ModularTask::try_new(m.p, m.op, m.train_fraction, config.seed)
        .expect("the demo's task is valid");
    let mut group = c.benchmark_group(format!("demo_step/{backend}"));
    group.throughput(Throughput::Elements(1));
    group.sample_size(30);

    let data = TaskTensors::<B>::new(&task, config.model.kind(), &device);
    let (inputs, labels) = data.batch(BatchSize::Full, 0, 0);
    let mut model: Model<B> = config.model.init(task.vocab(), task.classes(), &device);
    let mut adam = AdamConfig::new().with_epsilon(1e-8).init();
    let ce = CrossEntropyLossConfig::new().init(&device);
    group.bench_function("burn", |b| {
        b.iter(|| model = burn_step(model.clone(), &mut adam, &ce, (&inputs, &labels), config.lr))
    });

    // The run directory is only written when updates are recorded: never here.
    let dir = RunDir::at(&std::env::temp_dir().join("slingshot-bench-demo-step"));
    let options = RunOptions::default();
    let mut harness = ModularTraining::<B>::try_new(&config, &dir, &options, &device)
        .expect("the demo's task builds");
    let mut step = 0;
    group.bench_function("harness", |b| {
        b.iter(|| {
            harness.step(step, false).expect("a valid step");
            step += 1;
        })
    });
    group.bench_function("harness_log_every_10", |b| {
        b.iter_custom(|iters| timed_steps(&mut harness, &mut step, iters, 10))
    });
    group.finish();
}

/// `iters` harness steps from `step` on, every `log_every`-th one logged.
fn timed_steps<T: Training>(task: &mut T, step: &mut u64, iters: u64, log_every: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        *step += 1;
        let row = task
            .step(*step - 1, step.is_multiple_of(log_every))
            .expect("a valid step");
        std::hint::black_box(row);
    }
    start.elapsed()
}

fn flex(c: &mut Criterion) {
    bench_backend::<Autodiff<Flex>>(c, BackendKind::Flex);
}

fn ndarray(c: &mut Criterion) {
    bench_backend::<Autodiff<NdArray<f32>>>(c, BackendKind::Ndarray);
}

criterion_group!(benches, flex, ndarray);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
