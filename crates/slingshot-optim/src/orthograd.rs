//! OrthoGrad (Prieto et al.): step along the part of the gradient perpendicular to the
//! weights, rescaled to the gradient's norm, so that the step cannot simply scale the weights
//! up (the direction numerical feature inflation takes).

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::{GradientsParams, LearningRate, MultiGradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{DType, Tensor};

use crate::grads::GradSource;

/// `g_perp * ||g|| / ||g_perp||` with `g_perp = g - (w.g / w.w) w`, over all entries of the
/// tensor as one vector.
///
/// `g` is returned unchanged where the projection is undefined: `w.w == 0` (nothing to be
/// perpendicular to) or `||g_perp|| == 0` (`g` parallel to `w`, or zero). The three dot
/// products are accumulated in f64, so that the result is orthogonal to `w` and has `g`'s norm
/// to about f32 rounding (an f32 sum over a large tensor would lose several digits); the
/// backend needs f64 support.
pub fn orthogonalize<B: Backend, const D: usize>(w: Tensor<B, D>, g: Tensor<B, D>) -> Tensor<B, D> {
    let dtype = g.dtype();
    let ones = [1usize; D];
    let (w64, g64) = (w.clone().cast(DType::F64), g.clone().cast(DType::F64));
    let wg = total(w64.clone() * g64.clone());
    let ww = total(w64.square());
    let gg = total(g64.square());
    let no_direction = ww.clone().equal_elem(0.0);
    let coef = (wg / ww).mask_fill(no_direction.clone(), 0.0).cast(dtype);
    let g_perp = g.clone() - w * coef.reshape(ones);
    let pp = total(g_perp.clone().cast(DType::F64).square());
    let undefined = no_direction.bool_or(pp.clone().equal_elem(0.0));
    let scale = (gg.sqrt() / pp.sqrt())
        .mask_fill(undefined.clone(), 1.0)
        .cast(dtype);
    let rescaled = g_perp * scale.reshape(ones);
    // Where undefined, the original gradient, bit for bit.
    let keep = undefined.reshape(ones).expand(g.shape());
    rescaled.mask_where(keep, g)
}

/// Wraps any burn optimizer: each gradient is replaced by [`orthogonalize`]`(w, g)` of its
/// parameter before the inner optimizer steps.
///
/// ```
/// # use burn::backend::Autodiff;
/// # use burn::nn::{Linear, LinearConfig};
/// # use burn::optim::{GradientsParams, Optimizer, SgdConfig};
/// # use burn::tensor::{DType, Tensor};
/// # use slingshot_optim::OrthoGrad;
/// # type B = Autodiff<burn_ndarray::NdArray<f32>>;
/// # let device = Default::default();
/// # let mut model: Linear<B> = LinearConfig::new(4, 2).init(&device);
/// # let x = Tensor::<B, 2>::ones([8, 4], (&device, DType::F32));
/// let mut optim = OrthoGrad::new(SgdConfig::new().init());
/// let grads = GradientsParams::from_grads(model.forward(x).sum().backward(), &model);
/// model = optim.step(1e-2, model, grads);
/// ```
#[derive(Debug, Clone)]
pub struct OrthoGrad<O> {
    inner: O,
}

impl<O> OrthoGrad<O> {
    /// Wraps `inner`.
    pub fn new(inner: O) -> Self {
        Self { inner }
    }

    /// The wrapped optimizer.
    pub fn inner(&self) -> &O {
        &self.inner
    }

    /// The wrapped optimizer, mutably.
    pub fn inner_mut(&mut self) -> &mut O {
        &mut self.inner
    }

    /// Unwraps.
    pub fn into_inner(self) -> O {
        self.inner
    }
}

/// Replaces every gradient of `module`'s parameters in `grads` by its perpendicular part.
pub fn orthogonalize_grads<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    grads: GradientsParams,
) -> GradientsParams {
    let mut visitor = Orthogonalizer::<B> {
        source: GradSource::Single(grads),
        out: GradientsParams::new(),
        backend: std::marker::PhantomData,
    };
    module.visit(&mut visitor);
    visitor.out
}

/// Takes each parameter's gradient from `source` (summed over devices for `step_multi`),
/// projects it, and registers it in `out`.
struct Orthogonalizer<B> {
    source: GradSource,
    out: GradientsParams,
    backend: std::marker::PhantomData<B>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Orthogonalizer<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let Some((grad, device)) = self.source.remove::<B::InnerBackend, D>(param.id) else {
            return;
        };
        let w = param.val().inner().to_device(&device);
        self.out.register(param.id, orthogonalize(w, grad));
    }
}

impl<M, B, O> Optimizer<M, B> for OrthoGrad<O>
where
    M: AutodiffModule<B>,
    B: AutodiffBackend,
    O: Optimizer<M, B>,
{
    type Record = O::Record;

    fn step(&mut self, lr: LearningRate, module: M, grads: GradientsParams) -> M {
        let grads = orthogonalize_grads(&module, grads);
        self.inner.step(lr, module, grads)
    }

    /// The projection is not linear, so it applies to the gradient summed over devices: the
    /// inner optimizer gets one `GradientsParams` and steps once.
    fn step_multi(&mut self, lr: LearningRate, module: M, grads: MultiGradientsParams) -> M {
        let mut visitor = Orthogonalizer::<B> {
            source: GradSource::Multi(grads),
            out: GradientsParams::new(),
            backend: std::marker::PhantomData,
        };
        module.visit(&mut visitor);
        self.inner.step(lr, module, visitor.out)
    }

    fn to_record(&self) -> Self::Record {
        self.inner.to_record()
    }

    fn load_record(self, record: Self::Record) -> Self {
        Self {
            inner: self.inner.load_record(record),
        }
    }
}

/// The sum of every element as a `[1]` tensor, through `sum_dim`: burn-candle's `sum` reads
/// storage as the backend's own float element, so it fails on an f64 tensor of `Candle<f32>`.
fn total<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, 1> {
    let n = x.shape().num_elements();
    x.reshape([n]).sum_dim(0)
}
