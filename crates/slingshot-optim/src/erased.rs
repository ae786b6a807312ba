//! A float tensor whose rank is known only at run time, for per-parameter state kept in one map.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorPrimitive};

/// A float tensor of any rank. Going back to a typed tensor of the same rank is free: no copy,
/// so optimizer state kept this way is updated in place by backends that can.
#[derive(Debug, Clone)]
pub(crate) struct ErasedTensor<B: Backend> {
    primitive: TensorPrimitive<B>,
    shape: Vec<usize>,
    // Monomorphized at erasure: flattening needs the rank as a const generic.
    flatten: fn(TensorPrimitive<B>) -> Tensor<B, 1>,
}

fn flatten_rank<B: Backend, const D: usize>(primitive: TensorPrimitive<B>) -> Tensor<B, 1> {
    let tensor = Tensor::<B, D>::from_primitive(primitive);
    let numel = tensor.shape().num_elements();
    tensor.reshape([numel])
}

impl<B: Backend> ErasedTensor<B> {
    pub(crate) fn new<const D: usize>(tensor: Tensor<B, D>) -> Self {
        Self {
            shape: tensor.shape().dims::<D>().to_vec(),
            primitive: tensor.into_primitive(),
            flatten: flatten_rank::<B, D>,
        }
    }

    /// The dimensions.
    pub(crate) fn dims(&self) -> &[usize] {
        &self.shape
    }

    /// Number of entries.
    pub(crate) fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The tensor with `dims` (rank `D`); reshapes (a copy on some backends) only when the
    /// stored shape differs, e.g. state loaded flat from a record.
    pub(crate) fn into_tensor<const D: usize>(self, dims: [usize; D]) -> Tensor<B, D> {
        if self.shape == dims {
            Tensor::from_primitive(self.primitive)
        } else {
            self.flat().reshape(dims)
        }
    }

    /// All entries in row-major order, rank 1.
    pub(crate) fn flat(self) -> Tensor<B, 1> {
        if self.shape.len() == 1 {
            Tensor::from_primitive(self.primitive)
        } else {
            (self.flatten)(self.primitive)
        }
    }
}
