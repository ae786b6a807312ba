//! One optimizer step on the paper's 6-layer MLP (396 -> 512 -> 512 x4 -> 97, 1.3 M
//! parameters): burn's Adam against `ProbedAdam` with the probe off, on (values kept on the
//! device, nothing read), and on with a read every step (for information: a read is meant
//! for logging steps only).
//!
//! `cargo bench -p slingshot-benches --bench optim -- --warm-up-time 2 --measurement-time 10`
//!
//! criterion measures the arms one after the other, so load from other processes can favour
//! one arm. `SLINGSHOT_BENCH_INTERLEAVED=300 cargo bench -p slingshot-benches --bench optim`
//! instead steps the three step arms in turn, 300 rounds, and prints their medians.
//!
//! Only the step is timed: the gradients come from one backward pass, and each iteration gets
//! a fresh copy of them (made outside the timing) so that, as in training, the optimizer owns
//! buffers it can update in place. The model is carried from step to step.

use burn::backend::Autodiff;
use burn::module::{AutodiffModule, Module, ModuleVisitor, Param};
use burn::nn::{Linear, LinearConfig, Relu};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{DType, Int, Tensor, TensorData};
use burn_ndarray::NdArray;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group};
use slingshot::optim::ProbedAdamConfig;
use slingshot_benches::bench_logits;

/// The paper's modular-arithmetic MLP: one-hot pairs of residues mod 97 (4 x 99 inputs).
#[derive(Module, Debug)]
struct PaperMlp<B: Backend> {
    layers: Vec<Linear<B>>,
    act: Relu,
}

impl<B: Backend> PaperMlp<B> {
    fn new(device: &B::Device) -> Self {
        let widths = [396, 512, 512, 512, 512, 512, 97];
        let layers = widths
            .windows(2)
            .map(|w| LinearConfig::new(w[0], w[1]).init(device))
            .collect();
        Self {
            layers,
            act: Relu::new(),
        }
    }

    fn forward(&self, mut x: Tensor<B, 2>) -> Tensor<B, 2> {
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x);
            if i < last {
                x = self.act.forward(x);
            }
        }
        x
    }
}

/// Gradients of a cross-entropy on 256 deterministic rows.
fn gradients<B: AutodiffBackend>(model: &PaperMlp<B>, device: &B::Device) -> GradientsParams {
    let rows = 256;
    let values: Vec<f32> = bench_logits(rows * 396)
        .iter()
        .map(|&v| v as f32 / 8.0)
        .collect();
    let x = Tensor::<B, 2>::from_data(TensorData::new(values, [rows, 396]), (device, DType::F32));
    let targets: Vec<i64> = (0..rows).map(|i| ((i * 31) % 97) as i64).collect();
    let targets = Tensor::<B, 1, Int>::from_data(TensorData::new(targets, [rows]), device);
    let loss = burn::nn::loss::CrossEntropyLossConfig::new()
        .init(device)
        .forward(model.forward(x), targets);
    GradientsParams::from_grads(loss.backward(), model)
}

/// A deep copy of `grads` for `module`'s parameters (`GradientsParams` is not `Clone`).
fn copy_grads<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    grads: &GradientsParams,
) -> GradientsParams {
    struct Copy<'a> {
        from: &'a GradientsParams,
        to: GradientsParams,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Copy<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if let Some(g) = self.from.get::<B::InnerBackend, D>(param.id) {
                let device = g.device();
                let fresh = Tensor::<B::InnerBackend, D>::from_data(g.into_data(), &device);
                self.to.register(param.id, fresh);
            }
        }
    }
    let mut copy = Copy {
        from: grads,
        to: GradientsParams::new(),
    };
    module.visit(&mut copy);
    copy.to
}

/// Times `optim.step` alone; `after` runs inside the timing (the probe read).
fn bench_arm<B, O>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    arm: &str,
    start: &PaperMlp<B>,
    grads: &GradientsParams,
    mut optim: O,
    mut after: impl FnMut(&mut O),
) where
    B: AutodiffBackend,
    O: Optimizer<PaperMlp<B>, B>,
{
    // A deep copy of the start (same ids): the arms do not share parameter buffers.
    let mut model = Some(start.clone().map(&mut Detach));
    group.bench_function(BenchmarkId::from_parameter(arm), |b| {
        b.iter_batched(
            || copy_grads(start, grads),
            |grads| {
                let current = model.take().expect("model");
                model = Some(optim.step(1e-4, current, grads));
                after(&mut optim);
            },
            BatchSize::PerIteration,
        )
    });
}

/// Copies every parameter into a buffer of its own.
struct Detach;

impl<B: AutodiffBackend> burn::module::ModuleMapper<B> for Detach {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let device = tensor.device();
        let inner = Tensor::<B::InnerBackend, D>::from_data(tensor.inner().into_data(), &device);
        Param::from_mapped_value(id, Tensor::from_inner(inner).require_grad(), mapper)
    }
}

fn bench_backend<B: AutodiffBackend>(c: &mut Criterion, name: &str, device: B::Device) {
    B::seed(&device, 0);
    let model = PaperMlp::<B>::new(&device);
    let grads = gradients(&model, &device);
    let numel: usize = model.num_params();
    let mut group = c.benchmark_group(format!("adam_step/{name}/paper_mlp"));
    group.throughput(Throughput::Elements(numel as u64));
    let eps = 1e-8;
    bench_arm(
        &mut group,
        "burn_adam",
        &model,
        &grads,
        AdamConfig::new().with_epsilon(eps).init::<B, PaperMlp<B>>(),
        |_| {},
    );
    let probed = |probe| {
        ProbedAdamConfig::new()
            .with_epsilon(eps)
            .with_probe(probe)
            .init::<B, PaperMlp<B>>()
    };
    bench_arm(
        &mut group,
        "probe_off",
        &model,
        &grads,
        probed(false),
        |_| {},
    );
    bench_arm(&mut group, "probe_on", &model, &grads, probed(true), |_| {});
    bench_arm(
        &mut group,
        "probe_on_read",
        &model,
        &grads,
        probed(true),
        |o| {
            let report = o.take_probe().map(|p| p.read());
            std::hint::black_box(report);
        },
    );
    group.finish();
}

/// The three step arms measured in rounds, one step of each per round, so that load from
/// other processes on a shared machine hits them alike; prints the median of each and its
/// ratio to burn's Adam.
fn interleaved<B: AutodiffBackend>(rounds: usize, device: B::Device) {
    B::seed(&device, 0);
    let start = PaperMlp::<B>::new(&device);
    let grads = gradients(&start, &device);
    let probed = |probe| {
        ProbedAdamConfig::new()
            .with_epsilon(1e-8)
            .with_probe(probe)
            .init::<B, PaperMlp<B>>()
    };
    let mut adam = AdamConfig::new()
        .with_epsilon(1e-8)
        .init::<B, PaperMlp<B>>();
    let (mut off, mut on) = (probed(false), probed(true));
    let mut models: Vec<_> = (0..3)
        .map(|_| Some(start.clone().map(&mut Detach)))
        .collect();
    let mut times: Vec<Vec<f64>> = (0..3).map(|_| Vec::with_capacity(rounds)).collect();
    for _ in 0..rounds {
        for (arm, model) in models.iter_mut().enumerate() {
            let grads = copy_grads(&start, &grads);
            let current = model.take().expect("model");
            let clock = std::time::Instant::now();
            let next = match arm {
                0 => adam.step(1e-4, current, grads),
                1 => off.step(1e-4, current, grads),
                _ => on.step(1e-4, current, grads),
            };
            times[arm].push(clock.elapsed().as_secs_f64() * 1e3);
            *model = Some(next);
        }
    }
    let medians: Vec<f64> = times
        .iter_mut()
        .map(|t| {
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        })
        .collect();
    println!(
        "interleaved, {rounds} rounds: burn_adam {:.3} ms, probe_off {:.3} ms ({:.3}x), \
         probe_on {:.3} ms ({:.3}x)",
        medians[0],
        medians[1],
        medians[1] / medians[0],
        medians[2],
        medians[2] / medians[0]
    );
}

fn ndarray(c: &mut Criterion) {
    bench_backend::<Autodiff<NdArray<f32>>>(c, "ndarray", Default::default());
}

criterion_group!(benches, ndarray);

/// `SLINGSHOT_BENCH_INTERLEAVED=<rounds>` runs the interleaved measurement instead of
/// criterion.
fn main() {
    let rounds = std::env::var("SLINGSHOT_BENCH_INTERLEAVED")
        .ok()
        .and_then(|r| r.parse::<usize>().ok());
    match rounds {
        Some(rounds) => interleaved::<Autodiff<NdArray<f32>>>(rounds.max(1), Default::default()),
        None => {
            benches();
            Criterion::default().configure_from_args().final_summary();
        }
    }
}
