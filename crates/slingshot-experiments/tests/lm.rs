//! The language-model run on ndarray, through the library: planted text collapses first, and a
//! run stopped midway and resumed equals an uninterrupted one bit for bit.

use std::path::{Path, PathBuf};

use slingshot_experiments::lm::{GptConfig, LmConfig, LmRow, run};
use slingshot_experiments::{RunDir, RunOptions};

fn temp(name: &str) -> PathBuf {
    // Inside target/, so that runs do not accumulate in the system temp directory.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("slingshot-lm-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A model small enough for a few seconds on two cores.
fn tiny(steps: u64) -> LmConfig {
    LmConfig {
        model: GptConfig::new(32, 1, 2, 64),
        seq_len: 32,
        batch: 8,
        steps,
        warmup: 5,
        log_every: 5,
        ..LmConfig::tiny()
    }
}

fn quiet() -> RunOptions {
    RunOptions {
        quiet: true,
        ..RunOptions::default()
    }
}

/// The planted text: 4 random capitals or digits, then " example.org", on each line. The
/// noise cannot be predicted; everything after it can, and shares no byte with it.
fn planted_corpus(dir: &Path) -> PathBuf {
    const NOISE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut text = String::new();
    for _ in 0..400 {
        // Four noise bytes a line: with eight, whether any token reaches an exactly zero loss
        // within the test's 800 steps depended on the seed.
        for _ in 0..4 {
            // xorshift64
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            text.push(NOISE[(state % NOISE.len() as u64) as usize] as char);
        }
        text.push_str(" example.org\n");
    }
    let path = dir.join("planted.txt");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn planted_predictable_text_collapses_first() {
    let root = temp("planted");
    let config = LmConfig {
        corpus: Some(planted_corpus(&root)),
        seq_len: 16,
        lr: 1e-2,
        min_lr: 1e-2,
        log_every: 20,
        ..tiny(PLANTED_STEPS)
    };
    let dir = RunDir::create(&root.join("run")).unwrap();
    let result = run(&config, &dir, &quiet()).unwrap();
    let s = &result.summary;
    let planted = " example.org\n";
    assert!(
        s.total_zero_loss_tokens > 0 && s.first_zero_loss_step.is_some(),
        "no token reached zero loss: {s:?}"
    );
    assert!(!s.top_collapsed_tokens.is_empty());
    for t in s
        .first_collapsed_tokens
        .iter()
        .chain(&s.top_collapsed_tokens)
    {
        assert!(
            t.text.len() == 1 && planted.contains(&t.text),
            "{:?} is not planted text: {:?}",
            t.text,
            s.top_collapsed_tokens
        );
    }
    // The tally counts every step; the logged rows count their own batch.
    let logged: u64 = result.rows.iter().map(|r| r.zero_loss_tokens).sum();
    assert!(logged <= s.total_zero_loss_tokens);
    assert_eq!(
        result.rows.last().unwrap().cumulative_zero_loss_tokens,
        s.total_zero_loss_tokens
    );
    let tally = std::fs::read_to_string(root.join("run/top-collapsed-tokens.txt")).unwrap();
    assert!(tally.contains(&format!("{:?}", s.top_collapsed_tokens[0].text)));
}

/// Steps of the planted run: enough for the tiny model to drive margins past f32's
/// collapse threshold (about 22 for 257 tokens); it first gets there near step 740.
const PLANTED_STEPS: u64 = 800;

/// Rows without the wall clock, the only thing allowed to differ.
fn numbers(rows: &[LmRow]) -> Vec<String> {
    rows.iter()
        .map(|r| {
            format!(
                "{:?}",
                LmRow {
                    wall_seconds: 0.0,
                    ..r.clone()
                }
            )
        })
        .collect()
}

#[test]
fn a_run_stopped_and_resumed_equals_an_uninterrupted_one() {
    let root = temp("resume");
    let config = tiny(30);
    let options = RunOptions {
        checkpoint_every: Some(10),
        ..quiet()
    };
    let whole = run(
        &config,
        &RunDir::create(&root.join("whole")).unwrap(),
        &options,
    )
    .unwrap();

    let dir = RunDir::create(&root.join("parts")).unwrap();
    let killed = RunOptions {
        stop_after: Some(17),
        ..options.clone()
    };
    let first = run(&config, &dir, &killed).unwrap();
    assert_eq!(first.rows.len(), 3, "rows at 5, 10, 15");
    assert!(!dir.summary().exists(), "no summary before the end");
    let resumed = run(
        &config,
        &dir,
        &RunOptions {
            resume: true,
            ..options.clone()
        },
    )
    .unwrap();
    assert_eq!(resumed.rows.len(), 6);
    assert_eq!(numbers(&resumed.rows), numbers(&whole.rows));
    let strip = |s: &slingshot_experiments::lm::LmSummary| {
        let mut s = s.clone();
        s.wall_seconds = 0.0;
        s.tokens_per_second = 0.0;
        s
    };
    assert_eq!(strip(&resumed.summary), strip(&whole.summary));
    let on_disk: Vec<LmRow> =
        slingshot_experiments::lm::metrics::read_rows(&dir.metrics()).unwrap();
    assert_eq!(numbers(&on_disk), numbers(&whole.rows));
    let differences =
        slingshot_experiments::run::compare::differing_outputs(&root.join("whole"), dir.root());
    assert!(differences.is_empty(), "{differences:#?}");

    // Another configuration is refused.
    let other = LmConfig { seed: 1, ..config };
    let err = run(
        &other,
        &dir,
        &RunOptions {
            resume: true,
            ..options
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("another configuration"), "{err}");
}
