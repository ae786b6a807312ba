//! A step output that extends burn's `ClassificationOutput` with the loss precision and,
//! optionally, the classifier and the features, so that one batch's collapse and NFI values
//! are computed once, in the training precision.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use burn_flex::Flex;
use burn_train::metric::{
    AccuracyInput, Adaptor, AurocInput, ConfusionStatsInput, LossInput, PerplexityInput,
    TopKAccuracyInput,
};
use burn_train::{ClassificationOutput, ItemLazy};
use slingshot_loss::LossPrecision;
use slingshot_nn::NfiDiagnostics;

use crate::TrainError;
use crate::input::{CollapseInput, NfiInput};

/// The classifier `logits = features W + b` of a step, for the NFI metrics.
#[derive(Debug, Clone)]
pub struct ClassifierParts<B: Backend> {
    /// Penultimate features `[N, d]`.
    pub features: Tensor<B, 2>,
    /// Weight `[d, K]`, as burn's `Linear` stores it.
    pub weight: Tensor<B, 2>,
    /// Bias `[K]`, if the classifier has one.
    pub bias: Option<Tensor<B, 1>>,
}

/// What a `TrainStep` (or `InferenceStep`) returns to have slingshot's metrics: burn's
/// [`ClassificationOutput`] (so burn's loss and accuracy metrics work as before), the
/// precision the loss computes in, and optionally the classifier. The fields are checked
/// when it is built: nothing it holds can make the metrics thread fail.
pub struct CollapseOutput<B: Backend> {
    classification: ClassificationOutput<B>,
    precision: LossPrecision,
    classifier: Option<ClassifierParts<B>>,
}

fn same_shape(what: &'static str, expected: Vec<usize>, got: Vec<usize>) -> Result<(), TrainError> {
    if expected == got {
        Ok(())
    } else {
        Err(TrainError::Shape {
            what,
            expected,
            got,
        })
    }
}

impl<B: Backend> CollapseOutput<B> {
    /// The output of a step with loss `loss` `[1]`, `logits` `[N, K]` and `targets` `[N]`;
    /// collapse is judged in `precision`.
    ///
    /// # Panics
    /// On shapes [`Self::try_new`] refuses, with its message.
    #[track_caller]
    pub fn new(
        loss: Tensor<B, 1>,
        logits: Tensor<B, 2>,
        targets: Tensor<B, 1, Int>,
        precision: LossPrecision,
    ) -> Self {
        match Self::try_new(loss, logits, targets, precision) {
            Ok(output) => output,
            Err(e) => panic!("{e}"),
        }
    }

    /// [`Self::new`], or [`TrainError::Shape`] unless the batch has rows, the logits at
    /// least two classes, and the targets one entry per row.
    pub fn try_new(
        loss: Tensor<B, 1>,
        logits: Tensor<B, 2>,
        targets: Tensor<B, 1, Int>,
        precision: LossPrecision,
    ) -> Result<Self, TrainError> {
        let [n, k] = logits.dims();
        if n == 0 || k < 2 {
            return Err(TrainError::Shape {
                what: "logits (at least 1 row and 2 classes)",
                expected: vec![n.max(1), k.max(2)],
                got: vec![n, k],
            });
        }
        same_shape("targets", vec![n], targets.dims().to_vec())?;
        Ok(Self {
            classification: ClassificationOutput::new(loss, logits, targets),
            precision,
            classifier: None,
        })
    }

    /// Adds the classifier (`weight` `[d, K]`, `bias` `[K]`, `d >= 1`) and the `features`
    /// `[N, d]` it was applied to, after checking their shapes against the logits. They are
    /// detached: the metrics never enter the autodiff graph.
    pub fn try_with_classifier(
        mut self,
        features: Tensor<B, 2>,
        weight: Tensor<B, 2>,
        bias: Option<Tensor<B, 1>>,
    ) -> Result<Self, TrainError> {
        let [n, k] = self.classification.output.dims();
        let [rows, d] = features.dims();
        same_shape("features rows", vec![n], vec![rows])?;
        if d == 0 {
            return Err(TrainError::Zero {
                what: "the feature width d",
            });
        }
        same_shape("classifier weight", vec![d, k], weight.dims().to_vec())?;
        if let Some(b) = &bias {
            same_shape("classifier bias", vec![k], b.dims().to_vec())?;
        }
        self.classifier = Some(ClassifierParts {
            features: features.detach(),
            weight: weight.detach(),
            bias: bias.map(Tensor::detach),
        });
        Ok(self)
    }

    /// The step's loss, for its backward pass.
    pub fn loss(&self) -> Tensor<B, 1> {
        self.classification.loss.clone()
    }

    /// Loss, logits and targets, as burn's own output.
    pub fn classification(&self) -> &ClassificationOutput<B> {
        &self.classification
    }

    /// The loss's precision.
    pub fn precision(&self) -> LossPrecision {
        self.precision
    }

    /// The classifier and features, when given.
    pub fn classifier(&self) -> Option<&ClassifierParts<B>> {
        self.classifier.as_ref()
    }
}

/// A [`CollapseOutput`] on the metrics' thread: host values, computed once per batch.
pub struct CollapseItem {
    /// burn's output, synced as burn syncs it (for `LossMetric`, `AccuracyMetric`, ...).
    pub classification: ClassificationOutput<Flex>,
    /// The collapse statistics in the training precision.
    pub collapse: CollapseInput,
    /// The NFI values, when the output carried the classifier.
    pub nfi: NfiInput,
}

impl<B: Backend> ItemLazy for CollapseOutput<B> {
    type ItemSync = CollapseItem;

    // Runs on burn-train's metrics thread: the training thread never waits for these reads.
    fn sync(self) -> CollapseItem {
        let out = &self.classification;
        let [rows, _] = out.output.dims();
        let collapse =
            CollapseInput::compute(out.output.clone(), out.targets.clone(), self.precision);
        let summary = self.classifier.map(|c| {
            NfiDiagnostics::try_new_inflation(c.weight, c.bias, c.features, out.targets.clone())
                .expect("shapes checked when the output was built")
                .summary()
        });
        CollapseItem {
            classification: self.classification.sync(),
            collapse,
            nfi: NfiInput { rows, summary },
        }
    }
}

impl Adaptor<CollapseInput> for CollapseItem {
    fn adapt(&self) -> CollapseInput {
        self.collapse.clone()
    }
}

impl Adaptor<NfiInput> for CollapseItem {
    fn adapt(&self) -> NfiInput {
        self.nfi.clone()
    }
}

/// burn's own metric inputs come from the wrapped `ClassificationOutput`.
macro_rules! adapt_through_classification {
    ($($input:ident),* $(,)?) => {$(
        impl Adaptor<$input<Flex>> for CollapseItem {
            fn adapt(&self) -> $input<Flex> {
                self.classification.adapt()
            }
        }
    )*};
}

adapt_through_classification!(
    LossInput,
    AccuracyInput,
    TopKAccuracyInput,
    ConfusionStatsInput,
    AurocInput,
    PerplexityInput,
);
