//! What a run may do with its output directory: start in an unused one, resume what a
//! checkpoint holds, or replace a run only when asked to; and which configuration changes a
//! resume accepts.

use std::path::Path;

use serde::Serialize;

use crate::error::ExperimentError;

/// Whether `dir` holds anything at all.
pub fn is_used(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some())
}

/// Whether `dir/config.json` is a run's: a configuration (an object with an `experiment`), or
/// the list of a multi-arm run's.
fn holds_run(dir: &Path) -> bool {
    let Some(value) = std::fs::read_to_string(dir.join("config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
    else {
        return false;
    };
    let is_config = |v: &serde_json::Value| v.get("experiment").is_some_and(|e| e.is_string());
    match &value {
        serde_json::Value::Array(arms) => arms.iter().all(is_config),
        other => is_config(other),
    }
}

/// Whether `path`, inside a run's directory, is something a run writes: its files (JSON,
/// CSV, PNG, text, and their temporaries), its checkpoint directories, or an arm's directory.
fn is_run_output(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if path.is_dir() {
        return name.starts_with("checkpoint") || holds_run(path) || !is_used(path);
    }
    [".json", ".csv", ".png", ".txt", ".tmp"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

/// Prepares `dir` for a fresh run: refuses a used directory unless `overwrite`, and then
/// empties it, but only when it holds a run and nothing else (never a directory of other
/// files, such as a repository that happens to have a `config.json`).
pub fn claim_fresh(dir: &Path, overwrite: bool) -> Result<(), ExperimentError> {
    if !is_used(dir) {
        return Ok(());
    }
    let refuse = |reason: String| ExperimentError::Output {
        path: dir.to_path_buf(),
        reason,
    };
    if !holds_run(dir) {
        return Err(refuse(
            "is not empty and holds no slingshot run (no run's config.json): choose another --out"
                .into(),
        ));
    }
    if !overwrite {
        return Err(refuse(
            "already holds a run: pass --resume to continue it, --overwrite to replace it, or another --out".into(),
        ));
    }
    let entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| refuse(e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    if let Some(other) = entries.iter().find(|p| !is_run_output(p)) {
        return Err(refuse(format!(
            "holds {}, which no run writes; --overwrite replaces only a run: move it or choose another --out",
            other.display()
        )));
    }
    for path in entries {
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(|e| refuse(format!("cannot clear {}: {e}", path.display())))?;
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
/// Only `steps` may change (when `steps_extend`), to any value at or past `step`: that
/// extends a run, finished or not. Any other difference is refused, naming each field.
pub fn check_resumable<C: Serialize>(
    then: &C,
    now: &C,
    step: u64,
    checkpoint: &Path,
    steps_extend: bool,
) -> Result<(), ExperimentError> {
    let differences = differences(then, now);
    let refuse = |reason: String| ExperimentError::Resume {
        path: checkpoint.to_path_buf(),
        reason,
    };
    let other: Vec<&String> = differences
        .iter()
        .filter(|d| !(steps_extend && d.starts_with("steps ")))
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
            "the checkpoint is at step {step}, past --steps {steps}; a resumed run can end at step {step} or later, not before"
        ))),
        _ => Ok(()),
    }
}
