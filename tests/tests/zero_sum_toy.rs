//! A 2-class toy in f32 under softmax collapse (§3.2, §4.1): the classifier's class mean `W_G`
//! drifts when the zero-sum constraint is broken, and stays exactly where it was with the
//! zero-sum projection.
//!
//! Unconstrained features `H` `[4, 3]` and weights `W` `[3, 2]`, both trained by plain gradient
//! descent at lr 1e5 (the effective rate Adam reaches, §4.2). The margins start at 24, beyond
//! f32's absorption threshold: the loss is exactly zero and only the wrong classes have a
//! gradient.

use burn::backend::Autodiff;
use burn::tensor::{DType, Int, Tensor, TensorData};
use burn_ndarray::NdArray;
use slingshot::loss::CollapseAwareCrossEntropyConfig;

type Ad = Autodiff<NdArray<f32>>;

/// `||W_G||` every 50 steps, and the collapsed fraction at the start.
fn train(zero_sum: bool, steps: usize) -> (Vec<f32>, f64) {
    let device = Default::default();
    let f32d = (&device, DType::F32);
    // Class 0 features (s, -s, g), class 1 (-s, s, g): mu_G = (0, 0, g).
    let (s, g, a) = (3.0f32, 1.0f32, 2.0f32);
    let h0 = vec![s, -s, g, s, -s, g, -s, s, g, -s, s, g];
    // W: class 0 = (a, -a, 0), class 1 = (-a, a, 0): W_G = 0 exactly, margins 4 a s = 24.
    let w0 = vec![a, -a, -a, a, 0.0, 0.0];
    let mut h = Tensor::<Ad, 2>::from_data(TensorData::new(h0, [4, 3]), f32d).require_grad();
    let mut w = Tensor::<Ad, 2>::from_data(TensorData::new(w0, [3, 2]), f32d).require_grad();
    let targets =
        Tensor::<Ad, 1, Int>::from_data(TensorData::new(vec![0i64, 0, 1, 1], [4]), &device);
    let loss_fn = CollapseAwareCrossEntropyConfig::new()
        .with_zero_sum_projection(zero_sum)
        .init::<Ad>(&device);
    let lr = 1e5;
    let mut norms = Vec::new();
    let mut first_collapsed = 0.0;
    for step in 0..steps {
        let out = loss_fn.forward(h.clone().matmul(w.clone()), targets.clone());
        if step == 0 {
            first_collapsed = out.stats.as_ref().unwrap().summary().collapsed_fraction;
        }
        let grads = out.loss.backward();
        let (gw, gh) = (w.grad(&grads).unwrap(), h.grad(&grads).unwrap());
        w = Tensor::from_inner(w.inner() - gw * lr).require_grad();
        h = Tensor::from_inner(h.inner() - gh * lr).require_grad();
        if step % 50 == 49 {
            let w_g = w.clone().inner().mean_dim(1);
            norms.push(w_g.powi_scalar(2).sum().sqrt().into_scalar());
        }
    }
    (norms, first_collapsed)
}

#[test]
fn w_g_drifts_under_collapse_and_not_with_zero_sum_projection() {
    let (plain, collapsed) = train(false, 300);
    assert_eq!(collapsed, 1.0, "every row starts in softmax collapse");
    // The broken zero-sum constraint moves W_G off zero and keeps pushing it.
    assert!(plain[0] > 0.0, "{plain:?}");
    assert!(plain.windows(2).all(|p| p[1] > p[0]), "{plain:?}");

    let (projected, _) = train(true, 300);
    // With projection every gradient row sums to exactly zero, so W_G never moves.
    assert!(projected.iter().all(|&n| n == 0.0), "{projected:?}");
}
