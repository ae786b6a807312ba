//! Prieto et al.'s StableMax cross-entropy: `s(z) = z + 1` for `z >= 0` and `1 / (1 - z)`
//! below, normalized by its sum. It grows linearly, so the correct class's probability does
//! not round to exactly 1 at the margins where softmax does. A loss option.

use serde_json::Value;
use slingshot_loss::{CollapseAwareCrossEntropyConfig, Normalizer};

use super::{Transform, flag_from_json};

/// The loss normalizes with StableMax instead of softmax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StableMax;

impl Transform for StableMax {
    const KEY: &'static str = "stablemax";
    const ARM: Option<(&'static str, &'static str)> = Some(("stablemax", "stablemax"));

    fn to_json(&self) -> Value {
        Value::Bool(true)
    }

    fn from_json(value: &Value) -> Result<Option<Self>, String> {
        Ok(flag_from_json(Self::KEY, value)?.then_some(StableMax))
    }

    fn from_flag(_: Option<&str>) -> Result<Self, String> {
        Ok(StableMax)
    }

    fn loss(&self, config: CollapseAwareCrossEntropyConfig) -> CollapseAwareCrossEntropyConfig {
        config.with_normalizer(Normalizer::StableMax)
    }
}
