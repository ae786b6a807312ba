//! Property tests of the language-model tokenizers: bytes in equal bytes out, for the byte
//! tokenizer and for BPE trained on arbitrary UTF-8.

use proptest::prelude::*;
use slingshot_experiments::lm::Tokenizer;

/// One BPE, trained once on text with repeats, so that it has merges to apply.
fn bpe() -> &'static Tokenizer {
    static BPE: std::sync::OnceLock<Tokenizer> = std::sync::OnceLock::new();
    BPE.get_or_init(|| {
        let docs = [
            "first name: Ada, last name: Lovelace. See example.org or example.org/contact.",
            "Grüße aus Köln — 東京 ist weit; ça va? Emoji 🦀🦀 and tabs\tand\nnewlines.",
            "the the the and and of of to to example example example",
        ];
        Tokenizer::train_bpe(&docs, 400)
    })
}

proptest! {
    #[test]
    fn bytes_round_trip(text in any::<String>()) {
        let t = Tokenizer::byte();
        prop_assert_eq!(t.decode(&t.encode(&text)), text.as_bytes());
    }

    #[test]
    fn bpe_round_trips_arbitrary_utf8(text in any::<String>()) {
        let t = bpe();
        let tokens = t.encode(&text);
        prop_assert!(tokens.iter().all(|&x| (x as usize) < t.vocab_size()));
        prop_assert_eq!(t.decode(&tokens), text.as_bytes());
    }

    #[test]
    fn bpe_round_trips_text_made_of_its_own_words(
        words in proptest::collection::vec(
            prop_oneof![Just(" example"), Just(".org"), Just(" name"), Just("the"), Just("\n"), Just("🦀")],
            0..40,
        )
    ) {
        let text = words.concat();
        let t = bpe();
        let tokens = t.encode(&text);
        prop_assert_eq!(t.decode(&tokens), text.as_bytes());
        // Never more tokens than bytes, and the frequent words are merged.
        prop_assert!(tokens.len() <= text.len());
        if text.contains(" example") {
            prop_assert!(tokens.len() < text.len());
        }
    }
}

#[test]
fn bpe_learned_merges() {
    let t = bpe();
    assert!(t.merges().len() > 20, "{}", t.merges().len());
    assert!(t.vocab_size() <= 400);
}
