//! Shared fixtures: a small MLP, deterministic data, parameters as bits.

#![allow(dead_code)]

use burn::backend::Autodiff;
use burn::module::{Module, Param, ParamId};
use burn::nn::{Linear, LinearConfig, Relu};
use burn::optim::GradientsParams;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorData};
use burn_ndarray::NdArray;

pub type Inner = NdArray<f32>;
pub type Ad = Autodiff<Inner>;

/// 8 -> 16 -> 4 with a ReLU.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    pub hidden: Linear<B>,
    pub out: Linear<B>,
    pub act: Relu,
}

impl<B: Backend> Mlp<B> {
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.out.forward(self.act.forward(self.hidden.forward(x)))
    }
}

pub fn mlp(seed: u64) -> Mlp<Ad> {
    let device = Default::default();
    Ad::seed(&device, seed);
    let model = Mlp {
        hidden: LinearConfig::new(8, 16).init(&device),
        out: LinearConfig::new(16, 4).init(&device),
        act: Relu::new(),
    };
    // burn initializes parameters lazily, and a clone of an uninitialized parameter draws its
    // own values: read them once so that clones share them.
    bits(&model);
    model
}

/// Uniform values in [-1, 1), deterministic per seed.
pub fn noise(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

pub fn tensor<B: Backend, const D: usize>(values: Vec<f32>, shape: [usize; D]) -> Tensor<B, D> {
    Tensor::from_data(
        TensorData::new(values, shape),
        (&Default::default(), DType::F32),
    )
}

/// Mean squared error of the MLP on batch `step` (32 rows, fixed per step).
pub fn mlp_grads(model: &Mlp<Ad>, step: usize) -> GradientsParams {
    let x = tensor::<Ad, 2>(noise(32 * 8, 1000 + step as u64), [32, 8]);
    let y = tensor::<Ad, 2>(noise(32 * 4, 5000 + step as u64), [32, 4]);
    let loss = (model.forward(x) - y).powi_scalar(2).mean();
    GradientsParams::from_grads(loss.backward(), model)
}

/// Every parameter's values as bits, in module order.
pub fn bits<B: Backend, M: Module<B>>(model: &M) -> Vec<Vec<u32>> {
    struct Collect(Vec<Vec<u32>>);
    impl<B: Backend> burn::module::ModuleVisitor<B> for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let data = param.val().into_data();
            self.0.push(data.iter::<f32>().map(f32::to_bits).collect());
        }
    }
    let mut collect = Collect(Vec::new());
    model.visit(&mut collect);
    collect.0
}

/// Parameter ids in module order.
pub fn ids<B: Backend, M: Module<B>>(model: &M) -> Vec<ParamId> {
    burn::module::list_param_ids(model)
}

/// One parameter tensor `w` whose gradient is whatever the test asks for: the loss is
/// `sum(w * c)`, so the gradient is exactly `c`.
#[derive(Module, Debug)]
pub struct Weights<B: Backend> {
    pub w: Param<Tensor<B, 2>>,
}

pub fn weights(values: Vec<f32>, shape: [usize; 2]) -> Weights<Ad> {
    Weights {
        w: Param::from_tensor(tensor::<Ad, 2>(values, shape)),
    }
}

pub fn grads_of(model: &Weights<Ad>, gradient: &[f32]) -> GradientsParams {
    let dims = model.w.val().shape().dims::<2>();
    let c = tensor::<Ad, 2>(gradient.to_vec(), dims);
    let loss = (model.w.val() * c).sum();
    GradientsParams::from_grads(loss.backward(), model)
}

pub fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f64> {
    t.into_data().iter::<f64>().collect()
}

/// The file where `f` panicked. The hook records only this thread's panics and passes the
/// others on, because the tests of this binary run in parallel and share one hook.
pub fn panic_file(f: impl FnOnce()) -> String {
    use std::panic::{self, AssertUnwindSafe, PanicHookInfo};
    use std::sync::{Arc, Mutex};
    type Hook = dyn Fn(&PanicHookInfo<'_>) + Send + Sync;
    let me = std::thread::current().id();
    let seen = Arc::new(Mutex::new(None));
    let previous: Arc<Hook> = Arc::from(panic::take_hook());
    let (record, others) = (Arc::clone(&seen), Arc::clone(&previous));
    panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() == me {
            *record.lock().unwrap() = info.location().map(|l| l.file().to_string());
        } else {
            others(info);
        }
    }));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    panic::set_hook(Box::new(move |info| previous(info)));
    assert!(result.is_err(), "expected a panic");
    seen.lock().unwrap().take().expect("the hook saw the panic")
}
