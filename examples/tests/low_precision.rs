//! The `low-precision` binary end to end on the demo task, shortened: every arm writes every
//! output, the report sets each arm against its format's thresholds, and the bf16 loss
//! collapses rows at a smaller margin than f32 (App. A.3.3's premise, measured).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn temp(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("slingshot-lp-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// 400 steps of the demo: f32 collapses its first rows at step 140, bf16 at step 30.
const SHORT: [&str; 5] = ["--steps", "400", "--log-every", "10", "--quiet"];

fn run(out: &Path, only: Option<&str>) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_low-precision"));
    command.args(SHORT).arg("--out").arg(out);
    if let Some(only) = only {
        command.args(["--only", only]);
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn report(out: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(out.join("low-precision.json")).unwrap();
    serde_json::from_str::<Value>(&text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn arm<'a>(report: &'a [Value], label: &str) -> &'a Value {
    report.iter().find(|r| r["arm"] == label).unwrap()
}

#[test]
fn every_arm_writes_every_output_and_bf16_collapses_at_a_smaller_margin() {
    let out = temp("all");
    let output = run(&out, None);
    let listed = Command::new(env!("CARGO_BIN_EXE_low-precision"))
        .arg("--list")
        .output()
        .unwrap();
    let labels: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    assert_eq!(labels.len(), 17, "{labels:?}");
    for label in &labels {
        let dir = out.join(label);
        for file in [
            "metrics.csv",
            "summary.json",
            "config.json",
            "margins.csv",
            "figure.png",
        ] {
            assert!(dir.join(file).is_file(), "{label} lacks {file}");
        }
    }
    for file in [
        "low-precision.json",
        "figure-formats.png",
        "figure-zero-sum.png",
        "figure-upcast.png",
        "collapse-vs-margin.png",
    ] {
        assert!(out.join(file).is_file(), "no {file}");
    }
    let report = report(&out);
    assert_eq!(report.len(), 17);
    // Every measured collapse lies inside its format's band.
    for r in &report {
        assert_eq!(r["within_band"], true, "{r}");
    }
    let margin = |label: &str| {
        arm(&report, label)["min_collapsed_margin"]
            .as_f64()
            .unwrap()
    };
    let (f32_margin, bf16_margin) = (margin("f32"), margin("bf16-loss"));
    assert!(
        bf16_margin < f32_margin,
        "bf16 {bf16_margin} vs f32 {f32_margin}"
    );
    // Near each format's own threshold: f32 just above 16.6, bf16 just above 5.5.
    assert!((16.6..19.8).contains(&f32_margin), "{f32_margin}");
    assert!((5.5..8.8).contains(&bf16_margin), "{bf16_margin}");
    assert_eq!(arm(&report, "bf16-loss")["loss_format"], "bf16");
    assert_eq!(arm(&report, "e4m3-loss")["loss_format"], "e4m3");
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("e5m2-loss+zero-sum"), "{table}");
}

#[test]
fn the_thresholds_in_the_report_are_the_numerics_crates() {
    let out = temp("thresholds");
    run(&out, Some("f32,e4m3-loss"));
    let report = report(&out);
    let f32_arm = arm(&report, "f32");
    let e4m3 = arm(&report, "e4m3-loss");
    use slingshot::numerics::{FloatFormat, collapse_certain_at, collapse_impossible_below};
    assert_eq!(
        f32_arm["impossible_below"].as_f64().unwrap(),
        collapse_impossible_below(FloatFormat::F32)
    );
    assert_eq!(
        e4m3["certain_at"].as_f64().unwrap(),
        collapse_certain_at(FloatFormat::E4M3, 23).unwrap()
    );
    assert_eq!(f32_arm["classes"], 23);
}
