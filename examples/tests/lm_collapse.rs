//! `lm-collapse` end to end on a tiny model: every output of every CPU arm with sane contents,
//! the bf16 arm skipped explicitly, and bad flags refused before anything is written.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn temp(name: &str) -> PathBuf {
    // Inside target/, so that runs do not accumulate in the system temp directory.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("slingshot-lm-bin-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

const TINY: [&str; 19] = [
    "--d-model",
    "32",
    "--layers",
    "1",
    "--heads",
    "2",
    "--ffn-hidden",
    "64",
    "--seq-len",
    "32",
    "--batch",
    "8",
    "--steps",
    "40",
    "--warmup",
    "4",
    "--log-every",
    "10",
    "--quiet",
];

fn lm(args: &[&str], out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lm-collapse"))
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

fn assert_ok(output: &Output) {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", path.display());
    assert!(bytes.len() > 2000, "{} is nearly empty", path.display());
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

const COLUMNS: [&str; 16] = [
    "step",
    "lr",
    "loss",
    "tokens",
    "zero_loss_tokens",
    "zero_loss_fraction",
    "collapsed_fraction",
    "mean_logit",
    "logit_norm",
    "max_logit",
    "centered_mean_logit",
    "w_g_norm",
    "mu_g_norm",
    "cos_wg_mug",
    "cumulative_zero_loss_tokens",
    "wall_seconds",
];

fn assert_arm(dir: &Path, arm: &str) {
    for file in [
        "config.json",
        "summary.json",
        "top-collapsed-tokens.txt",
        "checkpoint/state.json",
    ] {
        assert!(dir.join(file).is_file(), "{} lacks {file}", dir.display());
    }
    assert_png(&dir.join("figure.png"));
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next().unwrap(), COLUMNS.join(","));
    let rows: Vec<Vec<f64>> = lines
        .map(|l| l.split(',').map(|v| v.parse::<f64>().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), 4, "steps 10, 20, 30, 40");
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.len(), COLUMNS.len());
        assert_eq!(row[0], 10.0 * (i + 1) as f64);
        assert_eq!(row[3], 256.0, "8 windows of 32 tokens");
        assert!(row.iter().all(|v| v.is_finite()), "{row:?}");
        assert!(row[2] > 0.0 && row[2] < 10.0, "loss {}", row[2]);
        assert!((0.0..=1.0).contains(&row[5]) && (0.0..=1.0).contains(&row[6]));
        assert!(row[8] > 0.0 && row[11] > 0.0, "norms");
        assert!((-1.0..=1.0).contains(&row[13]), "cosine");
    }
    // Training lowers the loss of this text from ln 257 = 5.5.
    assert!(rows[3][2] < rows[0][2], "{rows:?}");
    let s = json(&dir.join("summary.json"));
    assert_eq!(s["arm"], arm);
    assert_eq!(s["steps"], 40);
    assert_eq!(s["vocab_size"], 257);
    assert_eq!(s["tokenizer"], "byte");
    assert!(s["tokens_per_second"].as_f64().unwrap() > 0.0);
    assert!(s["top_collapsed_tokens"].as_array().unwrap().len() <= 10);
    assert_eq!(
        s["loss_precision"],
        if arm == "f64-loss" { "f64" } else { "f32" }
    );
    assert_eq!(s["centered_head"], arm == "centered");
    assert!(s["corpus"].as_str().unwrap().contains("LICENSE-APACHE"));
}

#[test]
fn a_tiny_run_writes_every_output_of_every_cpu_arm() {
    let out = temp("all");
    let output = lm(&[&TINY[..], &["--checkpoint-every", "20"]].concat(), &out);
    assert_ok(&output);
    for arm in ["f32", "f64-loss", "centered"] {
        assert_arm(&out.join(arm), arm);
    }
    assert!(!out.join("bf16").exists());
    for figure in [
        "mean-logit.png",
        "collapsed-fraction.png",
        "w-g-norm.png",
        "figure.png",
    ] {
        assert_png(&out.join(figure));
    }
    let report = json(&out.join("summary.json"));
    assert_eq!(report["arms"].as_array().unwrap().len(), 3);
    assert_eq!(report["skipped_arms"][0]["arm"], "bf16");
    assert!(
        report["skipped_arms"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("cuda")
    );
    assert!(report["f64_loss_higher_final_mean_logit"].is_boolean());
    assert_eq!(json(&out.join("config.json")).as_array().unwrap().len(), 3);
    let tally = std::fs::read_to_string(out.join("top-collapsed-tokens.txt")).unwrap();
    assert!(tally.contains("# f64-loss") && tally.contains("# centered"));
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        table.contains("skipped bf16") && table.contains("tokens/s"),
        "{table}"
    );
}

#[test]
fn a_bpe_run_trains_its_tokenizer_on_the_corpus_and_resumes() {
    let out = temp("bpe");
    let flags = [
        &TINY[..],
        &[
            "--tokenizer",
            "bpe:320",
            "--arms",
            "f32",
            "--checkpoint-every",
            "20",
        ],
    ]
    .concat();
    assert_ok(&lm(&flags, &out));
    let s = json(&out.join("f32/summary.json"));
    assert_eq!(s["tokenizer"], "bpe:320");
    let vocab = s["vocab_size"].as_u64().unwrap();
    assert!((258..=320).contains(&vocab), "{vocab}");
    // Merged tokens: fewer tokens than the corpus's bytes.
    assert!(s["corpus_tokens"].as_u64().unwrap() < s["corpus_bytes"].as_u64().unwrap());
    let before = std::fs::read_to_string(out.join("f32/metrics.csv")).unwrap();
    // Resuming a finished run continues from its last checkpoint: nothing left, nothing lost.
    assert_ok(&lm(&[&flags[..], &["--resume"]].concat(), &out));
    assert_eq!(
        std::fs::read_to_string(out.join("f32/metrics.csv")).unwrap(),
        before
    );
}

#[test]
fn bad_flags_and_corpora_fail_before_anything_is_written() {
    let root = temp("bad");
    std::fs::create_dir_all(&root).unwrap();
    let short = root.join("short.txt");
    std::fs::write(&short, "too short").unwrap();
    let binary = root.join("binary.bin");
    std::fs::write(&binary, [0xc3, 0x28]).unwrap();
    let missing = root.join("missing.txt");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--arms", "bf16"], "cuda"),
        (vec!["--seq-len", "1"], "seq-len"),
        (vec!["--min-lr", "1"], "min-lr"),
        (vec!["--lr=-1"], "learning rate"),
        (vec!["--grad-clip", "0"], "grad-clip"),
        (
            vec!["--corpus", short.to_str().unwrap()],
            "fewer than one window",
        ),
        (vec!["--corpus", binary.to_str().unwrap()], "UTF-8"),
        (vec!["--corpus", missing.to_str().unwrap()], "unreadable"),
        (vec!["--tokenizer", "bpe:100"], "BPE vocabulary"),
        #[cfg(not(feature = "cuda"))]
        (vec!["--backend", "cuda"], "`cuda` feature"),
    ];
    for (i, (flags, message)) in cases.into_iter().enumerate() {
        let out = root.join(format!("out-{i}"));
        let output = lm(&[&TINY[..], &flags].concat(), &out);
        assert!(!output.status.success(), "{flags:?} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{flags:?}: {stderr}");
        assert!(!out.exists(), "{flags:?} created the output directory");
    }
}
