//! Label smoothing (Fig. 4(b)): a loss option.

use serde_json::Value;
use slingshot_loss::CollapseAwareCrossEntropyConfig;

use super::{Transform, number_flag, number_from_json};

/// The target mixes `1 - amount` of the label with `amount` spread over the classes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LabelSmoothing {
    /// The share moved off the label, in [0, 1).
    pub amount: f64,
}

impl Transform for LabelSmoothing {
    const KEY: &'static str = "label_smoothing";

    fn to_json(&self) -> Value {
        Value::from(self.amount)
    }

    fn from_json(value: &Value) -> Result<Option<Self>, String> {
        Ok(number_from_json(Self::KEY, value)?.map(|amount| LabelSmoothing { amount }))
    }

    fn from_flag(value: Option<&str>) -> Result<Self, String> {
        number_flag(Self::KEY, value).map(|amount| LabelSmoothing { amount })
    }

    fn is_off(&self) -> bool {
        self.amount == 0.0
    }

    fn validate(&self) -> Result<(), String> {
        if (0.0..1.0).contains(&self.amount) {
            Ok(())
        } else {
            Err(format!(
                "label smoothing {}: must be in [0, 1)",
                self.amount
            ))
        }
    }

    fn loss(&self, config: CollapseAwareCrossEntropyConfig) -> CollapseAwareCrossEntropyConfig {
        // burn's `smoothing` is an f32, as in its own CrossEntropyLoss.
        config.with_smoothing(Some(self.amount as f32))
    }
}
