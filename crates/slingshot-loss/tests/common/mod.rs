//! Shared helpers: run the loss on ndarray and read everything back.

#![allow(dead_code)]

pub mod compare;

use burn::backend::Autodiff;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use burn_ndarray::NdArray;
use slingshot_loss::{CollapseAwareCrossEntropyConfig, CollapseSummary, LossReduction};

/// f32 model, autodiff.
pub type Ad32 = Autodiff<NdArray<f32>>;
/// f64 model, autodiff.
pub type Ad64 = Autodiff<NdArray<f64>>;

/// Everything one forward + backward produced, on the host.
#[derive(Debug, Clone)]
pub struct Run {
    pub loss: Vec<f64>,
    pub grad: Vec<f64>,
    pub collapsed: Vec<bool>,
    pub summary: Option<CollapseSummary>,
}

/// Forward on `rows` x `k` logits, then backward from `loss.sum()` (upstream 1 per loss value).
pub fn run<B: AutodiffBackend>(
    config: &CollapseAwareCrossEntropyConfig,
    logits: &[f64],
    k: usize,
    targets: &[usize],
) -> Run {
    let device = Default::default();
    let (z, t) = inputs::<B>(logits, k, targets);
    let z = z.require_grad();
    let out = config.init::<B>(&device).forward_with_stats(z.clone(), t);
    let summary = Some(out.stats.summary());
    let collapsed = flags(out.stats.collapsed.clone());
    let loss = to_f64(out.loss.clone().inner());
    let grads = out.loss.sum().backward();
    let grad = to_f64(z.grad(&grads).expect("gradient"));
    Run {
        loss,
        grad,
        collapsed,
        summary,
    }
}

/// `logits` as an `[n, k]` tensor in the backend's own float dtype, and the targets.
pub fn inputs<B: Backend>(
    logits: &[f64],
    k: usize,
    targets: &[usize],
) -> (Tensor<B, 2>, Tensor<B, 1, Int>) {
    let device = Default::default();
    let n = targets.len();
    // The backend's own float dtype, explicitly: burn 0.21's `from_data(.., &device)` uses a
    // process-wide default per device type, shared by NdArray<f32> and NdArray<f64>, so
    // whichever backend a process touches first would decide it.
    let dtype = <B::FloatElem as burn::tensor::Element>::dtype();
    let z = Tensor::<B, 2>::from_data(TensorData::new(logits.to_vec(), [n, k]), (&device, dtype));
    let t = Tensor::<B, 1, Int>::from_data(
        TensorData::new(targets.iter().map(|&t| t as i64).collect::<Vec<_>>(), [n]),
        &device,
    );
    (z, t)
}

/// A mask on the host. Through integers: CubeCL backends store booleans as u8 or u32, which
/// `to_vec::<bool>` does not read.
pub fn flags<B: Backend>(t: Tensor<B, 1, burn::tensor::Bool>) -> Vec<bool> {
    t.int()
        .into_data()
        .convert::<i64>()
        .to_vec::<i64>()
        .unwrap()
        .into_iter()
        .map(|v| v != 0)
        .collect()
}

pub fn to_f64<B: burn::tensor::backend::Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f64> {
    t.into_data().convert::<f64>().to_vec::<f64>().unwrap()
}

/// Per-row losses (reduction None), the rest at defaults.
pub fn per_row() -> CollapseAwareCrossEntropyConfig {
    CollapseAwareCrossEntropyConfig::new().with_reduction(LossReduction::None)
}

/// Unit roundoff of f32.
pub const U32: f64 = 5.960_464_477_539_063e-8;
