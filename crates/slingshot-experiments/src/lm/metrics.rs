//! What the language-model run writes: one [`LmRow`] per logged step in `metrics.csv`, the
//! [`LmSummary`] in `summary.json`, and the collapsed-token tally as `top-collapsed-tokens.txt`.

use serde::{Deserialize, Serialize};

use super::tokenizer::Tokenizer;

/// How many tokens the tally lists (the paper's list has ten).
pub const TOP_TOKENS: usize = 10;

/// The tally's file name.
pub const TOP_TOKENS_FILE: &str = "top-collapsed-tokens.txt";

/// Everything measured at one logged step, on that step's batch before the optimizer step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LmRow {
    /// Optimizer steps taken (1 after the first step).
    pub step: u64,
    /// The learning rate of this step.
    pub lr: f64,
    /// Mean loss over the batch's tokens.
    pub loss: f64,
    /// Tokens in the batch (`batch * seq_len`).
    pub tokens: u64,
    /// Tokens whose loss is exactly zero (softmax collapse, §4.3).
    pub zero_loss_tokens: u64,
    /// `zero_loss_tokens / tokens`.
    pub zero_loss_fraction: f64,
    /// Fraction of tokens whose normalizer sum is exactly their own term (the loss's
    /// `collapsed` mask; it implies a zero loss for softmax).
    pub collapsed_fraction: f64,
    /// Mean logit over the batch and the vocabulary (Fig. 13).
    pub mean_logit: f64,
    /// Mean over tokens of the logit vector's Euclidean norm.
    pub logit_norm: f64,
    /// Largest logit.
    pub max_logit: f64,
    /// The mean logit with `W_G` removed from the head at evaluation only (App. A.4): the
    /// logits `h (W - W_G)`. Each row only shifts by `h . W_G`, so the loss is unchanged.
    pub centered_mean_logit: f64,
    /// `||W_G||`, the norm of the output embedding's mean over tokens.
    pub w_g_norm: f64,
    /// `||mu_G||`, the norm of the batch's mean feature (the final LayerNorm's output).
    pub mu_g_norm: f64,
    /// `cos(W_G, mu_G)`.
    pub cos_wg_mug: f64,
    /// Zero-loss tokens over every step so far, logged or not.
    pub cumulative_zero_loss_tokens: u64,
    /// Seconds since the run started (a resumed run continues the count).
    pub wall_seconds: f64,
}

/// One entry of the collapsed-token tally.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopToken {
    /// Token id.
    pub token: u32,
    /// Its text (bytes decoded lossily as UTF-8).
    pub text: String,
    /// How many of its occurrences as a target had exactly zero loss.
    pub count: u64,
}

/// `summary.json` of one arm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LmSummary {
    /// Experiment name.
    pub experiment: String,
    /// The arm.
    pub arm: String,
    /// `ndarray` or `cuda`.
    pub backend: String,
    /// The model's dtype: `f32` or `bf16`.
    pub model_dtype: String,
    /// The loss's precision: `f32` or `f64`.
    pub loss_precision: String,
    /// Whether the head computes with `W - W_G` in training.
    pub centered_head: bool,
    /// Where the text came from.
    pub corpus: String,
    /// Bytes of text.
    pub corpus_bytes: usize,
    /// Tokens in the encoded corpus.
    pub corpus_tokens: usize,
    /// The tokenizer (`byte` or `bpe:N`).
    pub tokenizer: String,
    /// Tokens in the vocabulary.
    pub vocab_size: usize,
    /// Model parameters.
    pub params: usize,
    /// Steps taken.
    pub steps: u64,
    /// Tokens per step.
    pub tokens_per_step: u64,
    /// Training seconds (resumes included, restarts not).
    pub wall_seconds: f64,
    /// Training tokens per second.
    pub tokens_per_second: f64,
    /// Loss of the last logged step.
    pub final_loss: f64,
    /// Mean logit of the last logged step.
    pub final_mean_logit: f64,
    /// Largest logged mean logit.
    pub max_mean_logit: f64,
    /// Mean logit with `W_G` removed at evaluation, last logged step.
    pub final_centered_mean_logit: f64,
    /// `||W_G||` of the last logged step.
    pub final_w_g_norm: f64,
    /// Logit norm of the last logged step.
    pub final_logit_norm: f64,
    /// Zero-loss fraction of the last logged step.
    pub final_zero_loss_fraction: f64,
    /// Largest logged zero-loss fraction.
    pub max_zero_loss_fraction: f64,
    /// Zero-loss tokens over the whole run.
    pub total_zero_loss_tokens: u64,
    /// The first logged step with a zero-loss token.
    pub first_zero_loss_step: Option<u64>,
    /// The tally at that step: the tokens that collapsed first.
    pub first_collapsed_tokens: Vec<TopToken>,
    /// The [`TOP_TOKENS`] tokens that collapsed most often over the run.
    pub top_collapsed_tokens: Vec<TopToken>,
    /// The first logged step with a non-finite loss, where the run stopped.
    pub diverged_at: Option<u64>,
}

/// The `k` tokens with the largest counts (ties: smaller id first), zero counts left out.
pub fn top_tokens(counts: &[u64], tokenizer: &Tokenizer, k: usize) -> Vec<TopToken> {
    let mut order: Vec<usize> = (0..counts.len()).filter(|&t| counts[t] > 0).collect();
    order.sort_by(|&a, &b| counts[b].cmp(&counts[a]).then(a.cmp(&b)));
    order
        .into_iter()
        .take(k)
        .map(|t| TopToken {
            token: t as u32,
            text: tokenizer.token_text(t as u32),
            count: counts[t],
        })
        .collect()
}

/// The tally as text: one line per token, `rank  count  id  "text"` (text escaped, so that
/// spaces and newlines show).
pub fn format_top_tokens(arm: &str, tokens: &[TopToken]) -> String {
    let mut out =
        format!("# {arm}: tokens by zero-loss count over the run\n# rank\tcount\tid\ttext\n");
    for (i, t) in tokens.iter().enumerate() {
        out.push_str(&format!(
            "{}\t{}\t{}\t{:?}\n",
            i + 1,
            t.count,
            t.token,
            t.text
        ));
    }
    out
}

/// Reads a `metrics.csv` of rows back.
pub use crate::run::csv_log::read_rows;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tally_is_ordered_by_count_then_id_and_skips_zeros() {
        let mut counts = vec![0u64; 257];
        counts[b'.' as usize] = 5;
        counts[b'o' as usize] = 9;
        counts[b'e' as usize] = 5;
        let top = top_tokens(&counts, &Tokenizer::byte(), 10);
        let texts: Vec<&str> = top.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(texts, ["o", ".", "e"]);
        assert_eq!(top[0].count, 9);
        let text = format_top_tokens("f32", &top);
        assert!(text.contains("1\t9\t111\t\"o\""), "{text}");
    }
}
