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

/// The process succeeded; otherwise its stderr is the failure message.
fn assert_ok(output: &std::process::Output) {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

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
    assert_ok(&status);
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
    assert_ok(&status);
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

#[test]
fn mitigations_lists_the_clamp_the_switch_and_the_sweep() {
    let list = Command::new(env!("CARGO_BIN_EXE_mitigations"))
        .arg("--list")
        .output()
        .unwrap();
    assert!(list.status.success());
    let text = String::from_utf8_lossy(&list.stdout);
    for arm in ["logit-clamp", "gd-switch", "lr-1e-3", "lr-1e-4", "lr-1e-5"] {
        assert!(text.contains(arm), "{arm} missing from:\n{text}");
    }
    // The demo's own learning rate (1e-2) is the baseline, not a sweep arm.
    assert!(!text.contains("lr-1e-2"), "{text}");
    assert!(text.contains("--switch-when-loss-at-most 1e-7"), "{text}");
    let paper = Command::new(env!("CARGO_BIN_EXE_mitigations"))
        .args(["--list", "--preset", "paper"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&paper.stdout);
    assert!(
        text.contains("lr-1e-2") && !text.contains("lr-1e-3"),
        "{text}"
    );
    assert!(text.contains("--switch-when-loss-at-most 0"), "{text}");
}

#[test]
fn mitigations_passes_the_clamp_and_the_switch_to_their_arms() {
    let out = temp("mit-new");
    let status = Command::new(env!("CARGO_BIN_EXE_mitigations"))
        .args(TINY)
        .args(["--only", "logit-clamp,gd-switch", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_ok(&status);
    for arm in ["logit-clamp", "gd-switch"] {
        assert_arm(&out.join(arm));
    }
    let config = std::fs::read_to_string(out.join("logit-clamp/config.json")).unwrap();
    assert!(config.contains("\"logit_clamp\": 100.0"), "{config}");
    let config = std::fs::read_to_string(out.join("gd-switch/config.json")).unwrap();
    assert!(config.contains("\"lr\": 100000.0"), "{config}");
    assert!(config.contains("\"loss_at_most\": 1e-7"), "{config}");
}

#[test]
fn eos_vs_slingshot_measures_sharpness_in_both_precisions() {
    let out = temp("eos");
    let status = Command::new(env!("CARGO_BIN_EXE_eos-vs-slingshot"))
        .args([
            "--p",
            "7",
            "--depth",
            "1",
            "--steps",
            "40",
            "--log-every",
            "10",
            "--sharpness-every",
            "20",
            "--quiet",
            "--checkpoint-every=20",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert_ok(&status);
    for arm in ["f32", "f64"] {
        assert_arm(&out.join(arm));
        let config = std::fs::read_to_string(out.join(arm).join("config.json")).unwrap();
        assert!(config.contains("\"width\": 20"), "Fig. 5's width: {config}");
        let rows = std::fs::read_to_string(out.join(arm).join("metrics.csv")).unwrap();
        let header: Vec<&str> = rows.lines().next().unwrap().split(',').collect();
        let col = header.iter().position(|h| *h == "sharpness").unwrap();
        let measured: Vec<&str> = rows
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(col).unwrap())
            .collect();
        // Steps 10, 20, 30, 40: measured at 20 and 40 only, finite and positive.
        assert!(
            measured[0].is_empty() && measured[2].is_empty(),
            "{measured:?}"
        );
        for v in [measured[1], measured[3]] {
            let v: f64 = v.parse().unwrap();
            assert!(v.is_finite() && v > 0.0, "{measured:?}");
        }
    }
    assert!(out.join("figure.png").is_file());
    assert!(String::from_utf8_lossy(&status.stdout).contains("lambda_max"));
}

#[test]
fn update_spike_says_so_when_no_spike_happened() {
    let out = temp("us-none");
    let run = Command::new(env!("CARGO_BIN_EXE_update-spike"))
        .args(TINY)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("no loss spike"),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

/// A small configuration that spikes near step 5,500 (p = 7, width 64, lr 0.1): the spike's
/// classifier update is far larger than the one before it, and every output is written.
#[test]
fn update_spike_measures_the_updates_around_the_first_spike() {
    let out = temp("us");
    let run = Command::new(env!("CARGO_BIN_EXE_update-spike"))
        .args([
            "--p",
            "7",
            "--width",
            "64",
            "--lr",
            "0.1",
            "--steps",
            "6000",
            "--window",
            "20",
            "--quiet",
            "--checkpoint-every=0",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert_ok(&run);
    for file in ["histograms.png", "window.png", "update-spike.json"] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    assert!(out.join("window/classifier-updates.csv").is_file());
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("update-spike.json")).unwrap())
            .unwrap();
    let mean = |k: &str| report[k]["mean_abs"].as_f64().unwrap();
    assert!(mean("at") > 10.0 * mean("before"), "{report}");
    let estimate = report["estimate"]["update"].as_f64().unwrap();
    assert!(estimate.is_finite() && estimate > 0.0, "{report}");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("§4.1 estimate"), "{stdout}");
}
