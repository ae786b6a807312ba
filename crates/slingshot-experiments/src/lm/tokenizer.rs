//! Tokenizers: one token per byte (the default), or byte-level BPE trained on the corpus. Both
//! start from the 256 bytes, so every UTF-8 text (indeed every byte string) encodes, and
//! decoding gives the same bytes back.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

/// The end-of-text token, put between documents.
pub const END_OF_TEXT: u32 = 256;

/// Tokens of the byte tokenizer: the 256 bytes and [`END_OF_TEXT`].
pub const BYTE_VOCAB: usize = 257;

/// A byte-level tokenizer: tokens `0..256` are the bytes, 256 is end-of-text, and every later
/// token is a BPE merge of two earlier ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokenizer {
    /// The merges, in the order learned: token `257 + i` is `merges[i].0` then `merges[i].1`.
    merges: Vec<(u32, u32)>,
    /// Merge rank of each pair.
    ranks: HashMap<(u32, u32), u32>,
    /// The bytes of each token.
    pieces: Vec<Vec<u8>>,
}

impl Default for Tokenizer {
    fn default() -> Self {
        Self::byte()
    }
}

impl Tokenizer {
    /// One token per byte.
    pub fn byte() -> Self {
        let mut pieces: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        pieces.push(b"<|endoftext|>".to_vec());
        Self {
            merges: Vec::new(),
            ranks: HashMap::new(),
            pieces,
        }
    }

    /// Byte-level BPE learned from `documents`, up to `vocab` tokens (fewer when no pair
    /// occurs twice any more). Texts are first split into words (a letter or punctuation run
    /// with its leading space), and merges never cross words, as in GPT-2. Each merge takes the
    /// most frequent pair, ties going to the smallest pair, so the result depends on the text
    /// alone. Pair counts are updated incrementally, only in the words that contain the merged
    /// pair, and the best pair comes from a heap whose stale entries are skipped, so that large
    /// vocabularies (the paper preset's 50304) train in reasonable time.
    pub fn train_bpe<S: AsRef<str>>(documents: &[S], vocab: usize) -> Self {
        let mut tokenizer = Self::byte();
        let mut words = word_counts(documents);
        let mut pairs: HashMap<(u32, u32), u64> = HashMap::new();
        let mut holders: HashMap<(u32, u32), HashSet<usize>> = HashMap::new();
        for (i, (symbols, count)) in words.iter().enumerate() {
            for p in symbols.windows(2) {
                *pairs.entry((p[0], p[1])).or_default() += count;
                holders.entry((p[0], p[1])).or_default().insert(i);
            }
        }
        let mut heap: BinaryHeap<(u64, Reverse<(u32, u32)>)> =
            pairs.iter().map(|(&p, &c)| (c, Reverse(p))).collect();
        while tokenizer.vocab_size() < vocab {
            let Some((count, Reverse(pair))) = heap.pop() else {
                break;
            };
            // An entry is current when its count is the pair's count now.
            if pairs.get(&pair).copied().unwrap_or(0) != count {
                continue;
            }
            if count < 2 {
                break;
            }
            let token = tokenizer.push_merge(pair);
            let mut touched: Vec<usize> = holders
                .remove(&pair)
                .unwrap_or_default()
                .into_iter()
                .collect();
            touched.sort_unstable();
            let mut changed: HashSet<(u32, u32)> = HashSet::new();
            for i in touched {
                let (symbols, count) = &mut words[i];
                for p in symbols.windows(2) {
                    let key = (p[0], p[1]);
                    if let Some(c) = pairs.get_mut(&key) {
                        *c -= *count;
                    }
                    changed.insert(key);
                }
                merge_pair(symbols, pair, token);
                for p in symbols.windows(2) {
                    let key = (p[0], p[1]);
                    *pairs.entry(key).or_default() += *count;
                    holders.entry(key).or_default().insert(i);
                    changed.insert(key);
                }
            }
            for key in changed {
                let c = pairs.get(&key).copied().unwrap_or(0);
                if c == 0 {
                    pairs.remove(&key);
                } else {
                    heap.push((c, Reverse(key)));
                }
            }
        }
        tokenizer
    }

    fn push_merge(&mut self, pair: (u32, u32)) -> u32 {
        let token = self.pieces.len() as u32;
        let mut piece = self.pieces[pair.0 as usize].clone();
        piece.extend_from_slice(&self.pieces[pair.1 as usize]);
        self.pieces.push(piece);
        self.ranks.insert(pair, self.merges.len() as u32);
        self.merges.push(pair);
        token
    }

    /// Tokens, the specials included.
    pub fn vocab_size(&self) -> usize {
        self.pieces.len()
    }

    /// The merges learned (empty for the byte tokenizer).
    pub fn merges(&self) -> &[(u32, u32)] {
        &self.merges
    }

    /// The tokens of `text` (never [`END_OF_TEXT`]).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let bytes = text.as_bytes();
        if self.merges.is_empty() {
            return bytes.iter().map(|&b| u32::from(b)).collect();
        }
        let mut cache: HashMap<&[u8], Vec<u32>> = HashMap::new();
        let mut out = Vec::with_capacity(bytes.len() / 2);
        for word in words(bytes) {
            let tokens = cache.entry(word).or_insert_with(|| self.encode_word(word));
            out.extend_from_slice(tokens);
        }
        out
    }

    /// Applies the merges to one word, lowest rank first, as they were learned.
    fn encode_word(&self, word: &[u8]) -> Vec<u32> {
        let mut symbols: Vec<u32> = word.iter().map(|&b| u32::from(b)).collect();
        loop {
            let best = symbols
                .windows(2)
                .filter_map(|p| self.ranks.get(&(p[0], p[1])).map(|&r| (r, (p[0], p[1]))))
                .min();
            let Some((rank, pair)) = best else {
                return symbols;
            };
            merge_pair(&mut symbols, pair, 257 + rank);
        }
    }

    /// The bytes of `tokens` ([`END_OF_TEXT`] as `<|endoftext|>`; out-of-range ids as nothing).
    pub fn decode(&self, tokens: &[u32]) -> Vec<u8> {
        tokens
            .iter()
            .filter_map(|&t| self.pieces.get(t as usize))
            .flatten()
            .copied()
            .collect()
    }

    /// One token as readable text: its bytes, lossily decoded as UTF-8.
    pub fn token_text(&self, token: u32) -> String {
        String::from_utf8_lossy(&self.decode(&[token])).into_owned()
    }
}

/// The distinct words of `documents` as byte symbols, with their counts, in byte order.
fn word_counts<S: AsRef<str>>(documents: &[S]) -> Vec<(Vec<u32>, u64)> {
    let mut counts: HashMap<&[u8], u64> = HashMap::new();
    for doc in documents {
        for word in words(doc.as_ref().as_bytes()) {
            *counts.entry(word).or_default() += 1;
        }
    }
    let mut words: Vec<(Vec<u32>, u64)> = counts
        .into_iter()
        .map(|(w, c)| (w.iter().map(|&b| u32::from(b)).collect(), c))
        .collect();
    words.sort();
    words
}

/// Replaces every non-overlapping `pair` in `symbols`, left to right, by `token`.
fn merge_pair(symbols: &mut Vec<u32>, pair: (u32, u32), token: u32) {
    let mut out = Vec::with_capacity(symbols.len());
    let mut i = 0;
    while i < symbols.len() {
        if i + 1 < symbols.len() && (symbols[i], symbols[i + 1]) == pair {
            out.push(token);
            i += 2;
        } else {
            out.push(symbols[i]);
            i += 1;
        }
    }
    *symbols = out;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// ASCII letters and digits, and every non-ASCII byte (so UTF-8 sequences stay whole).
    Word,
    /// Spaces, tabs, newlines.
    Space,
    /// Everything else.
    Punct,
}

fn class(b: u8) -> Class {
    if b.is_ascii_alphanumeric() || b >= 0x80 {
        Class::Word
    } else if b.is_ascii_whitespace() {
        Class::Space
    } else {
        Class::Punct
    }
}

/// Splits bytes into words: a run of one class, a single space joining the run after it.
/// The words concatenate back to the input.
fn words(bytes: &[u8]) -> Vec<&[u8]> {
    let n = bytes.len();
    // A space that begins a word: it is followed by a letter or punctuation byte.
    let leads = |i: usize| bytes[i] == b' ' && i + 1 < n && class(bytes[i + 1]) != Class::Space;
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        let start = i;
        if leads(i) {
            i += 1;
        }
        let c = class(bytes[i]);
        i += 1;
        while i < n && class(bytes[i]) == c && !(c == Class::Space && leads(i)) {
            i += 1;
        }
        out.push(&bytes[start..i]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_and_end_of_text_is_256() {
        let t = Tokenizer::byte();
        let text = "héllo, wörld\n\t≠ 🦀";
        let tokens = t.encode(text);
        assert_eq!(tokens.len(), text.len());
        assert_eq!(t.decode(&tokens), text.as_bytes());
        assert_eq!(t.vocab_size(), BYTE_VOCAB);
        assert_eq!(t.token_text(END_OF_TEXT), "<|endoftext|>");
    }

    #[test]
    fn words_cover_the_input_and_keep_leading_spaces() {
        let text = b"first name:  last  name.\nok";
        let w = words(text);
        assert_eq!(w.concat(), text);
        let expect: [&[u8]; 10] = [
            b"first", b" name", b":", b" ", b" last", b" ", b" name", b".", b"\n", b"ok",
        ];
        assert_eq!(w, expect);
    }

    /// The definition: recount every pair after each merge.
    fn reference_merges(documents: &[String], vocab: usize) -> Vec<(u32, u32)> {
        let mut words = word_counts(documents);
        let mut merges = Vec::new();
        while BYTE_VOCAB + merges.len() < vocab {
            let mut pairs: HashMap<(u32, u32), u64> = HashMap::new();
            for (symbols, count) in &words {
                for p in symbols.windows(2) {
                    *pairs.entry((p[0], p[1])).or_default() += count;
                }
            }
            let best = pairs
                .into_iter()
                .filter(|&(_, c)| c >= 2)
                .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)));
            let Some((pair, _)) = best else { break };
            let token = (BYTE_VOCAB + merges.len()) as u32;
            for (symbols, _) in &mut words {
                merge_pair(symbols, pair, token);
            }
            merges.push(pair);
        }
        merges
    }

    #[test]
    fn incremental_training_learns_the_reference_merges() {
        let docs = super::super::corpus::Corpus::builtin().documents;
        let t = Tokenizer::train_bpe(&docs, 700);
        assert_eq!(t.merges(), reference_merges(&docs, 700));
        assert_eq!(t.vocab_size(), 700);
        for doc in &docs {
            assert_eq!(t.decode(&t.encode(doc)), doc.as_bytes());
        }
    }

    #[test]
    fn bpe_learns_the_frequent_word_and_round_trips() {
        let docs = ["example.org example.org example.org and example.org, example.org"];
        let t = Tokenizer::train_bpe(&docs, 300);
        assert!(t.vocab_size() > BYTE_VOCAB && t.vocab_size() <= 300);
        let tokens = t.encode(docs[0]);
        assert_eq!(t.decode(&tokens), docs[0].as_bytes());
        // "example" (and " example") became single tokens.
        assert!(tokens.iter().any(|&x| t.token_text(x) == " example"));
        assert!(tokens.len() < docs[0].len() / 3);
        // Training is deterministic.
        assert_eq!(t, Tokenizer::train_bpe(&docs, 300));
    }
}
