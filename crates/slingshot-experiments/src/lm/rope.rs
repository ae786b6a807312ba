//! Rotary position embedding (RoPE): each query and key is rotated, pair of coordinates by
//! pair, by an angle proportional to its position, so that `q_m . k_n` depends on the positions
//! only through `m - n`.
//!
//! The pairs are `(x_i, x_{i + h/2})` for `i < h/2` (the "half" layout of GPT-NeoX and
//! LLaMA-style code), with frequency `theta^(-2i/h)`.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

/// The cosines and sines of the rotation angles, `[seq, head_dim / 2]` each.
#[derive(Debug, Clone)]
pub struct RopeTables<B: Backend> {
    cos: Tensor<B, 2>,
    sin: Tensor<B, 2>,
}

impl<B: Backend> RopeTables<B> {
    /// The tables for positions `0..seq` of heads `head_dim` wide (even). The angles are
    /// computed in f64 on the host, so that positions up to thousands keep their precision in
    /// any model dtype.
    pub fn new(seq: usize, head_dim: usize, theta: f64, device: &B::Device) -> Self {
        let half = head_dim / 2;
        let (mut cos, mut sin) = (
            Vec::with_capacity(seq * half),
            Vec::with_capacity(seq * half),
        );
        for pos in 0..seq {
            for i in 0..half {
                let angle = pos as f64 * theta.powf(-2.0 * i as f64 / head_dim as f64);
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        let table =
            |v: Vec<f32>| Tensor::<B, 2>::from_data(TensorData::new(v, [seq, half]), device);
        Self {
            cos: table(cos),
            sin: table(sin),
        }
    }

    /// Rotates `x` `[batch, heads, seq, head_dim]` (the tables' `seq` and `head_dim`), in its
    /// own dtype.
    pub fn apply(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [_, _, seq, head_dim] = x.dims();
        let half = head_dim / 2;
        let dtype = x.dtype();
        let cos = self.cos.clone().cast(dtype).reshape([1, 1, seq, half]);
        let sin = self.sin.clone().cast(dtype).reshape([1, 1, seq, half]);
        let x1 = x.clone().narrow(3, 0, half);
        let x2 = x.narrow(3, half, half);
        Tensor::cat(
            vec![
                x1.clone() * cos.clone() - x2.clone() * sin.clone(),
                x1 * sin + x2 * cos,
            ],
            3,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn_ndarray::NdArray;

    // f32, as every test in this process: burn keeps one default float dtype per device.
    type B = NdArray;

    fn tensor(v: &[f64], seq: usize, h: usize) -> Tensor<B, 4> {
        let v: Vec<f32> = v.iter().map(|&x| x as f32).collect();
        Tensor::from_data(TensorData::new(v, [1, 1, seq, h]), &Default::default())
    }

    fn values(t: Tensor<B, 4>) -> Vec<f64> {
        t.into_data().convert::<f64>().to_vec().unwrap()
    }

    #[test]
    fn a_two_wide_head_rotates_by_the_position_in_radians() {
        // h = 2: one pair, frequency theta^0 = 1, so position m rotates by m radians.
        let rope = RopeTables::<B>::new(3, 2, 10000.0, &Default::default());
        let out = values(rope.apply(tensor(&[1.0, 0.0, 1.0, 0.0, 0.5, 2.0], 3, 2)));
        let expect = [
            1.0,
            0.0,
            1f64.cos(),
            1f64.sin(),
            0.5 * 2f64.cos() - 2.0 * 2f64.sin(),
            0.5 * 2f64.sin() + 2.0 * 2f64.cos(),
        ];
        for (a, b) in out.iter().zip(expect) {
            assert!((a - b).abs() < 1e-6, "{out:?} vs {expect:?}");
        }
    }

    #[test]
    fn rotation_keeps_norms_and_dot_products_depend_on_the_offset_only() {
        let (seq, h) = (12, 8);
        let rope = RopeTables::<B>::new(seq, h, 100.0, &Default::default());
        let q: Vec<f64> = (0..h).map(|i| (i as f64 * 0.7).sin() + 0.1).collect();
        let k: Vec<f64> = (0..h).map(|i| (i as f64 * 1.3).cos() - 0.2).collect();
        // The same q and the same k at every position.
        let rq = values(rope.apply(tensor(&q.repeat(seq), seq, h)));
        let rk = values(rope.apply(tensor(&k.repeat(seq), seq, h)));
        let at = |v: &[f64], m: usize| v[m * h..(m + 1) * h].to_vec();
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        let norm_q = dot(&q, &q).sqrt();
        for m in 0..seq {
            assert!((dot(&at(&rq, m), &at(&rq, m)).sqrt() - norm_q).abs() < 1e-5);
        }
        for offset in 0..4 {
            let reference = dot(&at(&rq, offset), &at(&rk, 0));
            for n in 1..seq - offset {
                let d = dot(&at(&rq, n + offset), &at(&rk, n));
                assert!((d - reference).abs() < 2e-5, "offset {offset}, n {n}");
            }
        }
        // And it does depend on the offset.
        assert!((dot(&at(&rq, 3), &at(&rk, 0)) - dot(&at(&rq, 0), &at(&rk, 0))).abs() > 1e-3);
    }
}
