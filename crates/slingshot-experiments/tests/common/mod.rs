//! What the harness's test binaries share: the tiny configuration and row comparison.

// Each test binary uses a part of it.
#![allow(dead_code)]

use slingshot_experiments::{BatchSize, MetricsRow, Precision, TrainConfig};

/// Division mod 7, MLP 64 x 2, full batch, lr 3e-2, `steps` steps logged every 10: the f32 arm
/// reaches softmax collapse within 200 steps.
pub fn tiny(precision: Precision, steps: u64) -> TrainConfig {
    let mut c = TrainConfig::demo();
    c.experiment = "test".into();
    c.arm = precision.to_string();
    c.precision = precision;
    c.p = 7;
    c.model.width = 64;
    c.model.depth = 2;
    c.lr = 3e-2;
    c.steps = steps;
    c.log_every = 10;
    c.batch = BatchSize::Full;
    c
}

/// Rows without the wall clock, which is the only thing allowed to differ between runs, as
/// text so that NaN (a diverged run's cosine) compares equal to itself.
pub fn numbers(rows: &[MetricsRow]) -> Vec<String> {
    rows.iter()
        .map(|r| {
            format!(
                "{:?}",
                MetricsRow {
                    wall_seconds: 0.0,
                    ..r.clone()
                }
            )
        })
        .collect()
}

/// `metrics.csv` without its `wall_seconds` column, and `summary.json` without its clock
/// fields, of two run directories are equal: the test of "resumes exactly".
pub fn same_files(a: &std::path::Path, b: &std::path::Path) {
    assert_eq!(
        csv_without_clock(&a.join("metrics.csv")),
        csv_without_clock(&b.join("metrics.csv")),
        "metrics.csv of {} and {}",
        a.display(),
        b.display()
    );
    assert_eq!(
        json_without_clock(&a.join("summary.json")),
        json_without_clock(&b.join("summary.json")),
        "summary.json of {} and {}",
        a.display(),
        b.display()
    );
}

/// The file's lines with the `wall_seconds` column removed.
pub fn csv_without_clock(path: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let clock = header.iter().position(|h| *h == "wall_seconds");
    std::iter::once(header.join(","))
        .chain(lines.map(|l| {
            l.split(',')
                .enumerate()
                .filter(|(i, _)| Some(*i) != clock)
                .map(|(_, v)| v)
                .collect::<Vec<_>>()
                .join(",")
        }))
        .collect()
}

/// The JSON with every clock field (`wall_seconds`, `*_per_second`) removed.
pub fn json_without_clock(path: &std::path::Path) -> serde_json::Value {
    let mut value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    strip_clock(&mut value);
    value
}

fn strip_clock(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|k, _| k != "wall_seconds" && !k.ends_with("_per_second"));
            map.values_mut().for_each(strip_clock);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_clock),
        _ => {}
    }
}
