//! The largest Hessian eigenvalue of a loss (Fig. 5's `lambda_max`), by power iteration on
//! Hessian-vector products taken as central finite differences of gradients:
//! `H v ≈ (g(θ + h v) - g(θ - h v)) / 2h`.
//!
//! The vectors live on the host in f64 (one entry per trainable parameter entry): the models
//! this is meant for (Fig. 5's width-20 network) have a few thousand parameters, and the
//! gradients are computed by the model's own backend in its own precision, so an f32 run's
//! curvature is the one its f32 gradients see, collapse included.

use std::collections::HashMap;

use burn::module::{AutodiffModule, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The result of [`top_hessian_eigenvalue`].
#[derive(Debug, Clone, PartialEq)]
pub struct SharpnessEstimate {
    /// The Rayleigh quotient `v . H v` of the last unit iterate: the eigenvalue of largest
    /// magnitude when the iteration has converged (signed).
    pub eigenvalue: f64,
    /// `||H v - lambda v||`, how far the last iterate is from an eigenvector (0 when exact).
    pub residual: f64,
    /// Power iterations done.
    pub iterations: usize,
    /// Parameter entries in the vector space.
    pub dimension: usize,
    /// The last unit iterate: pass it as the next estimate's start, so that a slowly moving
    /// top eigenvector keeps converging across a run instead of restarting from noise.
    pub vector: Vec<f64>,
}

/// Where power iteration starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Start<'a> {
    /// A random vector drawn from this seed.
    Seed(u64),
    /// A given vector (e.g. the previous estimate's); a seed if its length does not fit.
    Vector(&'a [f64], u64),
}

/// Power iteration for the eigenvalue of largest magnitude of the symmetric operator `hvp`,
/// on vectors of length `dimension`.
pub fn power_iteration(
    dimension: usize,
    iterations: usize,
    start: Start<'_>,
    mut hvp: impl FnMut(&[f64]) -> Vec<f64>,
) -> SharpnessEstimate {
    let mut v: Vec<f64> = match start {
        Start::Vector(v, _) if v.len() == dimension && v.iter().any(|x| *x != 0.0) => v.to_vec(),
        Start::Seed(seed) | Start::Vector(_, seed) => {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..dimension)
                .map(|_| rng.random::<f64>() * 2.0 - 1.0)
                .collect()
        }
    };
    normalize(&mut v);
    let (mut eigenvalue, mut residual) = (0.0, f64::NAN);
    for _ in 0..iterations.max(1) {
        let hv = hvp(&v);
        eigenvalue = dot(&v, &hv);
        residual = hv
            .iter()
            .zip(&v)
            .map(|(a, b)| (a - eigenvalue * b).powi(2))
            .sum::<f64>()
            .sqrt();
        let mut next = hv;
        if normalize(&mut next) == 0.0 || !next.iter().all(|x| x.is_finite()) {
            // H v = 0 (v is an eigenvector of eigenvalue 0), or the products broke down.
            break;
        }
        v = next;
    }
    SharpnessEstimate {
        eigenvalue,
        residual,
        iterations: iterations.max(1),
        dimension,
        vector: v,
    }
}

/// The largest-magnitude Hessian eigenvalue of `loss` at `model`'s parameters, over every
/// parameter that receives a gradient. `step` is the finite-difference step along the unit
/// vector; `None` picks `sqrt(u) * max(1, ||θ||)` with `u` the unit roundoff of the
/// parameters' dtype, the usual balance of truncation and rounding error.
pub fn top_hessian_eigenvalue<B, M>(
    model: &M,
    loss: impl Fn(&M) -> Tensor<B, 1>,
    iterations: usize,
    step: Option<f64>,
    start: Start<'_>,
) -> SharpnessEstimate
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
{
    top_eigenvalue(model, &loss, None, iterations, step, start, 0.0)
}

/// The largest-magnitude eigenvalue of `P^-1 H`, Adam's preconditioned Hessian (Cohen et al.
/// 2022, "adaptive edge of stability"): `inverse_preconditioner` gives, per parameter, the
/// entries of the diagonal `P^-1 = 1 / (sqrt(v_hat) + eps)` in the parameter's row-major order.
/// Power iteration runs on the symmetric `P^-1/2 H P^-1/2`, which has the same eigenvalues.
/// The result is the largest eigenvalue, not the largest in magnitude: when the first pass
/// converges to a negative one (early in training, preconditioning amplifies negative
/// curvature), a second pass on the operator shifted by it finds the top of the spectrum.
/// Under Adam with `beta1` the edge of stability is `(2 + 2 beta1) / ((1 - beta1) lr)`, 38/lr
/// for `beta1 = 0.9`. A parameter missing from the map is not preconditioned (scale 1).
pub fn top_preconditioned_eigenvalue<B, M>(
    model: &M,
    loss: impl Fn(&M) -> Tensor<B, 1>,
    inverse_preconditioner: &HashMap<ParamId, Vec<f64>>,
    iterations: usize,
    step: Option<f64>,
    start: Start<'_>,
) -> SharpnessEstimate
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
{
    let first = top_eigenvalue(
        model,
        &loss,
        Some(inverse_preconditioner),
        iterations,
        step,
        start,
        0.0,
    );
    if first.eigenvalue >= 0.0 {
        return first;
    }
    // `A - first I` is positive semi-definite up to estimation error: its top eigenvalue is
    // `lambda_max - first`. It starts from noise: the first pass's vector is (nearly) in its
    // null space.
    let shift = first.eigenvalue;
    let seed = match start {
        Start::Seed(seed) | Start::Vector(_, seed) => seed,
    };
    let mut shifted = top_eigenvalue(
        model,
        &loss,
        Some(inverse_preconditioner),
        iterations,
        step,
        Start::Seed(seed.wrapping_add(1)),
        shift,
    );
    shifted.eigenvalue += shift;
    shifted.iterations += first.iterations;
    shifted
}

/// Adam's inverse preconditioner `1 / (sqrt(v_hat) + eps)` per parameter entry, from a
/// `ProbedAdam` record (`v_hat = v / (1 - beta2^t)`, burn's update written as
/// `m_hat / (sqrt(v_hat) + eps)`). Cohen et al.'s preconditioner also carries `1 - beta1^t`,
/// which is 1 to within 1e-4 after 90 steps at `beta1 = 0.9`; it is left out.
pub fn adam_inverse_preconditioner<B: burn::tensor::backend::Backend>(
    record: &slingshot_optim::ProbedAdamRecord<B>,
    beta_2: f64,
    eps: f64,
) -> HashMap<ParamId, Vec<f64>> {
    record
        .params
        .iter()
        .map(|p| {
            let correction = 1.0 - beta_2.powi(p.time as i32);
            let v: Vec<f64> = p
                .moment_2
                .clone()
                .into_data()
                .convert::<f64>()
                .into_vec()
                .expect("a float moment converts to f64");
            let inverse = v
                .iter()
                .map(|v| 1.0 / ((v / correction).sqrt() + eps))
                .collect();
            (ParamId::from(p.param_id), inverse)
        })
        .collect()
}

/// Power iteration on `D H D - shift I`, `D = P^-1/2` (the identity without a
/// preconditioner), with finite-difference products along unit directions.
fn top_eigenvalue<B, M>(
    model: &M,
    loss: &impl Fn(&M) -> Tensor<B, 1>,
    inverse_preconditioner: Option<&HashMap<ParamId, Vec<f64>>>,
    iterations: usize,
    step: Option<f64>,
    start: Start<'_>,
    shift: f64,
) -> SharpnessEstimate
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
{
    let layout = flat_gradient(model, loss, None).0;
    let dimension = layout.len();
    let h = step.unwrap_or_else(|| {
        let mut norm = ParamNorm::<B>::default();
        model.visit(&mut norm);
        norm.unit_roundoff.sqrt() * norm.sum_sq.sqrt().max(1.0)
    });
    let d = inverse_preconditioner.map(|p| layout.sqrt_scale(p));
    let scaled = |v: &[f64]| -> Vec<f64> {
        match &d {
            Some(d) => v.iter().zip(d).map(|(x, s)| x * s).collect(),
            None => v.to_vec(),
        }
    };
    power_iteration(dimension, iterations, start, |v| {
        // H w along the unit direction of w = D v, times ||w||, then D again (without a
        // preconditioner, v itself: the raw estimate keeps its bits).
        let (w, norm) = match &d {
            Some(_) => {
                let mut w = scaled(v);
                let norm = normalize(&mut w);
                (w, norm)
            }
            None => (v.to_vec(), 1.0),
        };
        let plus = perturbed(model, &layout, &w, h);
        let minus = perturbed(model, &layout, &w, -h);
        let g_plus = flat_gradient(&plus, loss, Some(&layout)).1;
        let g_minus = flat_gradient(&minus, loss, Some(&layout)).1;
        let hw: Vec<f64> = g_plus
            .iter()
            .zip(&g_minus)
            .map(|(a, b)| norm * (a - b) / (2.0 * h))
            .collect();
        let mut out = scaled(&hw);
        if shift != 0.0 {
            out.iter_mut().zip(v).for_each(|(o, x)| *o -= shift * x);
        }
        out
    })
}

/// Where each trainable parameter sits in the flat vector.
#[derive(Debug, Clone, Default)]
struct Layout {
    offsets: HashMap<ParamId, (usize, Vec<usize>)>,
    total: usize,
}

impl Layout {
    fn len(&self) -> usize {
        self.total
    }

    /// `sqrt(p)` of each parameter's entries in `p`, flattened in this layout (1 where absent).
    fn sqrt_scale(&self, p: &HashMap<ParamId, Vec<f64>>) -> Vec<f64> {
        let mut d = vec![1.0; self.total];
        for (id, (offset, shape)) in &self.offsets {
            let n: usize = shape.iter().product();
            if let Some(values) = p.get(id).filter(|v| v.len() == n) {
                for (slot, &x) in d[*offset..*offset + n].iter_mut().zip(values) {
                    *slot = x.sqrt();
                }
            }
        }
        d
    }
}

/// The gradient of `loss` at `model`, flattened in visiting order. Without a `layout`, one is
/// made from the parameters that get a gradient.
fn flat_gradient<B, M>(
    model: &M,
    loss: &impl Fn(&M) -> Tensor<B, 1>,
    layout: Option<&Layout>,
) -> (Layout, Vec<f64>)
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
{
    let grads = loss(model).backward();
    let mut collect = GradCollector::<B> {
        grads,
        fixed: layout,
        built: Layout::default(),
        values: vec![0.0; layout.map_or(0, Layout::len)],
    };
    model.visit(&mut collect);
    (collect.built, collect.values)
}

/// Flattens the gradients into `fixed`'s places, or, without it, builds the layout as it goes.
struct GradCollector<'a, B: AutodiffBackend> {
    grads: B::Gradients,
    fixed: Option<&'a Layout>,
    built: Layout,
    values: Vec<f64>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for GradCollector<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let Some(grad) = param.val().grad(&self.grads) else {
            return;
        };
        let host: Vec<f64> = grad
            .into_data()
            .convert::<f64>()
            .into_vec()
            .expect("a float gradient converts to f64");
        if let Some(layout) = self.fixed {
            if let Some((offset, _)) = layout.offsets.get(&param.id) {
                self.values[*offset..*offset + host.len()].copy_from_slice(&host);
            }
        } else {
            let shape = param.val().dims().to_vec();
            self.built
                .offsets
                .insert(param.id, (self.built.total, shape));
            self.built.total += host.len();
            self.values.extend(host);
        }
    }
}

/// `model` with `scale * v` added to its trainable parameters.
fn perturbed<B, M>(model: &M, layout: &Layout, v: &[f64], scale: f64) -> M
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
{
    model.clone().map(&mut Perturb { layout, v, scale })
}

struct Perturb<'a> {
    layout: &'a Layout,
    v: &'a [f64],
    scale: f64,
}

impl<B: AutodiffBackend> ModuleMapper<B> for Perturb<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let Some((offset, shape)) = self.layout.offsets.get(&param.id).cloned() else {
            return param;
        };
        let (v, scale) = (self.v, self.scale);
        param.map(move |t| {
            let n: usize = shape.iter().product();
            let delta: Vec<f64> = v[offset..offset + n].iter().map(|x| x * scale).collect();
            let (device, dtype) = (t.device(), t.dtype());
            let delta = Tensor::<B::InnerBackend, D>::from_data(
                TensorData::new(delta, shape.clone()).convert_dtype(dtype),
                (&device, dtype),
            );
            Tensor::from_inner(t.inner() + delta).require_grad()
        })
    }
}

/// `||θ||^2` and the unit roundoff of the parameters' dtype.
struct ParamNorm<B> {
    sum_sq: f64,
    unit_roundoff: f64,
    _backend: std::marker::PhantomData<B>,
}

impl<B> Default for ParamNorm<B> {
    fn default() -> Self {
        Self {
            sum_sq: 0.0,
            unit_roundoff: f64::EPSILON / 2.0,
            _backend: std::marker::PhantomData,
        }
    }
}

impl<B: AutodiffBackend> ModuleVisitor<B> for ParamNorm<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let t = param.val();
        let u = match t.dtype() {
            burn::tensor::DType::F64 => f64::EPSILON / 2.0,
            burn::tensor::DType::F32 | burn::tensor::DType::Flex32 => f32::EPSILON as f64 / 2.0,
            _ => 2f64.powi(-8),
        };
        self.unit_roundoff = self.unit_roundoff.max(u);
        let sq: f64 = t
            .inner()
            .powi_scalar(2)
            .sum()
            .into_data()
            .convert::<f64>()
            .into_vec::<f64>()
            .expect("a float sum converts to f64")[0];
        self.sum_sq += sq;
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Scales `v` to unit norm and returns its former norm (0 leaves it unchanged).
fn normalize(v: &mut [f64]) -> f64 {
    let norm = dot(v, v).sqrt();
    if norm > 0.0 && norm.is_finite() {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_iteration_finds_the_largest_eigenvalue_of_a_known_matrix() {
        // diag(5, -2, 1, 0.5) rotated by a fixed orthogonal matrix (a Householder reflection).
        let d = [5.0, -2.0, 1.0, 0.5];
        let u = [0.5f64, 0.5, -0.5, 0.5];
        let q = |i: usize, j: usize| (if i == j { 1.0 } else { 0.0 }) - 2.0 * u[i] * u[j];
        let a: Vec<Vec<f64>> = (0..4)
            .map(|i| {
                (0..4)
                    .map(|j| (0..4).map(|k| q(i, k) * d[k] * q(j, k)).sum())
                    .collect()
            })
            .collect();
        let est = power_iteration(4, 200, Start::Seed(7), |v| {
            a.iter().map(|row| dot(row, v)).collect()
        });
        assert!((est.eigenvalue - 5.0).abs() < 1e-12, "{est:?}");
        assert!(est.residual < 1e-10, "{est:?}");
        // The zero operator stops at once with eigenvalue 0.
        let zero = power_iteration(3, 10, Start::Seed(1), |v| vec![0.0; v.len()]);
        assert_eq!(zero.eigenvalue, 0.0);
        // Started from the converged vector, one iteration suffices.
        let again = power_iteration(4, 1, Start::Vector(&est.vector, 0), |v| {
            a.iter().map(|row| dot(row, v)).collect()
        });
        assert!((again.eigenvalue - 5.0).abs() < 1e-12, "{again:?}");
    }

    /// A linear softmax classifier on random data: the model, its inputs and labels, and
    /// its closed-form Hessian `H[(j,k),(j',k')] = mean_i a_ij a_ij' (δ_kk' p_ik - p_ik p_ik')`,
    /// `a_i = [x_i, 1]`, rows ordered as the flat layout (weight `d x k` row-major, then bias).
    type B64 = burn::backend::Autodiff<burn_ndarray::NdArray<f64>>;
    struct Fixture {
        linear: burn::nn::Linear<B64>,
        xs: Tensor<B64, 2>,
        ys: Tensor<B64, 1, burn::tensor::Int>,
        hessian: Vec<Vec<f64>>,
    }

    fn linear_fixture(n: usize, d: usize, k: usize) -> Fixture {
        use burn::nn::LinearConfig;
        use burn::tensor::{DType, Int};
        let device = Default::default();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut uniform = |count: usize, half: f64| -> Vec<f64> {
            (0..count)
                .map(|_| (rng.random::<f64>() * 2.0 - 1.0) * half)
                .collect()
        };
        let (x, w, b) = (uniform(n * d, 1.0), uniform(d * k, 1.0), uniform(k, 0.5));
        let y: Vec<i64> = (0..n).map(|i| (i % k) as i64).collect();
        let tensor = |v: &[f64], shape: Vec<usize>| {
            Tensor::<B64, 1>::from_data(TensorData::new(v.to_vec(), shape), (&device, DType::F64))
        };
        let linear: burn::nn::Linear<B64> = LinearConfig::new(d, k).init(&device);
        let linear = burn::nn::Linear {
            weight: linear
                .weight
                .map(|_| tensor(&w, vec![d * k]).reshape([d, k]).require_grad()),
            bias: linear
                .bias
                .map(|p| p.map(|_| tensor(&b, vec![k]).require_grad())),
        };
        let xs = tensor(&x, vec![n * d]).reshape([n, d]);
        let ys = Tensor::<B64, 1, Int>::from_data(TensorData::new(y, [n]), &device);
        let dim = (d + 1) * k;
        let mut hessian = vec![vec![0.0f64; dim]; dim];
        for i in 0..n {
            let a: Vec<f64> = x[i * d..(i + 1) * d].iter().copied().chain([1.0]).collect();
            let z: Vec<f64> = (0..k)
                .map(|c| (0..d).map(|j| a[j] * w[j * k + c]).sum::<f64>() + b[c])
                .collect();
            let zmax = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = z.iter().map(|v| (v - zmax).exp()).sum();
            let p: Vec<f64> = z.iter().map(|v| (v - zmax).exp() / s).collect();
            for (r, c) in (0..=d).flat_map(|j| (0..k).map(move |c| (j, c))) {
                for (r2, c2) in (0..=d).flat_map(|j| (0..k).map(move |c| (j, c))) {
                    let hz = if c == c2 { p[c] } else { 0.0 } - p[c] * p[c2];
                    hessian[r * k + c][r2 * k + c2] += a[r] * a[r2] * hz / n as f64;
                }
            }
        }
        Fixture {
            linear,
            xs,
            ys,
            hessian,
        }
    }

    /// The finite-difference estimate in f64 matches the closed form's top eigenvalue to 1e-6
    /// relative.
    #[test]
    fn finite_difference_sharpness_matches_a_closed_form_hessian() {
        let (d, k) = (3, 4);
        let f = linear_fixture(12, d, k);
        let ce = burn::nn::loss::CrossEntropyLossConfig::new().init(&Default::default());
        let est = top_hessian_eigenvalue(
            &f.linear,
            |m: &burn::nn::Linear<B64>| {
                ce.forward(m.forward(f.xs.clone()), f.ys.clone())
                    .reshape([1])
            },
            300,
            None,
            Start::Seed(11),
        );
        assert_eq!(est.dimension, d * k + k);
        let exact = power_iteration(f.hessian.len(), 2000, Start::Seed(5), |v| {
            f.hessian.iter().map(|row| dot(row, v)).collect()
        });
        let rel = (est.eigenvalue - exact.eigenvalue).abs() / exact.eigenvalue;
        assert!(rel < 1e-6, "estimate {est:?} exact {exact:?} rel {rel:e}");
    }

    /// Preconditioned by a diagonal spanning four decades: the top eigenvalue of `D H D`,
    /// `D = P^-1/2`, against the closed form, and different from the raw one.
    #[test]
    fn preconditioned_sharpness_matches_the_closed_form() {
        let (d, k) = (3, 4);
        let f = linear_fixture(12, d, k);
        let dim = f.hessian.len();
        let ce = burn::nn::loss::CrossEntropyLossConfig::new().init(&Default::default());
        let p_inv: Vec<f64> = (0..dim).map(|i| 10f64.powf((i % 5) as f64 - 2.0)).collect();
        let mut map = HashMap::new();
        map.insert(f.linear.weight.id, p_inv[..d * k].to_vec());
        map.insert(f.linear.bias.as_ref().unwrap().id, p_inv[d * k..].to_vec());
        let pre = top_preconditioned_eigenvalue(
            &f.linear,
            |m: &burn::nn::Linear<B64>| {
                ce.forward(m.forward(f.xs.clone()), f.ys.clone())
                    .reshape([1])
            },
            &map,
            600,
            None,
            Start::Seed(11),
        );
        let exact_pre = power_iteration(dim, 4000, Start::Seed(5), |v| {
            let dv: Vec<f64> = v.iter().zip(&p_inv).map(|(x, p)| x * p.sqrt()).collect();
            f.hessian
                .iter()
                .zip(&p_inv)
                .map(|(row, p)| dot(row, &dv) * p.sqrt())
                .collect()
        });
        let rel = (pre.eigenvalue - exact_pre.eigenvalue).abs() / exact_pre.eigenvalue;
        assert!(
            rel < 1e-6,
            "estimate {pre:?} exact {exact_pre:?} rel {rel:e}"
        );
        let raw = power_iteration(dim, 2000, Start::Seed(5), |v| {
            f.hessian.iter().map(|row| dot(row, v)).collect()
        });
        assert!((exact_pre.eigenvalue - raw.eigenvalue).abs() > 0.1 * raw.eigenvalue);
    }
}
