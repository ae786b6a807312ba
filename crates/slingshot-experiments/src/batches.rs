//! The task's tensors on the device, and the rows of each step's batch.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;

use crate::cifar::{IMAGE_BYTES, ImageDataset, ImageSplit};
use crate::config::BatchSize;
use crate::data::{Example, ModularTask, one_hot_rows};
use crate::model::{Inputs, ModelKind};

/// One split's inputs (in the model's form) and labels, on the device.
#[derive(Debug, Clone)]
pub struct Split<B: Backend> {
    /// Inputs of every row.
    pub inputs: Inputs<B>,
    /// Labels `[n]`.
    pub labels: Tensor<B, 1, Int>,
    /// Rows.
    pub len: usize,
}

impl<B: Backend> Split<B> {
    /// Uploads `examples` in the form `kind` reads, floats in the backend's own dtype.
    pub fn new(examples: &[Example], vocab: usize, kind: ModelKind, device: &B::Device) -> Self {
        let n = examples.len();
        let inputs = match kind {
            ModelKind::Mlp => {
                let x: Vec<f32> = one_hot_rows(examples, vocab);
                let dtype = float_dtype::<B>(device);
                Inputs::OneHot(Tensor::from_data(
                    TensorData::new(x, [n, 4 * vocab]).convert_dtype(dtype),
                    (device, dtype),
                ))
            }
            _ => {
                let t: Vec<i64> = examples
                    .iter()
                    .flat_map(|e| e.tokens.map(|t| t as i64))
                    .collect();
                Inputs::Tokens(Tensor::from_data(TensorData::new(t, [n, 4]), device))
            }
        };
        let labels: Vec<i64> = examples.iter().map(|e| e.label as i64).collect();
        Self {
            inputs,
            labels: Tensor::from_data(TensorData::new(labels, [n]), device),
            len: n,
        }
    }

    /// Uploads images `[n, 3, 32, 32]`, pixels in the backend's own dtype.
    pub fn images(split: &ImageSplit, device: &B::Device) -> Self {
        let n = split.len();
        debug_assert_eq!(split.pixels.len(), n * IMAGE_BYTES);
        let dtype = float_dtype::<B>(device);
        let pixels = TensorData::new(split.pixels.clone(), [n, 3, 32, 32]).convert_dtype(dtype);
        let labels: Vec<i64> = split.labels.iter().map(|&l| i64::from(l)).collect();
        Self {
            inputs: Inputs::Images(Tensor::from_data(pixels, (device, dtype))),
            labels: Tensor::from_data(TensorData::new(labels, [n]), device),
            len: n,
        }
    }

    /// The rows `indices` of this split.
    pub fn select(&self, indices: &[usize]) -> (Inputs<B>, Tensor<B, 1, Int>) {
        let device = self.labels.device();
        let idx: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
        let idx = Tensor::<B, 1, Int>::from_data(TensorData::new(idx, [indices.len()]), &device);
        (
            self.inputs.select(idx.clone()),
            self.labels.clone().select(0, idx),
        )
    }
}

/// The train and test splits of a task on the device.
#[derive(Debug, Clone)]
pub struct TaskTensors<B: Backend> {
    /// Training split.
    pub train: Split<B>,
    /// Test split.
    pub test: Split<B>,
}

impl<B: Backend> TaskTensors<B> {
    /// Uploads both splits.
    pub fn new(task: &ModularTask, kind: ModelKind, device: &B::Device) -> Self {
        Self {
            train: Split::new(&task.train, task.vocab(), kind, device),
            test: Split::new(&task.test, task.vocab(), kind, device),
        }
    }

    /// Uploads both splits of an image dataset.
    pub fn images(dataset: &ImageDataset, device: &B::Device) -> Self {
        Self {
            train: Split::images(&dataset.train, device),
            test: Split::images(&dataset.test, device),
        }
    }

    /// The batch of step `step` (0-based): the whole split, or `rows` rows drawn without
    /// replacement from a generator seeded by `(seed, step)` alone, so that a resumed run
    /// draws the same batches as an uninterrupted one.
    pub fn batch(&self, batch: BatchSize, seed: u64, step: u64) -> (Inputs<B>, Tensor<B, 1, Int>) {
        match batch {
            BatchSize::Full => (self.train.inputs.clone(), self.train.labels.clone()),
            BatchSize::Rows(rows) => {
                let indices = batch_indices(self.train.len, rows, seed, step);
                self.train.select(&indices)
            }
        }
    }
}

/// `rows` distinct indices in `[0, n)` (all of them, shuffled, if `rows >= n`) for step `step`.
pub fn batch_indices(n: usize, rows: usize, seed: u64, step: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(step.wrapping_add(1));
    sample(&mut rng, n, rows.min(n)).into_vec()
}

/// The device's default float dtype: the backend's own element, or f64 where an f64 arm made
/// it the default (burn-flex implements `Backend` for f32 only).
pub(crate) fn float_dtype<B: Backend>(device: &B::Device) -> burn::tensor::DType {
    burn::tensor::get_device_settings::<B>(device)
        .float_dtype
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_distinct_rows_and_depend_on_seed_and_step_only() {
        let a = batch_indices(4656, 512, 3, 17);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 512);
        assert!(a.iter().all(|&i| i < 4656));
        assert_eq!(a, batch_indices(4656, 512, 3, 17));
        assert_ne!(a, batch_indices(4656, 512, 3, 18));
        assert_ne!(a, batch_indices(4656, 512, 4, 17));
        assert_eq!(batch_indices(10, 512, 0, 0).len(), 10);
    }
}
