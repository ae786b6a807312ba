//! §4.1's zero-sum projection of each row's logit gradient: a loss option.

use serde_json::Value;
use slingshot_loss::CollapseAwareCrossEntropyConfig;

use super::{Transform, flag_from_json};

/// Projects each row's logit gradient to zero sum (`g - mean_k g`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZeroSum;

impl Transform for ZeroSum {
    const KEY: &'static str = "zero_sum";

    fn to_json(&self) -> Value {
        Value::Bool(true)
    }

    fn from_json(value: &Value) -> Result<Option<Self>, String> {
        Ok(flag_from_json(Self::KEY, value)?.then_some(ZeroSum))
    }

    fn from_flag(_: Option<&str>) -> Result<Self, String> {
        Ok(ZeroSum)
    }

    fn loss(&self, config: CollapseAwareCrossEntropyConfig) -> CollapseAwareCrossEntropyConfig {
        config.with_zero_sum_projection(true)
    }
}
