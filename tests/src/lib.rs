//! Helpers shared by slingshot's cross-crate integration tests: burn's own ops run on one row
//! of logits, for comparison with the numerics crate's predictions.

use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{DType, Int, Tensor, TensorData};

/// burn's `CrossEntropyLoss` (the framework's own loss) on one row of f32 logits.
#[derive(Debug, Clone, PartialEq)]
pub struct BurnRow {
    /// The loss value.
    pub loss: f32,
    /// `d loss / d logits`.
    pub gradient: Vec<f32>,
}

/// Forward and backward of burn's `CrossEntropyLoss` for `logits` (one row) and `label`.
pub fn burn_cross_entropy<B: AutodiffBackend>(
    device: &B::Device,
    logits: &[f32],
    label: usize,
) -> BurnRow {
    let k = logits.len();
    let z = Tensor::<B, 2>::from_data(
        TensorData::new(logits.to_vec(), [1, k]),
        (device, DType::F32),
    )
    .require_grad();
    let target = Tensor::<B, 1, Int>::from_data(TensorData::new(vec![label as i64], [1]), device);
    let loss = CrossEntropyLossConfig::new()
        .init(device)
        .forward(z.clone(), target);
    let grads = loss.backward();
    let gradient = z
        .grad(&grads)
        .expect("the logits require a gradient")
        .into_data()
        .to_vec::<f32>()
        .expect("f32 gradient");
    let loss = loss.into_data().to_vec::<f32>().expect("f32 loss")[0];
    BurnRow { loss, gradient }
}

/// Whether a CUDA device can be used: initialises it and runs one op, catching the panic that
/// burn-cuda raises when there is no driver or GPU.
#[cfg(feature = "cuda")]
pub fn cuda_available() -> bool {
    use burn_cuda::{Cuda, CudaDevice};
    std::panic::catch_unwind(|| {
        let device = CudaDevice::default();
        let t = Tensor::<Cuda<f32, i32>, 1>::from_floats([1.0, 2.0], &device);
        t.sum().into_scalar()
    })
    .is_ok()
}
