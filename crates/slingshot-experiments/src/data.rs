//! The algorithmic tasks: `c = a op b (mod p)` over every pair, tokens `[a, OP, b, =]`, split
//! 50/50 with a seeded shuffle.

use std::fmt;
use std::str::FromStr;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::ExperimentError;

/// The binary operation of the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// `a + b mod p`.
    Add,
    /// `a - b mod p`.
    Sub,
    /// `a * b mod p`.
    Mul,
    /// `a * b^-1 mod p`, `b != 0` (the paper's task).
    Div,
}

impl Operation {
    fn apply(self, a: u64, b: u64, p: u64) -> u64 {
        match self {
            Operation::Add => (a + b) % p,
            Operation::Sub => (a + p - b) % p,
            Operation::Mul => (a * b) % p,
            Operation::Div => (a * mod_pow(b, p - 2, p)) % p,
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Add => "add",
            Operation::Sub => "sub",
            Operation::Mul => "mul",
            Operation::Div => "div",
        })
    }
}

impl FromStr for Operation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "add" => Ok(Self::Add),
            "sub" => Ok(Self::Sub),
            "mul" => Ok(Self::Mul),
            "div" => Ok(Self::Div),
            other => Err(format!(
                "unknown operation {other:?}; expected add, sub, mul or div"
            )),
        }
    }
}

/// `b^e mod p` by squaring (Fermat's inverse for prime `p`).
fn mod_pow(mut b: u64, mut e: u64, p: u64) -> u64 {
    let mut r = 1;
    b %= p;
    while e > 0 {
        if e & 1 == 1 {
            r = r * b % p;
        }
        b = b * b % p;
        e >>= 1;
    }
    r
}

fn is_prime(p: u64) -> bool {
    p >= 2
        && (2..)
            .take_while(|d| d * d <= p)
            .all(|d| !p.is_multiple_of(d))
}

/// One example: the four input tokens and the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Example {
    /// `[a, OP, b, =]` with `OP = p` and `= = p + 1`.
    pub tokens: [usize; 4],
    /// `c`, in `[0, p)`.
    pub label: usize,
}

/// The whole task, split into a train and a test half.
#[derive(Debug, Clone)]
pub struct ModularTask {
    /// The modulus (a prime).
    pub p: usize,
    /// The operation.
    pub op: Operation,
    /// The training examples.
    pub train: Vec<Example>,
    /// The held-out examples.
    pub test: Vec<Example>,
}

/// The smallest `b` of a pair: 1 for division (no division by zero), 0 otherwise.
fn first_b(op: Operation) -> usize {
    usize::from(op == Operation::Div)
}

/// The number of pairs `(a, b)` of the task mod `p` under `op`.
pub fn pair_count(p: usize, op: Operation) -> usize {
    p * p.saturating_sub(first_b(op))
}

/// The training rows of `pairs` examples split at `train_fraction`: at least one in each
/// split.
pub fn train_count(pairs: usize, train_fraction: f64) -> usize {
    let n = ((pairs as f64) * train_fraction).round() as usize;
    n.clamp(1, pairs.saturating_sub(1).max(1))
}

/// Checks the modulus and the training share, before anything is built.
pub fn check_task(p: usize, train_fraction: f64) -> Result<(), ExperimentError> {
    if !(3..=4093).contains(&p) || !is_prime(p as u64) {
        return Err(ExperimentError::InvalidConfig(format!(
            "p = {p}: the modulus must be a prime in [3, 4093]"
        )));
    }
    if !(train_fraction > 0.0 && train_fraction < 1.0) {
        return Err(ExperimentError::InvalidConfig(format!(
            "train fraction {train_fraction}: must be in (0, 1)"
        )));
    }
    Ok(())
}

impl ModularTask {
    /// Every `a` in `[0, p)` and `b` in `[0, p)` (`[1, p)` for division), shuffled with `seed`,
    /// `train_fraction` of them for training. `p` must be a prime of at least 3.
    pub fn try_new(
        p: usize,
        op: Operation,
        train_fraction: f64,
        seed: u64,
    ) -> Result<Self, ExperimentError> {
        check_task(p, train_fraction)?;
        let b_start = first_b(op);
        let mut all: Vec<Example> = (0..p)
            .flat_map(|a| (b_start..p).map(move |b| (a, b)))
            .map(|(a, b)| Example {
                tokens: [a, p, b, p + 1],
                label: op.apply(a as u64, b as u64, p as u64) as usize,
            })
            .collect();
        all.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        let test = all.split_off(train_count(all.len(), train_fraction));
        Ok(Self {
            p,
            op,
            train: all,
            test,
        })
    }

    /// The vocabulary size `p + 2` (the numbers, `OP` and `=`).
    pub fn vocab(&self) -> usize {
        self.p + 2
    }

    /// The number of classes `p`.
    pub fn classes(&self) -> usize {
        self.p
    }
}

/// Flattened one-hot inputs `[n, 4 * vocab]` (the MLP's input), row-major.
pub fn one_hot_rows(examples: &[Example], vocab: usize) -> Vec<f32> {
    let mut x = vec![0.0; examples.len() * 4 * vocab];
    for (i, e) in examples.iter().enumerate() {
        for (pos, &t) in e.tokens.iter().enumerate() {
            x[i * 4 * vocab + pos * vocab + t] = 1.0;
        }
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn division_pairs_and_answers() {
        let task = ModularTask::try_new(97, Operation::Div, 0.5, 0).unwrap();
        assert_eq!(task.train.len() + task.test.len(), 97 * 96);
        assert_eq!(task.train.len(), 4656);
        for e in task.train.iter().chain(&task.test) {
            let [a, op, b, eq] = e.tokens;
            assert_eq!((op, eq), (97, 98));
            assert_ne!(b, 0);
            // c * b == a (mod p): the definition of division.
            assert_eq!((e.label * b) % 97, a);
        }
    }

    #[test]
    fn the_split_depends_on_the_seed_only() {
        let a = ModularTask::try_new(23, Operation::Add, 0.5, 7).unwrap();
        let b = ModularTask::try_new(23, Operation::Add, 0.5, 7).unwrap();
        let c = ModularTask::try_new(23, Operation::Add, 0.5, 8).unwrap();
        assert_eq!(a.train, b.train);
        assert_ne!(a.train, c.train);
    }

    #[test]
    fn bad_moduli_and_fractions_are_errors() {
        assert!(ModularTask::try_new(96, Operation::Div, 0.5, 0).is_err());
        assert!(ModularTask::try_new(2, Operation::Div, 0.5, 0).is_err());
        assert!(ModularTask::try_new(97, Operation::Div, 1.0, 0).is_err());
        assert_eq!(
            "mul".parse::<Operation>().unwrap(),
            Operation::Mul,
            "operations parse"
        );
        assert!("pow".parse::<Operation>().is_err());
    }

    #[test]
    fn one_hot_has_four_ones_per_row() {
        let task = ModularTask::try_new(5, Operation::Sub, 0.5, 0).unwrap();
        let x = one_hot_rows(&task.train, task.vocab());
        let width = 4 * task.vocab();
        for row in x.chunks(width) {
            assert_eq!(row.iter().sum::<f32>(), 4.0);
        }
    }
}
