//! The gradient transforms. Global-norm clipping: the norm against an f64 reference, clipped
//! gradients scaled by PyTorch's coefficient, small ones unchanged to the bit.
//! OrthoGrad: the transformed gradient is orthogonal to the weights and keeps the gradient's
//! norm (checked in f64 on the host), the undefined cases leave the gradient alone, and a
//! wrapped SGD step is `w - lr * g_perp` to the bit.

mod common;

use burn::module::Param;
use burn::optim::{GradientsParams, Optimizer, SgdConfig};
use burn::tensor::Tensor;
use common::{Ad, Inner, Weights, grads_of, host, noise, tensor, weights};
use slingshot_optim::{
    OptimError, OrthoGrad, clip_grad_norm, global_grad_norm, orthogonalize, orthogonalize_grads,
};

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The two properties, in f64 on the host: `|w.g'| / (|w| |g'|) < 1e-6` and
/// `| |g'| - |g| | / |g| < 1e-6` (f32 rounding of the entries is 6e-8 each).
fn check<const D: usize>(w: Tensor<Inner, D>, g: Tensor<Inner, D>) {
    let out = orthogonalize(w.clone(), g.clone());
    let (w, g, out) = (host(w), host(g), host(out));
    let cos = dot(&w, &out).abs() / (dot(&w, &w).sqrt() * dot(&out, &out).sqrt());
    assert!(cos < 1e-6, "cosine {cos}");
    let (norm, norm_out) = (dot(&g, &g).sqrt(), dot(&out, &out).sqrt());
    let rel = (norm_out - norm).abs() / norm;
    assert!(rel < 1e-6, "norm {norm_out} vs {norm}: {rel}");
    // It did change: the random g had a component along w.
    assert!(dot(&w, &g).abs() / (dot(&w, &w).sqrt() * norm) > 1e-3);
}

#[test]
fn orthogonal_to_the_weights_with_the_gradients_norm() {
    // A weight matrix with a gradient correlated to it (as under feature inflation), a bias.
    let w = noise(512 * 97, 1);
    let g: Vec<f32> = noise(512 * 97, 2)
        .iter()
        .zip(&w)
        .map(|(n, w)| 1e-3 * n + 3e-4 * w)
        .collect();
    check(tensor::<Inner, 2>(w, [512, 97]), tensor(g, [512, 97]));
    check(
        tensor::<Inner, 1>(noise(97, 3), [97]),
        tensor(noise(97, 4), [97]),
    );
}

#[test]
fn undefined_projections_leave_the_gradient_unchanged() {
    let g = noise(24, 5);
    let bits = |t: Tensor<Inner, 2>| -> Vec<u32> {
        t.into_data().iter::<f32>().map(f32::to_bits).collect()
    };
    let expected: Vec<u32> = g.iter().map(|x| x.to_bits()).collect();
    // Zero weights: nothing to be perpendicular to.
    let zero_w = orthogonalize(
        tensor::<Inner, 2>(vec![0.0; 24], [4, 6]),
        tensor(g.clone(), [4, 6]),
    );
    assert_eq!(bits(zero_w), expected);
    // A gradient parallel to the weights: its perpendicular part is exactly zero.
    let parallel: Vec<f32> = g.iter().map(|x| 2.0 * x).collect();
    let out = orthogonalize(
        tensor::<Inner, 2>(g.clone(), [4, 6]),
        tensor(parallel.clone(), [4, 6]),
    );
    assert_eq!(
        bits(out),
        parallel.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    );
    // A zero gradient stays zero.
    let zero_g = orthogonalize(tensor::<Inner, 2>(g, [4, 6]), tensor(vec![0.0; 24], [4, 6]));
    assert!(host(zero_g).iter().all(|&x| x == 0.0));
}

#[test]
fn a_wrapped_sgd_step_is_w_minus_lr_times_the_perpendicular_gradient() {
    let model = weights(noise(64, 6), [8, 8]);
    let g: Vec<f32> = noise(64, 7)
        .iter()
        .zip(noise(64, 6))
        .map(|(n, w)| n + 0.5 * w)
        .collect();
    let w = model.w.val().inner();
    let expected = w.clone() - orthogonalize(w, tensor(g.clone(), [8, 8])).mul_scalar(0.1);

    let mut optim = OrthoGrad::new(SgdConfig::new().init::<Ad, Weights<Ad>>());
    let grads = grads_of(&model, &g);
    let stepped = optim.step(0.1, model.clone(), grads);
    let bits = |t: Tensor<Inner, 2>| -> Vec<u32> {
        t.into_data().iter::<f32>().map(f32::to_bits).collect()
    };
    assert_eq!(bits(stepped.w.val().inner()), bits(expected));

    // The gradient transform on its own gives the same projected gradient.
    let projected = orthogonalize_grads(&model, grads_of(&model, &g));
    let id = model.w.id;
    let direct = orthogonalize(model.w.val().inner(), tensor(g, [8, 8]));
    assert_eq!(bits(projected.get::<Inner, 2>(id).unwrap()), bits(direct));
}

#[test]
fn parameters_without_a_gradient_are_left_alone() {
    let model = Weights {
        w: Param::from_tensor(tensor::<Ad, 2>(noise(4, 8), [2, 2])),
    };
    let mut optim = OrthoGrad::new(SgdConfig::new().init::<Ad, Weights<Ad>>());
    let stepped = optim.step(1.0, model.clone(), GradientsParams::new());
    assert_eq!(host(stepped.w.val()), host(model.w.val()));
}

#[test]
fn step_multi_projects_the_summed_gradient() {
    use burn::optim::MultiGradientsParams;
    use burn::tensor::backend::DeviceOps;
    let model = weights(noise(64, 6), [8, 8]);
    let g = noise(64, 9);
    let device: burn::tensor::Device<Ad> = Default::default();
    let mut single = OrthoGrad::new(SgdConfig::new().init::<Ad, Weights<Ad>>());
    let mut multi = single.clone();
    let a = single.step(0.1, model.clone(), grads_of(&model, &g));
    let grads = MultiGradientsParams {
        grads: vec![(grads_of(&model, &g), device.id())],
    };
    let b = multi.step_multi(0.1, model, grads);
    assert_eq!(host(a.w.val()), host(b.w.val()));
}

/// Every gradient of the MLP, in module order, on the host.
fn all_grads(model: &common::Mlp<Ad>, grads: &GradientsParams) -> Vec<Vec<f64>> {
    let mut out = Vec::new();
    for id in common::ids(model) {
        if let Some(g) = grads.get::<Inner, 2>(id) {
            out.push(host(g));
        } else if let Some(g) = grads.get::<Inner, 1>(id) {
            out.push(host(g));
        }
    }
    out
}

#[test]
fn global_norm_clipping_scales_every_gradient_by_pytorchs_coefficient() {
    let model = common::mlp(3);
    let grads = common::mlp_grads(&model, 0);
    let before = all_grads(&model, &grads);
    assert_eq!(before.len(), 4, "two weights and two biases");
    let reference = before.iter().flatten().map(|g| g * g).sum::<f64>().sqrt();
    let norm = host(global_grad_norm(&model, &grads).unwrap())[0];
    assert!(
        (norm - reference).abs() <= 1e-6 * reference,
        "{norm} vs {reference}"
    );

    // Clipped to a quarter of the norm: each entry times max / (norm + 1e-6).
    let max = reference / 4.0;
    let (clipped, reported) = clip_grad_norm(&model, grads, max).unwrap();
    assert_eq!(host(reported.unwrap())[0], norm);
    let after = all_grads(&model, &clipped);
    let coefficient = max / (reference + 1e-6);
    for (b, a) in before.iter().flatten().zip(after.iter().flatten()) {
        assert!((a - b * coefficient).abs() <= 1e-6 * (b * coefficient).abs() + 1e-12);
    }
    let clipped_norm = after.iter().flatten().map(|g| g * g).sum::<f64>().sqrt();
    assert!(
        (clipped_norm - max).abs() <= 1e-5 * max,
        "{clipped_norm} vs {max}"
    );

    // Below the limit nothing changes, to the bit.
    let grads = common::mlp_grads(&model, 0);
    let (unchanged, _) = clip_grad_norm(&model, grads, 10.0 * reference).unwrap();
    assert_eq!(all_grads(&model, &unchanged), before);

    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let grads = common::mlp_grads(&model, 0);
        assert!(matches!(
            clip_grad_norm(&model, grads, bad),
            Err(OptimError::InvalidConfig {
                name: "max_norm",
                ..
            })
        ));
    }
}
