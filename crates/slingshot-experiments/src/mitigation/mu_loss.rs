//! The mu-loss `gamma ||W_G||^2`, which pulls the classifier's mean row back to zero: a term
//! added to the loss.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use serde_json::Value;

use super::{Transform, number_flag, number_from_json};
use crate::model::Model;

/// Adds `weight * ||W_G||^2` to the loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MuLoss {
    /// `gamma`.
    pub weight: f64,
}

impl Transform for MuLoss {
    const KEY: &'static str = "mu_loss";

    fn to_json(&self) -> Value {
        Value::from(self.weight)
    }

    fn from_json(value: &Value) -> Result<Option<Self>, String> {
        Ok(number_from_json(Self::KEY, value)?.map(|weight| MuLoss { weight }))
    }

    fn from_flag(value: Option<&str>) -> Result<Self, String> {
        number_flag(Self::KEY, value).map(|weight| MuLoss { weight })
    }

    fn is_off(&self) -> bool {
        self.weight == 0.0
    }

    fn validate(&self) -> Result<(), String> {
        if self.weight.is_finite() && self.weight >= 0.0 {
            Ok(())
        } else {
            Err(format!(
                "mu-loss weight {}: must be finite and >= 0",
                self.weight
            ))
        }
    }

    fn loss_term<B: Backend>(&self, model: &Model<B>) -> Option<Tensor<B, 1>> {
        Some(slingshot_nn::mu_loss(model.classifier(), self.weight))
    }
}
