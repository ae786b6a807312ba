//! The token stream and its batches: seeded random windows, a function of the seed and the
//! step alone, so that a resumed run draws exactly the batches of an uninterrupted one.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::corpus::Corpus;
use super::tokenizer::{END_OF_TEXT, Tokenizer};
use crate::error::ExperimentError;

/// The whole corpus as one token sequence, documents separated by end-of-text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenStream {
    /// The tokens.
    pub tokens: Vec<u32>,
}

impl TokenStream {
    /// Encodes every document, each followed by [`END_OF_TEXT`], and checks that at least one
    /// window of `seq_len + 1` tokens (inputs and shifted targets) fits.
    pub fn new(
        corpus: &Corpus,
        tokenizer: &Tokenizer,
        seq_len: usize,
    ) -> Result<Self, ExperimentError> {
        let mut tokens = Vec::new();
        for doc in &corpus.documents {
            tokens.extend(tokenizer.encode(doc));
            tokens.push(END_OF_TEXT);
        }
        if tokens.len() < seq_len + 1 {
            return Err(ExperimentError::Dataset {
                path: corpus.source.clone().into(),
                reason: format!(
                    "the corpus has {} tokens, fewer than one window of seq-len + 1 = {}",
                    tokens.len(),
                    seq_len + 1
                ),
            });
        }
        Ok(Self { tokens })
    }

    /// The start of each window of step `step`: `batch` uniform draws in
    /// `0..=len - seq_len - 1`.
    pub fn window_starts(&self, seed: u64, step: u64, batch: usize, seq_len: usize) -> Vec<usize> {
        let last = self.tokens.len() - seq_len - 1;
        // One generator per step (the step mixed in with a large odd constant).
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        (0..batch).map(|_| rng.random_range(0..=last)).collect()
    }

    /// Inputs `[batch, seq_len]` and targets (the inputs shifted by one) of step `step`.
    pub fn batch<B: Backend>(
        &self,
        seed: u64,
        step: u64,
        batch: usize,
        seq_len: usize,
        device: &B::Device,
    ) -> (Tensor<B, 2, Int>, Tensor<B, 2, Int>) {
        let mut ids = Vec::with_capacity(batch * (seq_len + 1));
        for start in self.window_starts(seed, step, batch, seq_len) {
            ids.extend(
                self.tokens[start..=start + seq_len]
                    .iter()
                    .map(|&t| i64::from(t)),
            );
        }
        let window =
            Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [batch, seq_len + 1]), device);
        let inputs = window.clone().narrow(1, 0, seq_len);
        let targets = window.narrow(1, 1, seq_len);
        (inputs, targets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn_ndarray::NdArray;

    #[test]
    fn targets_are_the_inputs_shifted_and_batches_depend_on_the_step_alone() {
        let corpus = Corpus {
            source: "test".into(),
            documents: vec!["abcdefghijklmnopqrstuvwxyz".into()],
        };
        let stream = TokenStream::new(&corpus, &Tokenizer::byte(), 8).unwrap();
        assert_eq!(stream.tokens.len(), 27);
        let (x, y) = stream.batch::<NdArray>(7, 3, 4, 8, &Default::default());
        let x: Vec<i64> = x.into_data().convert::<i64>().to_vec().unwrap();
        let y: Vec<i64> = y.into_data().convert::<i64>().to_vec().unwrap();
        for row in 0..4 {
            assert_eq!(x[row * 8 + 1..row * 8 + 8], y[row * 8..row * 8 + 7]);
        }
        assert_eq!(
            stream.window_starts(7, 3, 4, 8),
            stream.window_starts(7, 3, 4, 8)
        );
        assert_ne!(
            stream.window_starts(7, 3, 16, 8),
            stream.window_starts(7, 4, 16, 8)
        );
    }

    #[test]
    fn a_corpus_shorter_than_a_window_is_refused() {
        let corpus = Corpus {
            source: "short.txt".into(),
            documents: vec!["abc".into()],
        };
        let e = TokenStream::new(&corpus, &Tokenizer::byte(), 8)
            .unwrap_err()
            .to_string();
        assert!(e.contains("fewer than one window"), "{e}");
    }
}
