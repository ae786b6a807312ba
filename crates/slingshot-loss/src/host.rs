//! The fused kernel for backends whose tensors live in host memory (burn-ndarray, burn-flex).
//!
//! The portable kernel makes about a dozen passes over `[n, k]` temporaries, and burn-ndarray
//! runs `exp` single-threaded. Here each row is handled by one task (rows in parallel with
//! rayon): read three times while it is in cache, `q` written once. The operation order is the
//! portable kernel's, and row sums add in burn-ndarray's eight-accumulator order, so on ndarray
//! both kernels return the same bits (tested); burn-flex sums in its own order, so there the two
//! agree within the tolerance of `docs/loss.md` (tested). It covers the softmax normalizer without label
//! smoothing or z-loss, computed natively in f32 or f64; everything else takes the portable
//! path.

use burn::tensor::backend::Backend;
use std::borrow::Cow;

use burn::tensor::{Bool, DType, Element, Int, Tensor, TensorData};
use ndarray::{ArrayView, IxDyn};
use num_traits::{AsPrimitive, Float};
use rayon::prelude::*;

use crate::kernel::{Forward, GradParts, LossPlan};
use crate::{CollapseStats, LossError, LossReduction as Reduction};

/// Rows per rayon task at least, so that small rows are not scheduled one by one.
const MIN_ELEMENTS_PER_TASK: usize = 8192;

/// The dtype this kernel computes `plan` in for logits of `dtype`, if it covers the case: the
/// plans the fused CubeCL kernel covers, on f32/f64 logits (the others take the portable kernel).
pub(crate) fn compute_dtype(plan: &LossPlan, dtype: DType) -> Option<DType> {
    if !matches!(dtype, DType::F32 | DType::F64) {
        return None;
    }
    crate::cube_plan::fused_compute_dtype(plan, dtype)
}

/// The softmax probabilities kept for the backward pass, in the loss precision.
#[derive(Debug, Clone)]
pub(crate) enum HostProbabilities {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

/// What the backward pass of the fused kernel needs.
#[derive(Debug, Clone)]
pub(crate) struct HostGrad<B: Backend> {
    q: HostProbabilities,
    labels: Vec<usize>,
    k: usize,
    reduction: Reduction,
    zero_sum: bool,
    logits_dtype: DType,
    device: B::Device,
}

/// The logits in row-major order, borrowed from the backend's buffer where it allows.
pub(crate) enum HostLogits<'a> {
    F32(Cow<'a, [f32]>),
    F64(Cow<'a, [f64]>),
}

/// Forward pass on logits read in place from host memory (burn-ndarray's or burn-flex's
/// buffer); `compute` is [`compute_dtype`]'s answer.
pub(crate) fn forward<B: Backend>(
    logits: HostLogits<'_>,
    targets: Tensor<B, 1, Int>,
    [n, k]: [usize; 2],
    device: B::Device,
    plan: &LossPlan,
    compute: DType,
    need_grad: bool,
) -> Result<Forward<B>, LossError> {
    let labels = read_labels(targets, k)?;
    let logits_dtype = match logits {
        HostLogits::F32(_) => DType::F32,
        HostLogits::F64(_) => DType::F64,
    };
    let run = Run::<B> {
        n,
        k,
        plan,
        need_grad,
        device,
        logits_dtype,
    };
    let f = match (&logits, compute) {
        (HostLogits::F32(z), DType::F32) => run.go::<f32, f32>(z, labels),
        (HostLogits::F32(z), _) => run.go::<f32, f64>(z, labels),
        (HostLogits::F64(z), DType::F32) => run.go::<f64, f32>(z, labels),
        (HostLogits::F64(z), _) => run.go::<f64, f64>(z, labels),
    };
    Ok(f)
}

/// The elements in row-major order: borrowed when the array is laid out that way (the usual
/// case; burn-ndarray's `into_data` would copy element by element when the buffer is shared,
/// as it is under autodiff), copied otherwise.
pub(crate) fn contiguous<'a, E: Element>(view: ArrayView<'a, E, IxDyn>) -> Cow<'a, [E]> {
    match view.to_slice() {
        Some(slice) => Cow::Borrowed(slice),
        None => Cow::Owned(view.iter().copied().collect()),
    }
}

/// The labels on the host. They are read anyway, so they are always range-checked here: an
/// out-of-range label would otherwise index out of bounds even with `check_inputs` off.
fn read_labels<B: Backend>(targets: Tensor<B, 1, Int>, k: usize) -> Result<Vec<usize>, LossError> {
    // A host backend's `into_data` is a copy of `n` integers, not a device read.
    let raw: Vec<i64> = targets.into_data().iter::<i64>().collect();
    let outside = raw.iter().filter(|&&t| t < 0 || t >= k as i64).count();
    if outside > 0 {
        return Err(LossError::TargetOutOfRange {
            classes: k,
            count: outside,
            min: *raw.iter().min().expect("non-empty batch"),
            max: *raw.iter().max().expect("non-empty batch"),
        });
    }
    Ok(raw.into_iter().map(|t| t as usize).collect())
}

/// One row's results.
#[derive(Debug, Clone, Copy)]
struct RowOut<T> {
    nll: T,
    lse: T,
    absorbed: bool,
    label_is_max: bool,
    margin: T,
    residual: T,
}

struct Run<'a, B: Backend> {
    n: usize,
    k: usize,
    plan: &'a LossPlan,
    need_grad: bool,
    device: B::Device,
    logits_dtype: DType,
}

impl<B: Backend> Run<'_, B> {
    /// Logits stored as `S`, loss computed in `T`.
    fn go<S, T>(&self, z: &[S], labels: Vec<usize>) -> Forward<B>
    where
        S: Float + AsPrimitive<T> + Send + Sync,
        T: HostFloat,
        HostProbabilities: From<Vec<T>>,
    {
        let (n, k) = (self.n, self.k);
        let min_len = MIN_ELEMENTS_PER_TASK.div_ceil(k);
        let mut q = if self.need_grad {
            vec![T::zero(); n * k]
        } else {
            Vec::new()
        };
        let rows: Vec<RowOut<T>> = if self.need_grad {
            q.par_chunks_mut(k)
                .zip(z.par_chunks(k))
                .zip(labels.par_iter())
                .with_min_len(min_len)
                .map(|((q, z), &label)| row(z, label, Some(q)))
                .collect()
        } else {
            z.par_chunks(k)
                .zip(labels.par_iter())
                .with_min_len(min_len)
                .map(|(z, &label)| row(z, label, None))
                .collect()
        };

        let dtype = T::dtype();
        let device = &self.device;
        let vector =
            |v: Vec<T>| Tensor::<B, 1>::from_data(TensorData::new(v, [n]), (device, dtype));
        let mask = |v: Vec<bool>| Tensor::<B, 1, Bool>::from_data(TensorData::new(v, [n]), device);

        let nll: Vec<T> = rows.iter().map(|r| r.nll).collect();
        let zero_loss: Vec<bool> = nll.iter().map(|&l| l == T::zero()).collect();
        // The reduction on the device, exactly as the portable kernel does it: of the
        // log-probabilities, negated afterwards (so that a sum of zero losses is -0.0).
        let loss = match self.plan.reduction {
            Reduction::Mean => {
                let lp = vector(nll.iter().map(|&l| -l).collect()).reshape([1, n]);
                (lp.sum_dim(1).reshape([1]) / n as f64).neg()
            }
            Reduction::Sum => {
                let lp = vector(nll.iter().map(|&l| -l).collect()).reshape([1, n]);
                lp.sum_dim(1).reshape([1]).neg()
            }
            Reduction::None => vector(nll),
        };

        let stats = self.plan.stats.then(|| {
            // burn-ndarray's `mean`: all elements in the eight-accumulator order, over the count.
            let total = unrolled8_sum(z.len(), |j| z[j].as_());
            let count: T = num_traits::cast(z.len()).expect("element count fits the float type");
            let mean_logit = Tensor::<B, 1>::from_data(
                TensorData::new(vec![total / count], [1]),
                (device, dtype),
            );
            CollapseStats::from_rows(
                mask(rows.iter().map(|r| r.absorbed && r.label_is_max).collect()),
                mask(zero_loss),
                vector(rows.iter().map(|r| r.margin).collect()),
                vector(rows.iter().map(|r| r.residual).collect()),
                vector(rows.iter().map(|r| r.lse).collect()),
                mean_logit,
            )
        });

        let grad = self.need_grad.then(|| {
            GradParts::Host(HostGrad {
                q: q.into(),
                labels,
                k,
                reduction: self.plan.reduction,
                zero_sum: self.plan.zero_sum,
                logits_dtype: self.logits_dtype,
                device: self.device.clone(),
            })
        });
        Forward {
            loss: loss.cast(self.logits_dtype),
            grad,
            stats,
        }
    }
}

/// One row in the portable kernel's order: `s = z - z_max`, `S = sum exp(s)`, `lp = s - ln S`,
/// `q = exp(lp)` (PyTorch's backward takes `exp` of the log-softmax output).
fn row<S, T>(zs: &[S], label: usize, q: Option<&mut [T]>) -> RowOut<T>
where
    S: Float + AsPrimitive<T>,
    T: Float + 'static,
{
    let len = zs.len();
    let z = |j: usize| -> T { zs[j].as_() };
    let mut z_max = z(0);
    let mut runner_up = T::neg_infinity();
    for j in 0..len {
        let v = z(j);
        if v > z_max {
            z_max = v;
        }
        if j != label && v > runner_up {
            runner_up = v;
        }
    }
    let z_label = z(label);
    // The residual sum is the same sum with the label's term replaced by +0, as the portable
    // kernel's scatter of `-term` at the label leaves it.
    let (sum, residual_sum) = unrolled8_sum2(len, |j| {
        let e = (z(j) - z_max).exp();
        (e, if j == label { T::zero() } else { e })
    });
    let log_sum = sum.ln();
    if let Some(q) = q {
        for (j, q) in q.iter_mut().enumerate() {
            *q = ((z(j) - z_max) - log_sum).exp();
        }
    }
    RowOut {
        nll: -((z_label - z_max) - log_sum),
        lse: z_max + log_sum,
        absorbed: sum == T::one(),
        label_is_max: z_label == z_max,
        margin: z_label - runner_up,
        residual: residual_sum / sum,
    }
}

/// The float types the fused kernel computes in.
pub(crate) trait HostFloat:
    Float + Element + AsPrimitive<f32> + AsPrimitive<f64> + Send + Sync
{
}
impl HostFloat for f32 {}
impl HostFloat for f64 {}

impl From<Vec<f32>> for HostProbabilities {
    fn from(q: Vec<f32>) -> Self {
        Self::F32(q)
    }
}

impl From<Vec<f64>> for HostProbabilities {
    fn from(q: Vec<f64>) -> Self {
        Self::F64(q)
    }
}

/// burn-ndarray's (ndarray's) order for a contiguous sum: eight accumulators from +0 taking
/// every eighth element, combined as `(0+4) + (1+5) + (2+6) + (3+7)` onto +0, then the tail in
/// order.
fn unrolled8_sum<T: Float>(len: usize, x: impl Fn(usize) -> T) -> T {
    unrolled8_sum2(len, |j| (x(j), T::zero())).0
}

/// Two sums in [`unrolled8_sum`]'s order in one sweep.
fn unrolled8_sum2<T: Float>(len: usize, x: impl Fn(usize) -> (T, T)) -> (T, T) {
    let mut a = [T::zero(); 8];
    let mut b = [T::zero(); 8];
    let blocks = len / 8;
    for block in 0..blocks {
        for lane in 0..8 {
            let (xa, xb) = x(block * 8 + lane);
            a[lane] = a[lane] + xa;
            b[lane] = b[lane] + xb;
        }
    }
    let combine = |p: &[T; 8]| {
        let mut acc = T::zero();
        for lane in 0..4 {
            acc = acc + (p[lane] + p[lane + 4]);
        }
        acc
    };
    let (mut sa, mut sb) = (combine(&a), combine(&b));
    for j in blocks * 8..len {
        let (xa, xb) = x(j);
        sa = sa + xa;
        sb = sb + xb;
    }
    (sa, sb)
}

impl<B: Backend> HostGrad<B> {
    /// `d loss / d logits` for the upstream gradient (shape `[1]`, or `[n]` for
    /// `Reduction::None`), in the logits' dtype: the portable kernel's `GradParts::gradient`,
    /// row by row.
    pub(crate) fn gradient(self, upstream: Tensor<B, 1>) -> Tensor<B, 2> {
        // Exact: the upstream gradient is f32 or f64.
        let upstream: Vec<f64> = upstream.into_data().iter::<f64>().collect();
        match (&self.q, self.logits_dtype) {
            (HostProbabilities::F32(q), DType::F32) => self.rows::<f32, f32>(q, &upstream),
            (HostProbabilities::F32(q), _) => self.rows::<f32, f64>(q, &upstream),
            (HostProbabilities::F64(q), DType::F32) => self.rows::<f64, f32>(q, &upstream),
            (HostProbabilities::F64(q), _) => self.rows::<f64, f64>(q, &upstream),
        }
    }

    /// `q` in `T`, gradient stored as `O`.
    fn rows<T, O>(&self, q: &[T], upstream: &[f64]) -> Tensor<B, 2>
    where
        T: HostFloat + AsPrimitive<O>,
        O: HostFloat,
    {
        let k = self.k;
        let n = q.len() / k;
        // The upstream gradient cast to the loss precision, then PyTorch's division by the
        // number of rows for the mean.
        let up: Vec<T> = upstream
            .iter()
            .map(|&u| num_traits::cast::<f64, T>(u).expect("float to float"))
            .collect();
        let rows_t: T = num_traits::cast(n).expect("row count fits the float type");
        let k_t: T = num_traits::cast(k).expect("class count fits the float type");
        let v_of = |i: usize| match self.reduction {
            Reduction::Mean => up[0] / rows_t,
            Reduction::Sum => up[0],
            Reduction::None => up[i],
        };
        let mut out = vec![O::zero(); n * k];
        let min_len = MIN_ELEMENTS_PER_TASK.div_ceil(k);
        out.par_chunks_mut(k)
            .zip(q.par_chunks(k))
            .zip(self.labels.par_iter())
            .enumerate()
            .with_min_len(min_len)
            .for_each(|(i, ((out, q), &label))| {
                let v = v_of(i);
                // fl(q v), then fl(q v - v) at the label.
                let g = |j: usize| {
                    let qv = q[j] * v;
                    if j == label { qv - v } else { qv }
                };
                if self.zero_sum {
                    let mean = unrolled8_sum(k, g) / k_t;
                    for (j, o) in out.iter_mut().enumerate() {
                        *o = (g(j) - mean).as_();
                    }
                } else {
                    for (j, o) in out.iter_mut().enumerate() {
                        *o = g(j).as_();
                    }
                }
            });
        Tensor::<B, 2>::from_data(TensorData::new(out, [n, k]), (&self.device, O::dtype()))
    }
}
