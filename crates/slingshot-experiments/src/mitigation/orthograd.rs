//! Prieto et al.'s ⊥Grad: each parameter's gradient loses its component along the weight,
//! so that the optimizer cannot grow the weights' norm along their own direction (the naive
//! loss minimization that drives collapse). A gradient transform.

use burn::optim::GradientsParams;
use burn::tensor::backend::AutodiffBackend;
use serde_json::Value;
use slingshot_optim::orthogonalize_grads;

use super::{Transform, flag_from_json};
use crate::model::Model;

/// Replaces every gradient `g` of a weight `w` by `g - (g.w / w.w) w`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrthoGrad;

impl Transform for OrthoGrad {
    const KEY: &'static str = "orthograd";
    const ARM: Option<(&'static str, &'static str)> = Some(("orthograd", "orthograd"));

    fn to_json(&self) -> Value {
        Value::Bool(true)
    }

    fn from_json(value: &Value) -> Result<Option<Self>, String> {
        Ok(flag_from_json(Self::KEY, value)?.then_some(OrthoGrad))
    }

    fn from_flag(_: Option<&str>) -> Result<Self, String> {
        Ok(OrthoGrad)
    }

    fn gradients<B: AutodiffBackend>(
        &self,
        model: &Model<B>,
        grads: GradientsParams,
    ) -> GradientsParams {
        orthogonalize_grads(model, grads)
    }
}
