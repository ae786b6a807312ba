//! The CubeCL kernels: one cube per row, units striding over the row in vector loads, shared
//! memory tree reductions across the cube.
//!
//! Types: `S` the stored logits (and gradient), `C` the compute dtype, `I` the labels.

use burn_cubecl::cubecl;
use cubecl::prelude::*;

use crate::cube_plan::row;

/// Forward: writes the `[row::COUNT, n]` block of per-row values (see [`row`]).
///
/// With `two_pass`, a first pass finds `z_max` (and the runner-up, the label's logit and the row
/// sum of the logits), a second sums `exp(z - z_max)`: each term is the portable kernel's. Without
/// it the row is read once: every unit keeps a running max and a sum rescaled by
/// `exp(m_old - m_new)` when its max grows, and the unit sums are rescaled to the row's max
/// before they are added.
#[cube(launch_unchecked, address_type = "dynamic")]
#[allow(clippy::too_many_arguments)]
pub(crate) fn forward_kernel<S: Float, C: Float, I: Numeric, N: Size>(
    logits: &Tensor<Vector<S, N>>,
    targets: &Tensor<I>,
    rows: &mut Tensor<C>,
    k: usize,
    neg_inf: InputScalar,
    nan: InputScalar,
    #[comptime] units: usize,
    #[comptime] two_pass: bool,
    #[comptime] stats: bool,
    #[define(S, C, I)] _dtypes: [StorageType; 3],
) {
    let n = targets.shape(0);
    let r = CUBE_POS;
    if r >= n {
        terminate!();
    }
    let width = N::value();
    let unit = UNIT_POS as usize;
    let loads = k / width;
    let base = r * logits.stride(0) / width;
    let label = u32::cast_from(targets[r * targets.stride(0)]) as usize;
    let neg_inf = neg_inf.get::<C>();
    let zero = C::new(0.0);
    let one = C::new(1.0);

    let mut shared = SharedMemory::<C>::new(3 * units);
    // The label's logit, written by the unit that reads it; NaN for a label outside the row.
    let mut label_logit = SharedMemory::<C>::new(1usize);
    if unit == 0 {
        label_logit[0] = nan.get::<C>();
    }
    sync_cube();

    let mut max = neg_inf;
    let mut runner_up = neg_inf;
    let mut z_sum = zero;
    // This unit's sums (one-read path: relative to its own running max).
    let mut sum = zero;
    let mut residual = zero;
    let mut i = unit;
    while i < loads {
        let zv = logits[base + i];
        #[unroll]
        for l in 0..width {
            let j = i * width + l;
            let z = C::cast_from(zv[l]);
            if j == label {
                label_logit[0] = z;
            }
            if two_pass {
                max = C::max(max, z);
            } else {
                // `exp(max - z)` is 0 on a unit's first element (max = -inf, sum = 0).
                if z > max {
                    let scale = (max - z).exp();
                    sum = sum * scale + one;
                    residual *= scale;
                    if j != label {
                        residual += one;
                    }
                    max = z;
                } else {
                    let e = (z - max).exp();
                    sum += e;
                    if j != label {
                        residual += e;
                    }
                }
            }
            if stats {
                if j != label {
                    runner_up = C::max(runner_up, z);
                }
                z_sum += z;
            }
        }
        i += units;
    }

    // The row's max (and runner-up, logit sum).
    tree_reduce::<C>(&mut shared, max, runner_up, z_sum, units, true);
    let row_max = shared[0];
    let row_runner_up = shared[units];
    let row_z_sum = shared[2 * units];
    sync_cube();

    if two_pass {
        let mut i = unit;
        while i < loads {
            let zv = logits[base + i];
            #[unroll]
            for l in 0..width {
                let j = i * width + l;
                let e = (C::cast_from(zv[l]) - row_max).exp();
                sum += e;
                if j != label {
                    residual += e;
                }
            }
            i += units;
        }
    } else {
        // This unit's sums relative to the row's max (a unit that read nothing has max -inf
        // and sums 0).
        let scale = (max - row_max).exp();
        sum *= scale;
        residual *= scale;
    }
    tree_reduce::<C>(&mut shared, sum, residual, zero, units, false);

    if unit == 0 {
        let total = shared[0];
        let log_sum = total.ln();
        let z_label = label_logit[0];
        let nll = -((z_label - row_max) - log_sum);
        let stride = rows.stride(0);
        rows[row::NLL * stride + r] = nll;
        rows[row::Z_MAX * stride + r] = row_max;
        rows[row::LOG_SUM * stride + r] = log_sum;
        if stats {
            let mut collapsed = zero;
            if total == one && z_label == row_max {
                collapsed = one;
            }
            let mut zero_loss = zero;
            if nll == zero {
                zero_loss = one;
            }
            rows[row::COLLAPSED * stride + r] = collapsed;
            rows[row::ZERO_LOSS * stride + r] = zero_loss;
            rows[row::RESIDUAL * stride + r] = shared[units] / total;
            rows[row::MARGIN * stride + r] = z_label - row_runner_up;
            rows[row::LOG_SUM_EXP * stride + r] = row_max + log_sum;
            rows[row::Z_SUM * stride + r] = row_z_sum;
        }
    }
}

/// Backward: `g = q v - [k == r] v` with `q = exp((z - z_max) - ln S)` recomputed from the logits
/// and the forward's per-row values, `v` the row's upstream gradient (divided by `n` for the
/// mean); with `zero_sum`, a first pass sums the row's `g` and the second writes `g - sum / k`.
#[cube(launch_unchecked, address_type = "dynamic")]
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward_kernel<S: Float, C: Float, I: Numeric, N: Size>(
    logits: &Tensor<Vector<S, N>>,
    targets: &Tensor<I>,
    rows: &Tensor<C>,
    upstream: &Tensor<C>,
    grad: &mut Tensor<Vector<S, N>>,
    k: usize,
    #[comptime] units: usize,
    #[comptime] per_row: bool,
    #[comptime] mean: bool,
    #[comptime] zero_sum: bool,
    #[define(S, C, I)] _dtypes: [StorageType; 3],
) {
    let n = targets.shape(0);
    let r = CUBE_POS;
    if r >= n {
        terminate!();
    }
    let width = N::value();
    let unit = UNIT_POS as usize;
    let loads = k / width;
    let base = r * logits.stride(0) / width;
    let out_base = r * grad.stride(0) / width;
    let label = u32::cast_from(targets[r * targets.stride(0)]) as usize;
    let stride = rows.stride(0);
    let row_max = rows[row::Z_MAX * stride + r];
    let log_sum = rows[row::LOG_SUM * stride + r];
    let mut v = upstream[0];
    if per_row {
        v = upstream[r * upstream.stride(0)];
    }
    if mean {
        // PyTorch's NLL backward divides the upstream gradient by the number of rows.
        v /= C::cast_from(n);
    }

    let mut shift = C::new(0.0);
    if zero_sum {
        let mut shared = SharedMemory::<C>::new(3 * units);
        let mut sum = C::new(0.0);
        let mut i = unit;
        while i < loads {
            let zv = logits[base + i];
            #[unroll]
            for l in 0..width {
                let z = C::cast_from(zv[l]);
                sum += gradient::<C>(z, i * width + l, label, row_max, log_sum, v);
            }
            i += units;
        }
        tree_reduce::<C>(&mut shared, sum, C::new(0.0), C::new(0.0), units, false);
        shift = shared[0] / C::cast_from(k);
    }

    let mut i = unit;
    while i < loads {
        let zv = logits[base + i];
        let mut out = zv;
        #[unroll]
        for l in 0..width {
            let z = C::cast_from(zv[l]);
            let g = gradient::<C>(z, i * width + l, label, row_max, log_sum, v);
            if zero_sum {
                out[l] = S::cast_from(g - shift);
            } else {
                out[l] = S::cast_from(g);
            }
        }
        grad[out_base + i] = out;
        i += units;
    }
}

/// One element of the log-softmax + NLL gradient in the portable kernel's order:
/// `fl(exp((z - z_max) - ln S) * v)`, minus `v` at the label.
#[cube]
fn gradient<C: Float>(z: C, j: usize, label: usize, row_max: C, log_sum: C, v: C) -> C {
    let qv = ((z - row_max) - log_sum).exp() * v;
    let mut g = qv;
    if j == label {
        g = qv - v;
    }
    g
}

/// Reduces three values over the cube into `shared[0]`, `shared[units]` and
/// `shared[2 * units]`: max, max, sum when `maxes`, else sum, sum, sum. `units` is a power of
/// two; every unit must call it (it synchronises the cube).
#[cube]
fn tree_reduce<C: Float>(
    shared: &mut SharedMemory<C>,
    a: C,
    b: C,
    c: C,
    #[comptime] units: usize,
    #[comptime] maxes: bool,
) {
    let unit = UNIT_POS as usize;
    shared[unit] = a;
    shared[units + unit] = b;
    shared[2 * units + unit] = c;
    sync_cube();
    let mut active = units.runtime();
    while active > 1 {
        active /= 2;
        if unit < active {
            let other = unit + active;
            if maxes {
                shared[unit] = C::max(shared[unit], shared[other]);
                shared[units + unit] = C::max(shared[units + unit], shared[units + other]);
            } else {
                shared[unit] = shared[unit] + shared[other];
                shared[units + unit] = shared[units + unit] + shared[units + other];
            }
            shared[2 * units + unit] = shared[2 * units + unit] + shared[2 * units + other];
        }
        sync_cube();
    }
}
