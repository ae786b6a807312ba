//! What a run may do with its output directory: start in an unused one, resume what a
//! checkpoint holds, or replace a run only when asked to; and which configuration changes a
//! resume accepts.

use std::path::Path;

use serde::Serialize;

use crate::ExperimentError;

/// The files whose presence marks a directory as holding a run.
const RUN_FILES: [&str; 4] = ["config.json", "metrics.csv", "summary.json", "checkpoint"];

/// Whether `dir` holds anything at all.
pub fn is_used(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some())
}

/// Prepares `dir` for a fresh run: refuses a used directory unless `overwrite`, and then
/// empties it, but only when it holds a run (never a directory of other files).
pub fn claim_fresh(dir: &Path, overwrite: bool) -> Result<(), ExperimentError> {
    if !is_used(dir) {
        return Ok(());
    }
    let refuse = |reason: &str| ExperimentError::Output {
        path: dir.to_path_buf(),
        reason: reason.into(),
    };
    let holds_run = RUN_FILES.iter().any(|f| dir.join(f).exists());
    if !overwrite {
        return Err(refuse(
            "already holds files: pass --resume to continue that run, --overwrite to replace it, or another --out",
        ));
    }
    if !holds_run {
        return Err(refuse(
            "is not empty and holds no slingshot run (no config.json); --overwrite only replaces a run: choose another --out",
        ));
    }
    for entry in std::fs::read_dir(dir).map_err(|e| refuse(&e.to_string()))? {
        let path = entry.map_err(|e| refuse(&e.to_string()))?.path();
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(|e| refuse(&format!("cannot clear {}: {e}", path.display())))?;
    }
    Ok(())
}

/// The fields where two configurations differ, as dotted paths with both values.
pub fn differences<C: Serialize>(then: &C, now: &C) -> Vec<String> {
    let (a, b) = (
        serde_json::to_value(then).unwrap_or_default(),
        serde_json::to_value(now).unwrap_or_default(),
    );
    let mut out = Vec::new();
    diff("", &a, &b, &mut out);
    out
}

fn diff(path: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                let null = Value::Null;
                diff(
                    &child,
                    x.get(k).unwrap_or(&null),
                    y.get(k).unwrap_or(&null),
                    out,
                );
            }
        }
        _ if a != b => out.push(format!("{path} is {a} there, {b} now")),
        _ => {}
    }
}

/// Checks that a run written with `then` and checkpointed at `step` may continue as `now`.
/// Only `steps` may change, and only to at least `step`: that extends a run (finished or
/// not). Any other difference is refused, naming each field.
pub fn check_resumable<C: Serialize>(
    then: &C,
    now: &C,
    step: u64,
    checkpoint: &Path,
) -> Result<(), ExperimentError> {
    let differences = differences(then, now);
    let refuse = |reason: String| ExperimentError::Resume {
        path: checkpoint.to_path_buf(),
        reason,
    };
    let other: Vec<&String> = differences
        .iter()
        .filter(|d| !d.starts_with("steps "))
        .collect();
    if !other.is_empty() {
        let list: Vec<&str> = other.iter().map(|s| s.as_str()).collect();
        return Err(refuse(format!(
            "the checkpoint was written with another configuration: {}; resume with the same flags",
            list.join("; ")
        )));
    }
    let steps = serde_json::to_value(now)
        .ok()
        .and_then(|v| v.get("steps").and_then(|s| s.as_u64()));
    match steps {
        Some(steps) if steps < step => Err(refuse(format!(
            "the checkpoint is at step {step}, past --steps {steps}; a run can be extended, not shortened"
        ))),
        _ => Ok(()),
    }
}
