//! §4.2's switch from Adam to gradient descent at a huge learning rate, emulating Adam's
//! effective-LR ceiling `lr / eps`: the optimizer stage.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Transform, number_flag};

/// When and how the run switches to gradient descent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GdSwitch {
    /// Gradient descent's learning rate (the paper: 1e5).
    pub lr: f64,
    /// Switch after the first logged step whose training loss is at most this (the paper: 0,
    /// i.e. exactly zero). Checked on logged steps only, where the loss is read anyway.
    pub loss_at_most: f64,
}

/// Adam until the loss is small enough, then plain gradient descent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SwitchToGd(pub GdSwitch);

impl Transform for SwitchToGd {
    const KEY: &'static str = "switch_to_gd";

    fn to_json(&self) -> Value {
        serde_json::to_value(self.0).unwrap_or(Value::Null)
    }

    fn from_json(value: &Value) -> Result<Option<Self>, String> {
        if value.is_null() {
            return Ok(None);
        }
        serde_json::from_value(value.clone())
            .map(|gd| Some(SwitchToGd(gd)))
            .map_err(|e| format!("mitigation switch_to_gd: {e}"))
    }

    /// `LR` or `LR@LOSS` (the loss at or below which it switches; default 0).
    fn from_flag(value: Option<&str>) -> Result<Self, String> {
        let text = value.unwrap_or("");
        let (lr, loss) = text.split_once('@').unwrap_or((text, "0"));
        Ok(SwitchToGd(GdSwitch {
            lr: number_flag(Self::KEY, Some(lr))?,
            loss_at_most: number_flag(Self::KEY, Some(loss))?,
        }))
    }

    fn validate(&self) -> Result<(), String> {
        let gd = self.0;
        if !(gd.lr.is_finite() && gd.lr > 0.0) {
            return Err(format!(
                "gradient-descent learning rate {}: must be finite and > 0",
                gd.lr
            ));
        }
        if !(gd.loss_at_most.is_finite() && gd.loss_at_most >= 0.0) {
            return Err(format!(
                "switch loss {}: must be finite and >= 0",
                gd.loss_at_most
            ));
        }
        Ok(())
    }

    fn gd_switch(&self) -> Option<GdSwitch> {
        Some(self.0)
    }
}
