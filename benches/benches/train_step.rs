//! One training step of the modular-division MLP (App. D Table 2: 396 -> 512 x5 -> 97, division
//! mod 97), as the experiment harness takes it, against what a plain burn user writes:
//!
//! * `burn`: burn's `CrossEntropyLoss` and burn's `Adam` (eps 1e-8).
//! * `slingshot`: the harness's step on a step it does not log: the collapse-aware loss with
//!   statistics off and `ProbedAdam` with its probe on (device values only, nothing read).
//! * `slingshot_logged`: a logged step: statistics on, and the loss, the statistics and the
//!   probe read back (the harness does this every `--log-every` steps only).
//!
//! Batch 512 (the paper's) and the full training split (4,656 rows), each step on the same
//! rows. `cargo bench -p slingshot-benches --bench train_step`; `--features cuda` adds the
//! burn-cuda groups (anchors.md: PyTorch eager takes 3.38 ms per step at batch 512 with its
//! default Adam on the H100, 2.06 ms with fused Adam).

use burn::backend::Autodiff;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::Transaction;
use burn::tensor::backend::AutodiffBackend;
use burn_flex::Flex;
use burn_ndarray::NdArray;
use criterion::{Criterion, Throughput, criterion_group};
use slingshot::loss::CollapseAwareCrossEntropyConfig;
use slingshot::optim::ProbedAdamConfig;
use slingshot_benches::burn_step;
use slingshot_experiments::batches::TaskTensors;
use slingshot_experiments::data::{ModularTask, Operation};
use slingshot_experiments::model::{Model, ModelConfig};
use slingshot_experiments::{BatchSize, config::TrainConfig};

const LR: f64 = 1e-3;

fn bench_backend<B>(c: &mut Criterion, name: &str, device: B::Device)
where
    B: AutodiffBackend,
{
    let paper = TrainConfig::paper();
    let modular = paper.modular().expect("the paper preset is modular");
    let task = ModularTask::try_new(modular.p, Operation::Div, modular.train_fraction, 0)
        .expect("the paper's task is valid");
    let data = TaskTensors::<B>::new(&task, paper.model.kind(), &device);
    let config: ModelConfig = paper.model.clone();
    for (label, batch) in [
        ("batch_512", BatchSize::Rows(512)),
        ("full_batch", BatchSize::Full),
    ] {
        let (inputs, labels) = data.batch(batch, 0, 0);
        let rows = labels.dims()[0];
        let mut group = c.benchmark_group(format!("train_step/{name}/{label}"));
        group.throughput(Throughput::Elements(rows as u64));
        group.sample_size(20);

        let mut model: Model<B> = config.init(task.vocab(), task.classes(), &device);
        let mut adam = AdamConfig::new().with_epsilon(1e-8).init();
        let ce = CrossEntropyLossConfig::new().init(&device);
        group.bench_function("burn", |b| {
            b.iter(|| {
                model = burn_step(model.clone(), &mut adam, &ce, (&inputs, &labels), LR);
                sync(&model);
            })
        });

        let mut model: Model<B> = config.init(task.vocab(), task.classes(), &device);
        let mut probed = ProbedAdamConfig::new()
            .with_epsilon(1e-8)
            .try_init()
            .expect("valid Adam settings");
        let plain = CollapseAwareCrossEntropyConfig::new()
            .try_init::<B>(&device)
            .expect("a valid loss");
        group.bench_function("slingshot", |b| {
            b.iter(|| {
                let logits = model.forward(inputs.clone()).logits;
                let loss = plain.try_forward(logits, labels.clone()).expect("valid");
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = probed.step(LR, model.clone(), grads);
                sync(&model);
            })
        });

        let logged = plain.clone();
        group.bench_function("slingshot_logged", |b| {
            b.iter(|| {
                let logits = model.forward(inputs.clone()).logits;
                let out = logged
                    .try_forward_with_stats(logits, labels.clone())
                    .expect("valid");
                let value = out.loss.clone().inner();
                let grads = GradientsParams::from_grads(out.loss.backward(), &model);
                model = probed.step(LR, model.clone(), grads);
                let summary = out.stats.summary();
                let probe = probed.take_probe().map(|p| p.read());
                let read = Transaction::default().register(value).execute();
                std::hint::black_box((summary, probe, read));
            })
        });
        group.finish();
    }
}

/// Waits for the step's work: reads one element of the classifier weight (a device sync on
/// asynchronous backends, cheap on ndarray).
fn sync<B: AutodiffBackend>(model: &Model<B>) {
    let w = model.classifier().weight.val();
    std::hint::black_box(w.inner().slice([0..1, 0..1]).into_data());
}

fn flex(c: &mut Criterion) {
    bench_backend::<Autodiff<Flex>>(c, "flex", Default::default());
}

fn ndarray(c: &mut Criterion) {
    bench_backend::<Autodiff<NdArray<f32>>>(c, "ndarray", Default::default());
}

#[cfg(feature = "cuda")]
fn cuda(c: &mut Criterion) {
    bench_backend::<Autodiff<burn_cuda::Cuda<f32, i32>>>(c, "cuda", Default::default());
}

#[cfg(not(feature = "cuda"))]
criterion_group!(benches, flex, ndarray);
#[cfg(feature = "cuda")]
criterion_group!(benches, flex, ndarray, cuda);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
