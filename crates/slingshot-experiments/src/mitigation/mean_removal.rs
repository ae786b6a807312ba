//! mu-centering (§4.3): the classifier's mean row is subtracted after every optimizer step. A
//! post-step projection.

use burn::tensor::backend::Backend;
use serde_json::Value;
use slingshot_nn::remove_class_mean;

use super::{Transform, flag_from_json};
use crate::model::Model;

/// Subtracts the classifier's mean row `W_G` after every step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeanRemoval;

impl Transform for MeanRemoval {
    const KEY: &'static str = "post_step_mean_removal";

    fn to_json(&self) -> Value {
        Value::Bool(true)
    }

    fn from_json(value: &Value) -> Result<Option<Self>, String> {
        Ok(flag_from_json(Self::KEY, value)?.then_some(MeanRemoval))
    }

    fn from_flag(_: Option<&str>) -> Result<Self, String> {
        Ok(MeanRemoval)
    }

    fn after_step<B: Backend>(&self, mut model: Model<B>) -> Model<B> {
        model.head.head.linear = remove_class_mean(model.head.head.linear);
        model
    }
}
