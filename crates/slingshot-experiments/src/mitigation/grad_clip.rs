//! Clipping by the global gradient norm, as PyTorch's `clip_grad_norm_`: a gradient transform.

use burn::optim::GradientsParams;
use burn::tensor::backend::AutodiffBackend;
use serde_json::Value;
use slingshot_optim::clip_grad_norm;

use super::{Transform, number_flag};
use crate::model::Model;

/// Scales every gradient by `max_norm / ||g||` when the norm over all parameters exceeds
/// `max_norm`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradClip {
    /// The largest global gradient norm let through.
    pub max_norm: f64,
}

impl Transform for GradClip {
    const KEY: &'static str = "grad_clip";

    fn to_json(&self) -> Value {
        Value::from(self.max_norm)
    }

    fn from_json(value: &Value) -> Result<Option<Self>, String> {
        match value {
            Value::Null => Ok(None),
            Value::Number(n) => Ok(n.as_f64().map(|max_norm| GradClip { max_norm })),
            other => Err(format!(
                "mitigation grad_clip: expected a number, found {other}"
            )),
        }
    }

    fn from_flag(value: Option<&str>) -> Result<Self, String> {
        number_flag(Self::KEY, value).map(|max_norm| GradClip { max_norm })
    }

    fn validate(&self) -> Result<(), String> {
        if self.max_norm.is_finite() && self.max_norm > 0.0 {
            Ok(())
        } else {
            Err(format!(
                "grad-clip {}: must be finite and > 0",
                self.max_norm
            ))
        }
    }

    fn gradients<B: AutodiffBackend>(
        &self,
        model: &Model<B>,
        grads: GradientsParams,
    ) -> GradientsParams {
        match clip_grad_norm(model, grads, self.max_norm) {
            Ok((clipped, _norm)) => clipped,
            Err(e) => panic!("grad_clip was validated before training: {e}"),
        }
    }
}
