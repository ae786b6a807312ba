//! The experiment binaries end to end, on tiny settings: every output of every arm, the
//! combined figures, and flags refused before any training.

use std::path::{Path, PathBuf};
use std::process::Command;

fn temp(name: &str) -> PathBuf {
    // Inside target/, so that runs do not accumulate in the system temp directory.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("slingshot-bin-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

const TINY: [&str; 12] = [
    "--p",
    "7",
    "--width",
    "16",
    "--depth",
    "1",
    "--steps",
    "40",
    "--log-every",
    "10",
    "--quiet",
    "--checkpoint-every=20",
];

fn assert_arm(dir: &Path) {
    for file in ["metrics.csv", "summary.json", "config.json", "figure.png"] {
        assert!(dir.join(file).is_file(), "{} lacks {file}", dir.display());
    }
    assert!(dir.join("checkpoint/state.json").is_file());
    let rows = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert_eq!(rows.lines().count(), 1 + 4, "header and 4 logged steps");
}

#[test]
fn modular_division_writes_every_arm_and_the_combined_figure() {
    let out = temp("md");
    let status = Command::new(env!("CARGO_BIN_EXE_modular-division"))
        .args(TINY)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    for arm in ["f32", "f64-loss", "f64"] {
        assert_arm(&out.join(arm));
    }
    assert!(out.join("figure.png").is_file());
    let table = String::from_utf8_lossy(&status.stdout);
    assert!(
        table.contains("f64-loss") && table.contains("steps/s"),
        "{table}"
    );
    let f64_summary = std::fs::read_to_string(out.join("f64/summary.json")).unwrap();
    assert!(f64_summary.contains("\"precision\": \"f64\""));
}

#[test]
fn mitigations_runs_the_chosen_arms() {
    let out = temp("mit");
    let status = Command::new(env!("CARGO_BIN_EXE_mitigations"))
        .args(TINY)
        .args(["--only", "baseline,zero-sum,f64-loss", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    for arm in ["baseline", "zero-sum", "f64-loss"] {
        assert_arm(&out.join(arm));
    }
    assert!(out.join("figure-1.png").is_file());
    let config = std::fs::read_to_string(out.join("zero-sum/config.json")).unwrap();
    assert!(config.contains("\"zero_sum\": true"), "{config}");
    let config = std::fs::read_to_string(out.join("f64-loss/config.json")).unwrap();
    assert!(config.contains("\"precision\": \"f64-loss\""), "{config}");
}

#[test]
fn bad_flags_fail_before_anything_is_written() {
    let out = temp("bad");
    let run = Command::new(env!("CARGO_BIN_EXE_modular-division"))
        .args(["--lr=-1", "--quiet", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("learning rate"));
    assert!(!out.exists(), "nothing is created for a refused run");
    let run = Command::new(env!("CARGO_BIN_EXE_mitigations"))
        .args(["--only", "no-such-arm", "--quiet", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("unknown arm"));
}
