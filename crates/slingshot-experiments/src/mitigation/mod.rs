//! The mitigations of §4 and App. A, and Prieto et al.'s StableMax and ⊥Grad, as small
//! transforms (optax style). Each is one value that plugs in at its stage:
//!
//! | stage | mitigations |
//! |---|---|
//! | loss option | [`ZeroSum`], [`LabelSmoothing`], [`StableMax`] |
//! | logit transform | [`LogitClamp`] |
//! | loss term | [`MuLoss`] |
//! | gradient transform | [`OrthoGrad`], [`GradClip`] |
//! | optimizer | [`SwitchToGd`] (Adam, then gradient descent) |
//! | post-step projection | [`MeanRemoval`] |
//!
//! The head (centered, BatchNorm, LayerNorm, no bias) is part of the network, in
//! [`crate::model::ModelConfig`]. An arm's mitigations are a [`Mitigations`] list, written in
//! `config.json` as one key per mitigation (the keys of the first format keep their names).
//! A new mitigation is one file implementing [`Transform`] and one line in `registry!` below.

mod grad_clip;
mod label_smoothing;
mod logit_clamp;
mod mean_removal;
mod mu_loss;
mod orthograd;
mod stablemax;
mod switch_to_gd;
mod zero_sum;

use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use slingshot_loss::CollapseAwareCrossEntropyConfig;

pub use grad_clip::GradClip;
pub use label_smoothing::LabelSmoothing;
pub use logit_clamp::LogitClamp;
pub use mean_removal::MeanRemoval;
pub use mu_loss::MuLoss;
pub use orthograd::OrthoGrad;
pub use stablemax::StableMax;
pub use switch_to_gd::{GdSwitch, SwitchToGd};
pub use zero_sum::ZeroSum;

use crate::model::Model;

/// One mitigation: its key, its value in `config.json`, and its hooks. Every hook leaves its
/// input alone unless the mitigation acts at that stage.
pub trait Transform: Sized {
    /// The key in `config.json`'s `mitigations` and in `--mitigation KEY[=VALUE]`.
    const KEY: &'static str;
    /// The arm of the `mitigations` binary that shows it alone, as `(label, --mitigation
    /// value)`, for mitigations reached only through `--mitigation`.
    const ARM: Option<(&'static str, &'static str)> = None;
    /// The value written under [`Transform::KEY`].
    fn to_json(&self) -> Value;
    /// The mitigation a `config.json` value describes; `None` for the "off" values the first
    /// format wrote (`false`, `0`, `null`).
    fn from_json(value: &Value) -> Result<Option<Self>, String>;
    /// The mitigation `--mitigation KEY[=VALUE]` asks for.
    fn from_flag(value: Option<&str>) -> Result<Self, String>;
    /// Whether these parameters do nothing (a zero amount), which the list keeps as absent,
    /// as the first format did.
    fn is_off(&self) -> bool {
        false
    }
    /// Checks the parameters before any training.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
    /// A loss option: the loss's configuration.
    fn loss(&self, config: CollapseAwareCrossEntropyConfig) -> CollapseAwareCrossEntropyConfig {
        config
    }
    /// A logit transform, before the loss.
    fn logits<B: Backend>(&self, logits: Tensor<B, 2>) -> Tensor<B, 2> {
        logits
    }
    /// A term added to the loss.
    fn loss_term<B: Backend>(&self, _model: &Model<B>) -> Option<Tensor<B, 1>> {
        None
    }
    /// A gradient transform, before the optimizer step.
    fn gradients<B: AutodiffBackend>(
        &self,
        _model: &Model<B>,
        grads: GradientsParams,
    ) -> GradientsParams {
        grads
    }
    /// The optimizer: Adam, or Adam until a switch to gradient descent.
    fn gd_switch(&self) -> Option<GdSwitch> {
        None
    }
    /// A post-step projection of the model.
    fn after_step<B: Backend>(&self, model: Model<B>) -> Model<B> {
        model
    }
}

/// `true` reads as on, `false` and `null` as off: the form of a parameterless mitigation.
pub(crate) fn flag_from_json(key: &str, value: &Value) -> Result<bool, String> {
    match value {
        Value::Bool(on) => Ok(*on),
        Value::Null => Ok(false),
        other => Err(format!(
            "mitigation {key}: expected true or false, found {other}"
        )),
    }
}

/// A number, `0` and `null` reading as off.
pub(crate) fn number_from_json(key: &str, value: &Value) -> Result<Option<f64>, String> {
    match value {
        Value::Null => Ok(None),
        Value::Number(n) => Ok(n.as_f64().filter(|v| *v != 0.0)),
        other => Err(format!(
            "mitigation {key}: expected a number, found {other}"
        )),
    }
}

/// The number of `--mitigation KEY=VALUE`.
pub(crate) fn number_flag(key: &str, value: Option<&str>) -> Result<f64, String> {
    let text = value.ok_or_else(|| format!("--mitigation {key}=VALUE needs a value"))?;
    text.parse()
        .map_err(|_| format!("--mitigation {key}={text}: not a number"))
}

macro_rules! registry {
    ($($variant:ident),* $(,)?) => {
        /// One mitigation of the registry.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Mitigation {
            $(
                #[doc = concat!("[`", stringify!($variant), "`].")]
                $variant($variant),
            )*
        }

        $(impl From<$variant> for Mitigation {
            fn from(m: $variant) -> Self {
                Mitigation::$variant(m)
            }
        })*

        /// Every key, in stage order.
        pub const KEYS: &[&str] = &[$(<$variant as Transform>::KEY),*];

        /// The arms that show a mitigation alone: `(label, --mitigation value)`.
        pub fn solo_arms() -> Vec<(&'static str, &'static str)> {
            [$(<$variant as Transform>::ARM),*].into_iter().flatten().collect()
        }

        impl Mitigation {
            /// The mitigation under `key` in `config.json`, `None` when the value is "off".
            pub fn from_json(key: &str, value: &Value) -> Result<Option<Self>, String> {
                $(if key == <$variant as Transform>::KEY {
                    return Ok($variant::from_json(value)?.map(Mitigation::$variant));
                })*
                Err(format!("unknown mitigation {key:?}; known: {}", KEYS.join(", ")))
            }

            /// The mitigation of `--mitigation KEY[=VALUE]`.
            pub fn from_flag(spec: &str) -> Result<Self, String> {
                let (key, value) = match spec.split_once('=') {
                    Some((k, v)) => (k, Some(v)),
                    None => (spec, None),
                };
                let key = key.replace('-', "_");
                $(if key == <$variant as Transform>::KEY {
                    return Ok(Mitigation::$variant($variant::from_flag(value)?));
                })*
                Err(format!("unknown mitigation {key:?}; known: {}", KEYS.join(", ")))
            }
        }

        // The hooks of whichever mitigation this is.
        impl Mitigation {
            /// The key in `config.json`.
            pub fn key(&self) -> &'static str {
                match self { $(Mitigation::$variant(_) => <$variant as Transform>::KEY,)* }
            }

            fn to_json(&self) -> Value {
                match self { $(Mitigation::$variant(t) => t.to_json(),)* }
            }

            fn validate(&self) -> Result<(), String> {
                match self { $(Mitigation::$variant(t) => t.validate(),)* }
            }

            fn is_off(&self) -> bool {
                match self { $(Mitigation::$variant(t) => t.is_off(),)* }
            }

            fn loss(&self, c: CollapseAwareCrossEntropyConfig) -> CollapseAwareCrossEntropyConfig {
                match self { $(Mitigation::$variant(t) => t.loss(c),)* }
            }

            fn logits<B: Backend>(&self, z: Tensor<B, 2>) -> Tensor<B, 2> {
                match self { $(Mitigation::$variant(t) => t.logits(z),)* }
            }

            fn loss_term<B: Backend>(&self, model: &Model<B>) -> Option<Tensor<B, 1>> {
                match self { $(Mitigation::$variant(t) => t.loss_term(model),)* }
            }

            fn gradients<B: AutodiffBackend>(
                &self,
                model: &Model<B>,
                grads: GradientsParams,
            ) -> GradientsParams {
                match self { $(Mitigation::$variant(t) => t.gradients(model, grads),)* }
            }

            fn gd_switch(&self) -> Option<GdSwitch> {
                match self { $(Mitigation::$variant(t) => t.gd_switch(),)* }
            }

            fn after_step<B: Backend>(&self, model: Model<B>) -> Model<B> {
                match self { $(Mitigation::$variant(t) => t.after_step(model),)* }
            }
        }
    };
}

registry! {
    ZeroSum,
    LabelSmoothing,
    StableMax,
    LogitClamp,
    MuLoss,
    OrthoGrad,
    GradClip,
    SwitchToGd,
    MeanRemoval,
}

/// An arm's mitigations, one of each kind at most, applied stage by stage (within a stage, in
/// the order of [`KEYS`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mitigations(Vec<Mitigation>);

impl Mitigations {
    /// No mitigation: the plain run.
    pub fn none() -> Self {
        Self::default()
    }

    /// Sets `m`, replacing one of its kind (an "off" `m`, such as a zero amount, removes it).
    pub fn set(&mut self, m: impl Into<Mitigation>) {
        let m = m.into();
        self.0.retain(|x| x.key() != m.key());
        if m.is_off() {
            return;
        }
        self.0.push(m);
        self.0
            .sort_by_key(|x| KEYS.iter().position(|k| *k == x.key()));
    }

    /// This list with `m` set.
    pub fn with(mut self, m: impl Into<Mitigation>) -> Self {
        self.set(m);
        self
    }

    /// The mitigations, in stage order.
    pub fn iter(&self) -> impl Iterator<Item = &Mitigation> {
        self.0.iter()
    }

    /// Removes the mitigation of `key`, if set.
    pub fn remove(&mut self, key: &str) {
        self.0.retain(|m| m.key() != key);
    }

    /// Whether a mitigation of `key` is set.
    pub fn contains(&self, key: &str) -> bool {
        self.0.iter().any(|m| m.key() == key)
    }

    /// Checks every parameter.
    pub fn validate(&self) -> Result<(), String> {
        self.0.iter().try_for_each(Mitigation::validate)
    }

    /// The loss configuration with every loss option applied.
    pub fn loss(&self, config: CollapseAwareCrossEntropyConfig) -> CollapseAwareCrossEntropyConfig {
        self.0.iter().fold(config, |c, m| m.loss(c))
    }

    /// The logits after every logit transform.
    pub fn logits<B: Backend>(&self, logits: Tensor<B, 2>) -> Tensor<B, 2> {
        self.0.iter().fold(logits, |z, m| m.logits(z))
    }

    /// `loss` plus every loss term.
    pub fn add_loss_terms<B: Backend>(&self, model: &Model<B>, loss: Tensor<B, 1>) -> Tensor<B, 1> {
        self.0.iter().fold(loss, |l, m| match m.loss_term(model) {
            Some(term) => l + term,
            None => l,
        })
    }

    /// The gradients after every gradient transform.
    pub fn gradients<B: AutodiffBackend>(
        &self,
        model: &Model<B>,
        grads: GradientsParams,
    ) -> GradientsParams {
        self.0.iter().fold(grads, |g, m| m.gradients(model, g))
    }

    /// The switch to gradient descent, if the optimizer stage has one.
    pub fn gd_switch(&self) -> Option<GdSwitch> {
        self.0.iter().find_map(Mitigation::gd_switch)
    }

    /// The model after every post-step projection.
    pub fn after_step<B: Backend>(&self, model: Model<B>) -> Model<B> {
        self.0.iter().fold(model, |x, m| m.after_step(x))
    }
}

/// The keys the first format always wrote, with their "off" values: written too, so that
/// readers of those names keep working.
fn first_format() -> [(&'static str, Value); 6] {
    [
        ("zero_sum", Value::Bool(false)),
        ("label_smoothing", Value::from(0.0)),
        ("post_step_mean_removal", Value::Bool(false)),
        ("mu_loss", Value::from(0.0)),
        ("logit_clamp", Value::Null),
        ("switch_to_gd", Value::Null),
    ]
}

impl Serialize for Mitigations {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map: Map<String, Value> = first_format()
            .into_iter()
            .map(|(k, off)| (k.to_string(), off))
            .collect();
        for m in &self.0 {
            map.insert(m.key().into(), m.to_json());
        }
        map.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Mitigations {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = Map::<String, Value>::deserialize(deserializer)?;
        let mut out = Mitigations::none();
        for (key, value) in &map {
            if let Some(m) = Mitigation::from_json(key, value).map_err(serde::de::Error::custom)? {
                out.set(m);
            }
        }
        Ok(out)
    }
}
