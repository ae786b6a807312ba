//! Every public slingshot primitive in a user's generic code, with burn's bounds and nothing
//! else (`B: Backend` forward-only, `B: AutodiffBackend` for training), on every backend burn
//! 0.21 ships that builds here (issue 14, "Compile coverage").
//!
//! [`forward_only`] and [`train_step`] are written as a user would write them. They run on
//! burn-ndarray (f32 and f64), burn-flex and burn-candle (CPU), and under `Autodiff` over each;
//! with `--features wgpu` on burn-wgpu with and without fusion (skipped without an adapter:
//! Mesa's lavapipe is one), and with `--features cuda` they are instantiated for burn-cuda with
//! and without fusion (run only where a CUDA device initialises).
//!
//! The model is tiny on purpose: every backend monomorphizes the whole step again.

use burn::backend::Autodiff;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{GradientsParams, Optimizer, SgdConfig};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{DType, Int, Tensor, TensorData};
use slingshot::loss::{
    CollapseAwareCrossEntropy, CollapseAwareCrossEntropyConfig, LossError, LossPrecision,
    LossReduction,
};
use slingshot::nn::{
    CenteredLinear, CenteredLinearConfig, ClassifierHead, ClassifierHeadConfig, HeadNorm,
    NfiDiagnostics, clamp_logit_margin, class_mean, mu_loss, remove_class_mean,
};
use slingshot::optim::{
    OrthoGrad, ProbedAdam, ProbedAdamConfig, SpikeDetector, SpikeDetectorConfig, SpikeKind,
    SwitchOptimizer, clip_grad_norm, global_grad_norm, orthogonalize,
};

/// Rows, input width, feature width, classes.
const N: usize = 6;
const D_IN: usize = 4;
const WIDTH: usize = 8;
const K: usize = 3;
const TARGETS: [i64; N] = [0, 1, 2, 0, 1, 2];
/// Adam steps, learning rate, clipping norm.
const STEPS: u64 = 4;
const LR: f64 = 2e-2;
const MAX_NORM: f64 = 0.5;

// ---------------------------------------------------------------------------------------------
// Helpers.

/// Any tensor read back as f64, whatever its dtype.
fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f64> {
    t.into_data()
        .convert::<f64>()
        .to_vec::<f64>()
        .expect("f64 values")
}

fn scalar<B: Backend, const D: usize>(t: Tensor<B, D>) -> f64 {
    host(t)[0]
}

/// Deterministic values in about `[-scale, scale]`, in the device's default float dtype.
fn floats<B: Backend, const D: usize>(
    shape: [usize; D],
    seed: usize,
    scale: f32,
    device: &B::Device,
) -> Tensor<B, D> {
    let n = shape.iter().product::<usize>();
    let v: Vec<f32> = (0..n)
        .map(|i| (((i * 7 + seed * 13) % 17) as f32 / 8.0 - 1.0) * scale)
        .collect();
    Tensor::from_data(TensorData::new(v, shape), device)
}

fn ints<B: Backend>(v: &[i64], device: &B::Device) -> Tensor<B, 1, Int> {
    Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), device)
}

/// `ln sum exp(z) - z_t` per row, in f64 on the host.
fn reference_losses(z: &[f64], targets: &[i64]) -> Vec<f64> {
    z.chunks(K)
        .zip(targets)
        .map(|(row, &t)| {
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let lse = max + row.iter().map(|x| (x - max).exp()).sum::<f64>().ln();
            lse - row[t as usize]
        })
        .collect()
}

/// Whether `LossPrecision::F64` is available for logits in `B`'s default float type: on
/// ndarray, flex and CUDA. WGSL (burn-wgpu's compiler) has no f64, although burn-wgpu 0.21
/// reports it as supported (and computes garbage in it); burn-candle computes only in its own
/// float type (its `float_sum` reads any tensor as that type). Issue 14 asks for a typed
/// `LossError` where f64 is missing, never a wrong value or a panic.
fn has_f64<B: Backend>(device: &B::Device) -> bool {
    let name = B::name(device);
    let default_f64 = Tensor::<B, 1>::zeros([1], device).dtype() == DType::F64;
    B::supports_dtype(device, DType::F64)
        && !name.contains("wgsl")
        && (default_f64 || !name.contains("candle"))
}

fn assert_close(a: f64, b: f64, tol: f64, what: &str) {
    assert!(
        (a - b).abs() <= tol * b.abs().max(1.0),
        "{what}: {a} vs {b}"
    );
}

// ---------------------------------------------------------------------------------------------
// The model: a burn `Linear` backbone, a `ClassifierHead` and a `CenteredLinear`.

#[derive(Module, Debug)]
struct Net<B: Backend> {
    backbone: Linear<B>,
    head: ClassifierHead<B>,
    centered: CenteredLinear<B>,
}

impl<B: Backend> Net<B> {
    fn new(device: &B::Device) -> Self {
        Self {
            backbone: LinearConfig::new(D_IN, WIDTH).init(device),
            head: ClassifierHeadConfig::new(WIDTH, K)
                .with_norm(HeadNorm::LayerNorm)
                .init(device),
            centered: CenteredLinearConfig::new(WIDTH, K).init(device),
        }
    }

    /// Penultimate features and logits (both classifiers summed, margins clamped at 50).
    fn forward(&self, x: Tensor<B, 2>) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let h = self.backbone.forward(x).tanh();
        let logits = self.head.forward(h.clone()) + self.centered.forward(h.clone());
        (h, clamp_logit_margin(logits, 50.0))
    }
}

// ---------------------------------------------------------------------------------------------
// Forward-only: `B: Backend`.

/// Every forward-only primitive on `B`.
fn forward_only<B: Backend>(device: &B::Device) {
    loss_forward::<B>(device);
    loss_like_burn::<B>(device);
    heads_and_mean_removal::<B>(device);
    diagnostics_and_clamp::<B>(device);
    orthogonal_gradient::<B>(device);
}

/// The loss against an f64 host reference, the fused path against the portable kernel,
/// every reduction, and the 3-D form.
fn loss_forward<B: Backend>(device: &B::Device) {
    let z = floats::<B, 2>([N, K], 1, 3.0, device);
    let t = ints::<B>(&TARGETS, device);
    let want = reference_losses(&host(z.clone()), &TARGETS);
    let per_row = CollapseAwareCrossEntropyConfig::new().with_reduction(LossReduction::None);
    let got = host(per_row.init::<B>(device).forward(z.clone(), t.clone()));
    let portable = per_row.init::<B>(device).with_portable_kernel();
    let portable = host(portable.forward(z.clone(), t.clone()));
    for i in 0..N {
        assert_close(got[i], want[i], 1e-5, "per-row loss vs the f64 reference");
        assert_close(got[i], portable[i], 1e-6, "fused vs portable kernel");
    }
    let mean_ref = want.iter().sum::<f64>() / N as f64;
    let mean = CollapseAwareCrossEntropyConfig::new().init::<B>(device);
    let mean_loss = scalar(mean.forward(z.clone(), t.clone()));
    assert_close(mean_loss, mean_ref, 1e-5, "mean reduction");
    let sum = CollapseAwareCrossEntropyConfig::new().with_reduction(LossReduction::Sum);
    let sum_loss = scalar(sum.init::<B>(device).forward(z.clone(), t.clone()));
    assert_close(sum_loss, mean_ref * N as f64, 1e-5, "sum reduction");

    // [2, 3, K] tokens are the same rows as [6, K].
    let loss_3d = mean.forward_3d(
        z.clone().reshape([2, N / 2, K]),
        t.clone().reshape([2, N / 2]),
    );
    assert_close(scalar(loss_3d), mean_loss, 1e-6, "forward_3d");

    // The f64 loss on this backend, or the typed error that says what to use instead.
    let f64_loss = CollapseAwareCrossEntropyConfig::new()
        .with_precision(LossPrecision::F64)
        .with_zero_sum_projection(true)
        .init::<B>(device)
        .try_forward(z, t);
    match f64_loss {
        Ok(_) if !has_f64::<B>(device) => panic!("f64 loss on {}: no error", B::name(device)),
        Ok(loss) => assert_close(scalar(loss), mean_ref, 1e-6, "f64 loss"),
        Err(LossError::UnsupportedPrecision { .. }) if !has_f64::<B>(device) => {}
        Err(e) => panic!("f64 loss on {}: {e}", B::name(device)),
    }
}

/// burn's `pad_tokens`, `weights` and `smoothing`.
type BurnOptions = (Option<Vec<usize>>, Option<Vec<f32>>, Option<f32>);

/// `pad_tokens`, class `weights` and `smoothing` give the values of burn's
/// `CrossEntropyLoss` (computed on burn-ndarray in f64: burn's own loss fails on candle with
/// pads and smoothing, a burn-candle `bool_repeat_dim` bug).
fn loss_like_burn<B: Backend>(device: &B::Device) {
    let z = floats::<B, 2>([N, K], 2, 2.5, device);
    let t = ints::<B>(&TARGETS, device);
    let cases: [BurnOptions; 4] = [
        (Some(vec![2]), None, None),
        (None, Some(vec![1.0, 2.0, 0.5]), None),
        (Some(vec![1]), None, Some(0.1)),
        (Some(vec![2]), Some(vec![1.0, 2.0, 0.5]), Some(0.2)),
    ];
    for (pad_tokens, weights, smoothing) in cases {
        let what = format!("pad {pad_tokens:?}, weights {weights:?}, smoothing {smoothing:?}");
        let burn_loss = burn_reference(
            &host(z.clone()),
            CrossEntropyLossConfig::new()
                .with_pad_tokens(pad_tokens.clone())
                .with_weights(weights.clone())
                .with_smoothing(smoothing),
        );
        let ours = CollapseAwareCrossEntropyConfig::new()
            .with_pad_tokens(pad_tokens)
            .with_weights(weights)
            .with_smoothing(smoothing)
            .init::<B>(device)
            .forward(z.clone(), t.clone());
        assert_close(scalar(ours), burn_loss, 1e-5, &what);
    }
}

/// burn's `CrossEntropyLoss` on burn-ndarray in f64 (one monomorphization for all backends).
fn burn_reference(z: &[f64], config: CrossEntropyLossConfig) -> f64 {
    type Reference = burn_ndarray::NdArray<f64>;
    let device = Default::default();
    let z = Tensor::<Reference, 2>::from_data(TensorData::new(z.to_vec(), [N, K]), &device);
    let t = ints::<Reference>(&TARGETS, &device);
    scalar(config.init::<Reference>(&device).forward(z, t))
}

/// Every `HeadNorm`, `CenteredLinear`'s zero-sum logits, and `remove_class_mean` / `mu_loss`.
fn heads_and_mean_removal<B: Backend>(device: &B::Device) {
    let h = floats::<B, 2>([N, WIDTH], 3, 1.0, device);
    for norm in [
        HeadNorm::None,
        HeadNorm::Centering,
        HeadNorm::BatchNorm,
        HeadNorm::LayerNorm,
    ] {
        let head = ClassifierHeadConfig::new(WIDTH, K)
            .with_norm(norm)
            .init::<B>(device);
        let logits = head.forward(h.clone());
        assert_eq!(logits.dims(), [N, K]);
        assert!(host(logits).iter().all(|x| x.is_finite()), "{norm:?}");
    }

    // A centered classifier's logits sum to zero over the classes of each row.
    let centered = CenteredLinearConfig::new(WIDTH, K).init::<B>(device);
    let row_sums = host(centered.forward(h.clone()).sum_dim(1));
    assert!(row_sums.iter().all(|s| s.abs() < 1e-5), "{row_sums:?}");
    assert!(scalar(centered.class_mean().abs().sum()) > 0.0);

    // Mean removal zeroes W_G (and the mu-loss) and leaves the loss unchanged.
    let linear = LinearConfig::new(WIDTH, K).init::<B>(device);
    let t = ints::<B>(&TARGETS, device);
    let loss_fn = CollapseAwareCrossEntropyConfig::new().init::<B>(device);
    let before = scalar(loss_fn.forward(linear.forward(h.clone()), t.clone()));
    assert!(scalar(mu_loss(&linear, 1.0)) > 0.0);
    let linear = remove_class_mean(linear);
    let after = scalar(loss_fn.forward(linear.forward(h), t));
    assert_close(after, before, 1e-5, "loss after remove_class_mean");
    assert!(scalar(class_mean(&linear).abs().max()) < 1e-6);
    assert!(scalar(mu_loss(&linear, 1.0)) < 1e-12);
}

/// `clamp_logit_margin` and `NfiDiagnostics`.
fn diagnostics_and_clamp<B: Backend>(device: &B::Device) {
    let z = Tensor::<B, 2>::from_data(
        TensorData::new(vec![10.0f32, 0.0, -50.0, 1.0, 2.0, 3.0], [2, 3]),
        device,
    );
    let clamped = host(clamp_logit_margin(z, 20.0));
    assert_eq!(clamped, vec![10.0, 0.0, -10.0, 1.0, 2.0, 3.0]);

    let h = floats::<B, 2>([N, WIDTH], 4, 1.0, device);
    let linear = LinearConfig::new(WIDTH, K).init::<B>(device);
    let nfi = NfiDiagnostics::try_new(
        linear.weight.val(),
        linear.bias.as_ref().map(|b| b.val()),
        h.clone(),
        ints::<B>(&TARGETS, device),
    )
    .expect("diagnostics")
    .summary();
    let w_g = host(class_mean(&linear));
    let w_g_norm = w_g.iter().map(|x| x * x).sum::<f64>().sqrt();
    assert_close(nfi.w_g_norm, w_g_norm, 1e-5, "||W_G||");
    let max_logit = host(linear.forward(h).max())[0];
    assert_close(nfi.max_logit, max_logit, 1e-5, "max logit");
    assert!(nfi.weight_norm >= nfi.centered_weight_norm && nfi.cos_wg_mug.abs() <= 1.0 + 1e-6);
    assert!(
        nfi.nc1.is_finite() && nfi.nc2.is_finite() && nfi.nc3.is_finite(),
        "{nfi:?}"
    );
}

/// `orthogonalize` (OrthoGrad's projection, accumulated in f64): perpendicular to the weights,
/// with the gradient's norm.
fn orthogonal_gradient<B: Backend>(device: &B::Device) {
    let w = floats::<B, 2>([WIDTH, K], 6, 1.0, device);
    let g = floats::<B, 2>([WIDTH, K], 7, 0.1, device);
    let r = host(orthogonalize(w.clone(), g.clone()));
    let (w, g) = (host(w), host(g));
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let (w_norm, g_norm, r_norm) = (dot(&w, &w).sqrt(), dot(&g, &g).sqrt(), dot(&r, &r).sqrt());
    assert!(
        dot(&w, &g).abs() > 1e-3 * w_norm * g_norm,
        "g must not be orthogonal already"
    );
    assert!(
        dot(&w, &r).abs() <= 1e-5 * w_norm * r_norm,
        "w.r = {}",
        dot(&w, &r)
    );
    assert_close(r_norm, g_norm, 1e-5, "||orthogonalize(w, g)||");
}

// ---------------------------------------------------------------------------------------------
// Training: `B: AutodiffBackend`.

/// Every training primitive on `B`.
fn train_step<B: AutodiffBackend>(device: &B::Device) {
    collapse_gradients::<B>(device);
    train::<B>(device);
}

/// A crafted batch: row 0 is collapsed in f32 (margin 20 > 16.6), row 1 is not.
fn collapse_batch<B: AutodiffBackend>(device: &B::Device) -> (Tensor<B, 2>, Tensor<B, 1, Int>) {
    let z = Tensor::<B, 2>::from_data(
        TensorData::new(vec![20.0f32, 0.0, 0.0, 1.0, 0.0, 0.0], [2, 3]),
        device,
    );
    (z.require_grad(), ints::<B>(&[0, 0], device))
}

/// The loss's gradient under collapse: exactly 0 for the collapsed row's correct class in f32,
/// not in f64, and zero-sum rows with the projection.
fn collapse_gradients<B: AutodiffBackend>(device: &B::Device) {
    let config = CollapseAwareCrossEntropyConfig::new().with_precision(LossPrecision::F32);
    let (z, t) = collapse_batch::<B>(device);
    let out = config.init::<B>(device).forward_with_stats(z.clone(), t);
    let summary = out.stats.summary();
    assert_eq!(summary.collapsed_fraction, 0.5, "{summary:?}");
    assert_eq!(summary.zero_loss_fraction, 0.5, "{summary:?}");
    let g = host(z.grad(&out.loss.backward()).expect("gradient"));
    assert_eq!(g[0], 0.0, "collapsed row's correct class: {g:?}");
    assert!(g[1] > 0.0 && g[2] > 0.0 && g[3] < 0.0, "{g:?}");

    let (z, t) = collapse_batch::<B>(device);
    let projected = config
        .clone()
        .with_zero_sum_projection(true)
        .init::<B>(device);
    let g = host(
        z.grad(&projected.forward(z.clone(), t).backward())
            .expect("gradient"),
    );
    assert!(
        g[0] < 0.0,
        "the projection gives the correct class a gradient: {g:?}"
    );
    for row in g.chunks(K) {
        let scale = row.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        assert!(row.iter().sum::<f64>().abs() <= 1e-6 * scale, "{g:?}");
    }

    let (z, t) = collapse_batch::<B>(device);
    let f64_loss = config.with_precision(LossPrecision::F64).init::<B>(device);
    match f64_loss.try_forward_with_stats(z.clone(), t) {
        Ok(_) if !has_f64::<B>(device) => panic!("f64 loss on {}: no error", B::name(device)),
        Ok(out) => {
            assert_eq!(out.stats.summary().collapsed_fraction, 0.0);
            let g = host(z.grad(&out.loss.backward()).expect("gradient"));
            assert!(g[0] < 0.0, "no collapse at margin 20 in f64: {g:?}");
        }
        Err(LossError::UnsupportedPrecision { .. }) if !has_f64::<B>(device) => {}
        Err(e) => panic!("f64 loss on {}: {e}", B::name(device)),
    }
}

/// Adam (probed) under OrthoGrad inside a switch to SGD, with global-norm clipping, the
/// mu-loss, post-step mean removal and a spike detector fed from the probe.
fn train<B: AutodiffBackend>(device: &B::Device) {
    B::seed(device, 7);
    let x = floats::<B, 2>([N, D_IN], 5, 1.0, device);
    let y = ints::<B>(&TARGETS, device);
    let mut model = Net::<B>::new(device);
    let loss_fn = CollapseAwareCrossEntropyConfig::new().init::<B>(device);
    let adam: ProbedAdam<Net<B>, B> = ProbedAdamConfig::new().with_epsilon(1e-8).init();
    let mut optim = SwitchOptimizer::new(OrthoGrad::new(adam), SgdConfig::new().init());
    let mut detector = SpikeDetector::try_new(SpikeDetectorConfig {
        window: 4,
        warmup: 1,
        ..SpikeDetectorConfig::default()
    })
    .expect("detector");
    let mut losses = Vec::new();
    for step in 0..STEPS {
        let (_, logits) = model.forward(x.clone());
        let out = loss_fn.forward_with_stats(logits, y.clone());
        assert_eq!(out.stats.summary().collapsed_fraction, 0.0);
        let loss = out.loss + mu_loss(&model.head.linear, 1e-3);
        losses.push(scalar(loss.clone()));
        assert!(detector.observe_loss(step, losses[step as usize]).is_none());
        let grads = clipped(&model, GradientsParams::from_grads(loss.backward(), &model));
        model = optim.step(LR, model, grads);
        model.head.linear = remove_class_mean(model.head.linear);
        let report = optim.first().inner().probe().expect("probe").read();
        assert_eq!(
            (report.step, report.model.numel),
            (step + 1, model.num_params())
        );
        let update = report.model.update;
        assert!(update.mean > 0.0 && update.max.is_finite(), "{update:?}");
        // Adam's first step moves each entry by `lr |g| / (|g| + eps)`: at most `lr`.
        assert!(step > 0 || update.max <= LR * (1.0 + 1e-5), "{update:?}");
        assert!(report.model.effective_lr.max <= report.model.effective_lr.ceiling);
        assert!(detector.observe_update(step, update.mean).is_none());
    }
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(
        losses[STEPS as usize - 1] < losses[0],
        "no decrease: {losses:?}"
    );
    let spike = detector
        .observe_loss(STEPS, 100.0 * losses[0])
        .expect("a loss spike");
    let lowest = losses.iter().copied().fold(f64::INFINITY, f64::min);
    assert_eq!((spike.kind, spike.reference), (SpikeKind::Loss, lowest));
    sgd_phase(model, optim, &loss_fn, &x, &y);
}

/// Global-norm clipping to `MAX_NORM`, checked against the norm after clipping.
fn clipped<B: AutodiffBackend>(model: &Net<B>, grads: GradientsParams) -> GradientsParams {
    let (grads, norm) = clip_grad_norm(model, grads, MAX_NORM).expect("clip");
    let before = scalar(norm.expect("gradients"));
    let after = scalar(global_grad_norm(model, &grads).expect("gradients"));
    assert!(before.is_finite() && before > 0.0, "{before}");
    assert_close(after, before.min(MAX_NORM), 1e-4, "clipped norm");
    grads
}

/// After the switch, SGD steps the model, and the diagnostics see `W_G = 0`.
fn sgd_phase<B: AutodiffBackend, A: Optimizer<Net<B>, B>, G: Optimizer<Net<B>, B>>(
    mut model: Net<B>,
    mut optim: SwitchOptimizer<A, G>,
    loss_fn: &CollapseAwareCrossEntropy<B>,
    x: &Tensor<B, 2>,
    y: &Tensor<B, 1, Int>,
) {
    optim.switch();
    assert!(optim.is_switched());
    let before = host(model.backbone.weight.val());
    let loss = loss_fn.forward(model.forward(x.clone()).1, y.clone());
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    model = optim.step(LR, model, grads);
    model.head.linear = remove_class_mean(model.head.linear);
    assert_ne!(
        host(model.backbone.weight.val()),
        before,
        "SGD did not step"
    );

    let (h, _) = model.forward(x.clone());
    let linear = &model.head.linear;
    let nfi = NfiDiagnostics::try_new(
        linear.weight.val(),
        linear.bias.as_ref().map(|b| b.val()),
        model.head.normalized(h),
        y.clone(),
    )
    .expect("diagnostics")
    .summary();
    assert!(nfi.w_g_norm < 1e-5, "{nfi:?}");
    assert_close(
        nfi.centered_weight_norm,
        nfi.weight_norm,
        1e-5,
        "||W*|| = ||W||",
    );
}

// ---------------------------------------------------------------------------------------------
// The backends.

/// Per CPU backend: the forward-only test on the backend, the training test under `Autodiff`.
macro_rules! cpu_backend {
    ($name:ident, $backend:ty) => {
        mod $name {
            use super::*;

            #[test]
            fn forward() {
                forward_only::<$backend>(&Default::default());
            }

            #[test]
            fn train() {
                train_step::<Autodiff<$backend>>(&Default::default());
            }
        }
    };
}

cpu_backend!(ndarray, burn_ndarray::NdArray);
cpu_backend!(ndarray_f64, burn_ndarray::NdArray<f64>);
cpu_backend!(flex, burn_flex::Flex);

// burn-candle is deprecated in burn 0.21, but shipped, and users still run it.
#[allow(deprecated)]
type Candle = burn_candle::Candle;

cpu_backend!(candle, Candle);

/// Whether a tensor can be made and read on `B`'s default device (a wgpu adapter, a CUDA
/// device); prints why the test is skipped when not.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn available<B: Backend>(what: &str) -> bool {
    let ok = std::panic::catch_unwind(|| {
        let device = Default::default();
        Tensor::<B, 1>::from_floats([1.0, 2.0], &device)
            .sum()
            .into_scalar()
    })
    .is_ok();
    if !ok {
        eprintln!("skipped: no {what}");
    }
    ok
}

/// burn-wgpu without fusion (`CubeBackend`, this workspace's `Wgpu`) and with it. WGSL has no
/// f64: the f64 loss must return `LossError::UnsupportedPrecision` there.
#[cfg(feature = "wgpu")]
mod wgpu {
    use super::*;
    use burn_fusion::Fusion;
    use burn_wgpu::Wgpu;

    #[test]
    fn wgpu() {
        if available::<Wgpu>("wgpu adapter") {
            forward_only::<Wgpu>(&Default::default());
            train_step::<Autodiff<Wgpu>>(&Default::default());
        }
    }

    #[test]
    fn wgpu_fusion() {
        if available::<Fusion<Wgpu>>("wgpu adapter") {
            forward_only::<Fusion<Wgpu>>(&Default::default());
            train_step::<Autodiff<Fusion<Wgpu>>>(&Default::default());
        }
    }
}

/// burn-cuda without fusion (`CubeBackend`, this workspace's `Cuda`) and with it: compiled
/// always, run where a CUDA device initialises.
#[cfg(feature = "cuda")]
mod cuda {
    use super::*;
    use burn_cuda::Cuda;
    use burn_fusion::Fusion;

    #[test]
    fn cuda_instantiates() {
        let _ = forward_only::<Cuda>;
        let _ = train_step::<Autodiff<Cuda>>;
        let _ = forward_only::<Fusion<Cuda>>;
        let _ = train_step::<Autodiff<Fusion<Cuda>>>;
    }

    #[test]
    fn cuda() {
        if available::<Cuda>("CUDA device") {
            forward_only::<Cuda>(&Default::default());
            train_step::<Autodiff<Cuda>>(&Default::default());
        }
    }

    #[test]
    fn cuda_fusion() {
        if available::<Fusion<Cuda>>("CUDA device") {
            forward_only::<Fusion<Cuda>>(&Default::default());
            train_step::<Autodiff<Fusion<Cuda>>>(&Default::default());
        }
    }
}
