//! App. A.1.4's clamp `z >= max z - margin`, so that no probability underflows: a logit
//! transform.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use serde_json::Value;
use slingshot_nn::clamp_logit_margin;

use super::{Transform, number_flag};

/// Clamps each row's logits to at least `max - margin` (the paper: 100).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogitClamp {
    /// The largest gap below the row's maximum.
    pub margin: f64,
}

impl Transform for LogitClamp {
    const KEY: &'static str = "logit_clamp";

    fn to_json(&self) -> Value {
        Value::from(self.margin)
    }

    fn from_json(value: &Value) -> Result<Option<Self>, String> {
        // The first format wrote `null` for off; a 0 margin is invalid, not off.
        match value {
            Value::Null => Ok(None),
            Value::Number(n) => Ok(n.as_f64().map(|margin| LogitClamp { margin })),
            other => Err(format!(
                "mitigation logit_clamp: expected a number, found {other}"
            )),
        }
    }

    fn from_flag(value: Option<&str>) -> Result<Self, String> {
        number_flag(Self::KEY, value).map(|margin| LogitClamp { margin })
    }

    fn validate(&self) -> Result<(), String> {
        if self.margin.is_finite() && self.margin > 0.0 {
            Ok(())
        } else {
            Err(format!(
                "logit clamp margin {}: must be finite and > 0",
                self.margin
            ))
        }
    }

    fn logits<B: Backend>(&self, logits: Tensor<B, 2>) -> Tensor<B, 2> {
        clamp_logit_margin(logits, self.margin)
    }
}
