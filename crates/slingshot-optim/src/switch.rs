//! Changing optimizer mid-run (§4.2 of the paper: Adam, then plain gradient descent).

use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, LearningRate, MultiGradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;

/// Steps with `first` until [`SwitchOptimizer::switch`] is called, with `second` after.
///
/// The paper's §4.2 experiment (Adam until the loss is exactly zero, then gradient descent at
/// learning rate 1e5) in a few lines:
///
/// ```
/// # use burn::backend::Autodiff;
/// # use burn::nn::{Linear, LinearConfig};
/// # use burn::optim::{GradientsParams, Optimizer, SgdConfig};
/// # use burn::tensor::{DType, ElementConversion, Tensor};
/// # use slingshot_optim::{ProbedAdamConfig, SwitchOptimizer};
/// # type B = Autodiff<burn_ndarray::NdArray<f32>>;
/// # let device = Default::default();
/// # let mut model: Linear<B> = LinearConfig::new(4, 1).init(&device);
/// # let x = Tensor::<B, 2>::ones([8, 4], (&device, DType::F32));
/// let adam = ProbedAdamConfig::new().with_epsilon(1e-8).init();
/// let mut optim = SwitchOptimizer::new(adam, SgdConfig::new().init());
/// for _ in 0..10 {
///     let loss = model.forward(x.clone()).powi_scalar(2).mean();
///     // The loss your logging reads anyway: the switch needs a host value.
///     let zero = loss.clone().into_scalar().elem::<f32>() == 0.0;
///     let grads = GradientsParams::from_grads(loss.backward(), &model);
///     let lr = if optim.is_switched() { 1e5 } else { 1e-3 };
///     model = optim.step(lr, model, grads);
///     if zero {
///         optim.switch();
///     }
/// }
/// ```
///
/// Both optimizers' states are kept; the record holds both and the phase, so a resumed run
/// continues in the right one.
#[derive(Debug, Clone)]
pub struct SwitchOptimizer<A, G> {
    first: A,
    second: G,
    switched: bool,
}

impl<A, G> SwitchOptimizer<A, G> {
    /// Starts with `first`.
    pub fn new(first: A, second: G) -> Self {
        Self {
            first,
            second,
            switched: false,
        }
    }

    /// From now on, step with the second optimizer. Calling it again changes nothing.
    pub fn switch(&mut self) {
        self.switched = true;
    }

    /// Whether the second optimizer is in use.
    pub fn is_switched(&self) -> bool {
        self.switched
    }

    /// The first optimizer (e.g. to read a [`crate::ProbedAdam`]'s probe).
    pub fn first(&self) -> &A {
        &self.first
    }

    /// The first optimizer, mutably.
    pub fn first_mut(&mut self) -> &mut A {
        &mut self.first
    }

    /// The second optimizer.
    pub fn second(&self) -> &G {
        &self.second
    }

    /// The second optimizer, mutably.
    pub fn second_mut(&mut self) -> &mut G {
        &mut self.second
    }
}

impl<M, B, A, G> Optimizer<M, B> for SwitchOptimizer<A, G>
where
    M: AutodiffModule<B>,
    B: AutodiffBackend,
    A: Optimizer<M, B>,
    G: Optimizer<M, B>,
{
    /// The first optimizer's record, the second's, and whether the switch happened.
    type Record = (A::Record, G::Record, bool);

    fn step(&mut self, lr: LearningRate, module: M, grads: GradientsParams) -> M {
        if self.switched {
            self.second.step(lr, module, grads)
        } else {
            self.first.step(lr, module, grads)
        }
    }

    fn step_multi(&mut self, lr: LearningRate, module: M, grads: MultiGradientsParams) -> M {
        if self.switched {
            self.second.step_multi(lr, module, grads)
        } else {
            self.first.step_multi(lr, module, grads)
        }
    }

    fn to_record(&self) -> Self::Record {
        (
            self.first.to_record(),
            self.second.to_record(),
            self.switched,
        )
    }

    fn load_record(self, (first, second, switched): Self::Record) -> Self {
        Self {
            first: self.first.load_record(first),
            second: self.second.load_record(second),
            switched,
        }
    }
}
