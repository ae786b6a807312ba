//! slingshot-nn on ndarray: invariances of the centered classifier and mean removal, the heads,
//! and the diagnostics on constructed geometry and against an f64 reference.

use burn::backend::Autodiff;
use burn::module::Module;
use burn::nn::LinearConfig;
use burn::tensor::{DType, Int, Tensor, TensorData};
use burn_ndarray::NdArray;
use proptest::prelude::*;
use slingshot_nn::{
    CenteredLinearConfig, ClassifierHeadConfig, FeatureCentering, HeadNorm, NfiDiagnostics,
    NnError, clamp_logit_margin, class_mean, mu_loss, remove_class_mean, try_clamp_logit_margin,
    try_mu_loss,
};

type B = NdArray<f32>;
type Ad = Autodiff<NdArray<f32>>;

fn tensor2<Bk: burn::tensor::backend::Backend>(v: &[f32], shape: [usize; 2]) -> Tensor<Bk, 2> {
    Tensor::from_data(
        TensorData::new(v.to_vec(), shape),
        (&Default::default(), DType::F32),
    )
}

fn host(t: Tensor<impl burn::tensor::backend::Backend, 2>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn centered_logits_ignore_a_shift_of_every_class() {
    let device = Default::default();
    let layer = CenteredLinearConfig::new(6, 4).init::<B>(&device);
    let x = tensor2::<B>(
        &(0..18).map(|i| (i as f32 * 0.37).sin()).collect::<Vec<_>>(),
        [3, 6],
    );
    let before = host(layer.forward(x.clone()));
    // Add the same vector to every class's weights (every column of burn's [d_in, d_out]).
    let shift = tensor2::<B>(&[0.5, -1.0, 2.0, 0.25, -0.75, 1.5], [6, 1]);
    let shifted = slingshot_nn::CenteredLinear {
        linear: burn::nn::Linear {
            weight: layer.linear.weight.clone().map(|w| w + shift.clone()),
            bias: layer.linear.bias.clone().map(|b| b.map(|b| b + 3.0)),
        },
    };
    let after = host(shifted.forward(x));
    // Equal up to the rounding of the mean subtraction: a few ulps of values of order 1.
    assert!(max_abs(&before, &after) < 1e-5, "{before:?} vs {after:?}");
}

#[test]
fn the_class_mean_of_a_centered_classifier_gets_no_gradient() {
    let device = Default::default();
    let layer = CenteredLinearConfig::new(5, 3).init::<Ad>(&device);
    let x = tensor2::<Ad>(
        &(0..10).map(|i| (i as f32 * 0.61).cos()).collect::<Vec<_>>(),
        [2, 5],
    );
    let loss = layer.forward(x).powi_scalar(2).sum();
    let grads = loss.backward();
    let g = layer.linear.weight.grad(&grads).unwrap(); // [5, 3]
    let per_input = host(g.clone().sum_dim(1)); // sum over classes
    let scale = host(g).iter().fold(0.0f32, |a, &b| a.max(b.abs()));
    assert!(scale > 0.0);
    for s in per_input {
        assert!(
            s.abs() <= 4.0 * f32::EPSILON * scale,
            "{s} vs scale {scale}"
        );
    }
}

#[test]
fn post_step_mean_removal_keeps_the_softmax_and_parameter_ids() {
    let device = Default::default();
    let linear = LinearConfig::new(4, 3).init::<Ad>(&device);
    // Move the class mean off zero, as training would, keeping the weight a trainable leaf.
    let linear = burn::nn::Linear {
        weight: linear.weight.map(|w| (w + 2.0).detach().require_grad()),
        bias: linear.bias,
    };
    assert!(linear.weight.val().is_require_grad());
    let id = linear.weight.id;
    let x = tensor2::<Ad>(&[0.3, -1.2, 0.8, 2.0, 1.0, 0.0, -0.5, 0.25], [2, 4]);
    let before = host(linear.forward(x.clone()));
    let centered = remove_class_mean(linear);
    assert_eq!(centered.weight.id, id);
    assert!(centered.weight.val().is_require_grad());
    let after = host(centered.forward(x));
    // Each row's logits all move by the same x.W_G + mean(b): the softmax does not change.
    let row_centered = |v: &[f32]| -> Vec<f32> {
        v.chunks(3)
            .flat_map(|r| {
                let m = r.iter().sum::<f32>() / 3.0;
                r.iter().map(move |x| x - m)
            })
            .collect()
    };
    assert!(
        max_abs(&before, &after) > 1.0,
        "the logits themselves do move"
    );
    assert!(max_abs(&row_centered(&before), &row_centered(&after)) < 1e-5);
    let w_g = class_mean(&centered).into_data().to_vec::<f32>().unwrap();
    assert!(w_g.iter().all(|v| v.abs() < 1e-6), "{w_g:?}");
}

#[test]
fn mu_loss_is_gamma_times_the_squared_class_mean() {
    let device = Default::default();
    let linear = LinearConfig::new(2, 2).init::<B>(&device);
    let linear = burn::nn::Linear {
        weight: linear
            .weight
            .map(|_| tensor2::<B>(&[1.0, 3.0, -2.0, 0.0], [2, 2])),
        bias: linear.bias,
    };
    // W_G = [2, -1], ||W_G||^2 = 5
    assert_eq!(mu_loss(&linear, 0.1).into_scalar(), 0.5);
    assert_eq!(
        try_mu_loss(&linear, -1.0).unwrap_err(),
        NnError::InvalidGamma(-1.0)
    );
    assert!(try_mu_loss(&linear, f64::NAN).is_err());
}

#[test]
fn heads_normalize_as_named() {
    let device = Default::default();
    let x = tensor2::<Ad>(
        &(0..24).map(|i| i as f32 * 0.5 + 3.0).collect::<Vec<_>>(),
        [4, 6],
    );
    let centered = host(FeatureCentering.forward(x.clone()).mean_dim(0));
    assert!(centered.iter().all(|v| v.abs() < 1e-5));
    for norm in [
        HeadNorm::None,
        HeadNorm::Centering,
        HeadNorm::BatchNorm,
        HeadNorm::LayerNorm,
    ] {
        let head = ClassifierHeadConfig::new(6, 3)
            .with_norm(norm)
            .init::<Ad>(&device);
        assert_eq!(head.forward(x.clone()).dims(), [4, 3]);
        let features = head.normalized(x.clone());
        let batch_means = host(features.clone().mean_dim(0));
        let row_means = host(features.mean_dim(1));
        match norm {
            // BatchNorm in training mode and centering remove the batch mean...
            HeadNorm::Centering | HeadNorm::BatchNorm => {
                assert!(
                    batch_means.iter().all(|v| v.abs() < 1e-4),
                    "{norm:?}: {batch_means:?}"
                )
            }
            // ...LayerNorm removes each sample's own mean instead, not the batch direction.
            HeadNorm::LayerNorm => {
                assert!(row_means.iter().all(|v| v.abs() < 1e-4));
                assert!(batch_means.iter().any(|v| v.abs() > 0.1));
            }
            HeadNorm::None => assert!(batch_means.iter().all(|v| *v > 3.0)),
        }
    }
    assert_eq!(
        ClassifierHeadConfig::new(0, 3)
            .try_init::<B>(&device)
            .unwrap_err(),
        NnError::ZeroSized { what: "d_input" }
    );
    assert_eq!(
        CenteredLinearConfig::new(4, 1)
            .try_init::<B>(&device)
            .unwrap_err(),
        NnError::TooFewClasses { classes: 1 }
    );
}

/// K classes in d = K + 1 dimensions: class means `c (e_k - 1/K)` (a simplex ETF) plus a
/// global mean `g e_{K+1}`; weights `a (e_k - 1/K) - w e_{K+1}`: anti-parallel `W_G` and `mu_G`.
fn etf_geometry(k: usize, per_class: usize) -> (Vec<f32>, Vec<f32>, Vec<i64>) {
    let d = k + 1;
    let (a, c, g, w) = (2.0f32, 3.0f32, 5.0f32, 0.5f32);
    let mut weight = vec![0.0f32; d * k]; // [d, k], class j in column j
    for j in 0..k {
        for i in 0..k {
            weight[i * k + j] = a * ((i == j) as u8 as f32 - 1.0 / k as f32);
        }
        weight[k * k + j] = -w;
    }
    let mut features = Vec::new();
    let mut labels = Vec::new();
    for j in 0..k {
        for _ in 0..per_class {
            for i in 0..k {
                features.push(c * ((i == j) as u8 as f32 - 1.0 / k as f32));
            }
            features.push(g);
            labels.push(j as i64);
        }
    }
    (weight, features, labels)
}

#[test]
fn diagnostics_of_an_etf_with_anti_parallel_means() {
    let k = 5;
    let (weight, features, labels) = etf_geometry(k, 3);
    let n = labels.len();
    let device = Default::default();
    let s = NfiDiagnostics::<B>::try_new(
        tensor2(&weight, [k + 1, k]),
        None,
        tensor2(&features, [n, k + 1]),
        Tensor::<B, 1, Int>::from_data(TensorData::new(labels, [n]), &device),
    )
    .unwrap()
    .summary();
    assert!((s.cos_wg_mug + 1.0).abs() < 1e-6, "{s:?}");
    assert!((s.w_g_norm - 0.5).abs() < 1e-6);
    assert!((s.mu_g_norm - 5.0).abs() < 1e-5);
    assert!(s.nc1.abs() < 1e-6, "{s:?}");
    assert!(s.nc2.abs() < 1e-5, "{s:?}");
    assert!(s.nc3.abs() < 1e-5, "{s:?}");
    // The logit of the label is a c (1 - 1/K) - w g; the others a c (-1/K) - w g.
    assert!((s.max_logit - (2.0 * 3.0 * 0.8 - 2.5)).abs() < 1e-5);
}

/// The same quantities in f64 on the host, straight from the definitions.
fn reference(weight: &[f32], d: usize, k: usize, features: &[f32], labels: &[i64]) -> [f64; 10] {
    let n = labels.len();
    let w = |i: usize, j: usize| weight[i * k + j] as f64;
    let h = |s: usize, i: usize| features[s * d + i] as f64;
    let w_g: Vec<f64> = (0..d)
        .map(|i| (0..k).map(|j| w(i, j)).sum::<f64>() / k as f64)
        .collect();
    let mu: Vec<f64> = (0..d)
        .map(|i| (0..n).map(|s| h(s, i)).sum::<f64>() / n as f64)
        .collect();
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let w_star: Vec<f64> = (0..d * k)
        .map(|ij| w(ij / k, ij % k) - w_g[ij / k])
        .collect();
    let logits: Vec<f64> = (0..n * k)
        .map(|sj| (0..d).map(|i| h(sj / k, i) * w(i, sj % k)).sum())
        .collect();
    let mut means = vec![0.0; k * d];
    let mut counts = vec![0.0; k];
    for (s, &l) in labels.iter().enumerate() {
        counts[l as usize] += 1.0;
        for i in 0..d {
            means[l as usize * d + i] += h(s, i);
        }
    }
    for j in 0..k {
        for i in 0..d {
            means[j * d + i] /= counts[j];
        }
    }
    let within: f64 = (0..n)
        .map(|s| {
            (0..d)
                .map(|i| (h(s, i) - means[labels[s] as usize * d + i]).powi(2))
                .sum::<f64>()
        })
        .sum::<f64>()
        / n as f64;
    let cm: Vec<f64> = (0..k * d).map(|ji| means[ji] - mu[ji % d]).collect();
    let between = cm.iter().map(|x| x * x).sum::<f64>() / k as f64;
    let gram: Vec<f64> = (0..k * k)
        .map(|pq| {
            dot(
                &cm[(pq / k) * d..(pq / k + 1) * d],
                &cm[(pq % k) * d..(pq % k + 1) * d],
            )
        })
        .collect();
    let gn = norm(&gram);
    let nc2 = (0..k * k)
        .map(|pq| {
            let e = ((pq / k == pq % k) as u8 as f64 - 1.0 / k as f64) / ((k - 1) as f64).sqrt();
            (gram[pq] / gn - e).powi(2)
        })
        .sum::<f64>()
        .sqrt();
    let (wn, cn) = (norm(&w_star), norm(&cm));
    let nc3 = (0..k * d)
        .map(|ji| (w_star[(ji % d) * k + ji / d] / wn - cm[ji] / cn).powi(2))
        .sum::<f64>()
        .sqrt();
    [
        norm(&w_g),
        norm(&mu),
        dot(&w_g, &mu) / (norm(&w_g) * norm(&mu)),
        wn,
        norm(&weight.iter().map(|&x| x as f64).collect::<Vec<_>>()),
        logits.iter().sum::<f64>() / logits.len() as f64,
        logits.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        within / between,
        nc2,
        nc3,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Random classifiers and features: every value within 1e-4 relative (or 1e-5 absolute)
    /// of the f64 reference; f32 reductions over at most a few hundred terms.
    #[test]
    fn diagnostics_match_an_f64_reference(
        (d, k, per_class) in (1usize..12, 2usize..8, 1usize..6),
        seed in any::<u64>(),
    ) {
        let n = k * per_class;
        let mut state = seed;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        };
        let weight: Vec<f32> = (0..d * k).map(|_| next()).collect();
        let features: Vec<f32> = (0..n * d).map(|_| next() + 0.3).collect();
        let labels: Vec<i64> = (0..n).map(|s| (s % k) as i64).collect();
        let s = NfiDiagnostics::<B>::try_new(
            tensor2(&weight, [d, k]),
            None,
            tensor2(&features, [n, d]),
            Tensor::<B, 1, Int>::from_data(TensorData::new(labels.clone(), [n]), &Default::default()),
        )
        .unwrap()
        .summary();
        let got = [s.w_g_norm, s.mu_g_norm, s.cos_wg_mug, s.centered_weight_norm, s.weight_norm,
                   s.mean_logit, s.max_logit, s.nc1, s.nc2, s.nc3];
        let want = reference(&weight, d, k, &features, &labels);
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            // NC1 divides by the between-class spread, which can be tiny for random features.
            let rel = if i == 7 { 1e-3 } else { 1e-4 };
            prop_assert!((g - w).abs() <= rel * w.abs() + 1e-5, "value {}: {} vs {}", i, g, w);
        }

        // The inflation-only values are the same bits, with NaN for NC1-NC3; with a bias too.
        let bias: Vec<f32> = (0..k).map(|_| next()).collect();
        let device = Default::default();
        let build = |inflation: bool| {
            let args = (
                tensor2::<B>(&weight, [d, k]),
                Some(Tensor::<B, 1>::from_data(TensorData::new(bias.clone(), [k]), &device)),
                tensor2::<B>(&features, [n, d]),
                Tensor::<B, 1, Int>::from_data(TensorData::new(labels.clone(), [n]), &device),
            );
            let nfi = if inflation {
                NfiDiagnostics::try_new_inflation(args.0, args.1, args.2, args.3)
            } else {
                NfiDiagnostics::try_new(args.0, args.1, args.2, args.3)
            };
            nfi.unwrap().values.into_data().to_vec::<f32>().unwrap()
        };
        let (full, inflation) = (build(false), build(true));
        prop_assert_eq!(inflation.len(), 10);
        for i in 0..7 {
            prop_assert_eq!(inflation[i].to_bits(), full[i].to_bits(), "value {}", i);
        }
        prop_assert!(inflation[7..].iter().all(|v| v.is_nan()));
    }
}

#[test]
fn diagnostics_reject_mismatched_shapes() {
    let device = Default::default();
    let err = NfiDiagnostics::<B>::try_new(
        tensor2(&[0.0; 6], [3, 2]),
        None,
        tensor2(&[0.0; 8], [2, 4]),
        Tensor::<B, 1, Int>::from_data(TensorData::new(vec![0i64, 1], [2]), &device),
    )
    .unwrap_err();
    assert!(err.to_string().contains("weight [3, 2]"), "{err}");
    // Module derive sanity: the head has the classifier's parameters plus BatchNorm's.
    let head = ClassifierHeadConfig::new(6, 3)
        .with_norm(HeadNorm::BatchNorm)
        .init::<B>(&device);
    assert_eq!(head.num_params(), 6 * 3 + 3 + 4 * 6);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The clamp equals `max(z, f32(rowmax - margin))` computed on the host (exact: one
    /// correctly rounded f32 subtraction), and only unclamped logits pass the gradient.
    #[test]
    fn logit_clamp_matches_the_host_reference(
        rows in prop::collection::vec(prop::collection::vec(-300.0f32..300.0, 5), 1..6),
        margin in prop_oneof![Just(100.0f64), 1.0f64..200.0],
    ) {
        let (n, k) = (rows.len(), 5);
        let flat: Vec<f32> = rows.concat();
        let z = tensor2::<Ad>(&flat, [n, k]).require_grad();
        let clamped = clamp_logit_margin(z.clone(), margin);
        let weights: Vec<f32> = (0..n * k).map(|i| 1.0 + i as f32).collect();
        let grads = (clamped.clone() * tensor2::<Ad>(&weights, [n, k])).sum().backward();
        let got = host(clamped.inner());
        let grad = host(z.grad(&grads).expect("z has a gradient"));
        for (r, row) in rows.iter().enumerate() {
            let floor = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) - margin as f32;
            for (c, &v) in row.iter().enumerate() {
                let i = r * k + c;
                prop_assert_eq!(got[i].to_bits(), v.max(floor).to_bits());
                let want = if v >= floor { weights[i] } else { 0.0 };
                // burn's max_pair passes the gradient to the first argument on ties.
                prop_assert!(grad[i] == want || (v == floor && grad[i] == 0.0),
                    "row {} col {}: grad {} want {}", r, c, grad[i], want);
            }
        }
    }
}

#[test]
fn logit_clamp_keeps_absorption_but_rejects_bad_margins() {
    // A row leading by 30: far inside the clamp, so the f32 softmax sum still absorbs to 1
    // and the correct-class gradient is still exactly zero (why spikes persist in A.1.4).
    let z = tensor2::<Ad>(&[30.0, 0.0, -500.0], [1, 3]).require_grad();
    let clamped = clamp_logit_margin(z.clone(), 100.0);
    assert_eq!(host(clamped.clone().inner()), vec![30.0, 0.0, -70.0]);
    let target =
        Tensor::<Ad, 1, Int>::from_data(TensorData::new(vec![0i64], [1]), &Default::default());
    let loss = burn::nn::loss::CrossEntropyLossConfig::new()
        .init(&Default::default())
        .forward(clamped, target);
    let grad = host(z.grad(&loss.backward()).unwrap());
    assert_eq!(grad[0], 0.0);
    assert!(grad[1] > 0.0);
    assert_eq!(grad[2], 0.0);
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let err = try_clamp_logit_margin(tensor2::<B>(&[1.0, 2.0], [1, 2]), bad).unwrap_err();
        assert!(matches!(err, NnError::InvalidMargin(m) if m.to_bits() == bad.to_bits()));
    }
}

/// The file where `f` panicked. The hook records only this thread's panics and passes the
/// others on, because the tests of this binary run in parallel and share one hook.
fn panic_file(f: impl FnOnce()) -> String {
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

/// The panicking forms carry `#[track_caller]`: their panics name the caller's file, not
/// slingshot-nn's.
#[test]
fn panics_name_the_callers_file() {
    let device = Default::default();
    let linear = LinearConfig::new(3, 2).init::<B>(&device);
    let files = [
        panic_file(|| drop(CenteredLinearConfig::new(3, 1).init::<B>(&device))),
        panic_file(|| drop(ClassifierHeadConfig::new(3, 1).init::<B>(&device))),
        panic_file(|| drop(clamp_logit_margin(tensor2::<B>(&[1.0, 2.0], [1, 2]), 0.0))),
        panic_file(|| drop(mu_loss(&linear, -1.0))),
    ];
    for file in files {
        assert_eq!(file, file!());
    }
}

/// A 16-bit model's diagnostics (burn-flex computes in f16 and bf16): the norms are
/// computed in f32, so features of norm 1,000 (a sum of squares of 1e6, past f16's 65504)
/// give their norm, within f16's rounding of the inputs, not infinity.
#[test]
fn diagnostics_of_a_16_bit_model_do_not_overflow() {
    use burn::tensor::FloatDType;
    type F = burn_flex::Flex;
    let device = Default::default();
    let (d, k, n) = (4, 3, 6);
    // Every feature row is (500, 500, 500, 500): ||mu_G|| = 1000.
    let features = Tensor::<F, 2>::full([n, d], 500.0, &device);
    let weight = Tensor::<F, 2>::from_data(
        TensorData::new(
            (0..d * k).map(|i| i as f32 - 5.0).collect::<Vec<_>>(),
            [d, k],
        ),
        &device,
    );
    let labels =
        Tensor::<F, 1, Int>::from_data(TensorData::new(vec![0i64, 1, 2, 0, 1, 2], [n]), &device);
    let wide =
        NfiDiagnostics::try_new_inflation(weight.clone(), None, features.clone(), labels.clone())
            .unwrap()
            .summary();
    for half in [FloatDType::F16, FloatDType::BF16] {
        let s = NfiDiagnostics::try_new_inflation(
            weight.clone().cast(half),
            None,
            features.clone().cast(half),
            labels.clone(),
        )
        .unwrap()
        .summary();
        assert_eq!(s.mu_g_norm, 1000.0, "{half:?}");
        assert_eq!(s.w_g_norm, wide.w_g_norm, "{half:?}");
        assert!((s.cos_wg_mug - wide.cos_wg_mug).abs() <= 1e-6, "{half:?}");
    }
}
