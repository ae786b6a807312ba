//! Whether two run directories hold the same results: `metrics.csv` and `summary.json` equal
//! except for the clock (`wall_seconds`, `*_per_second`). This is what "a resumed run equals
//! an uninterrupted one" means, and how the tests check it.

use std::path::Path;

use serde_json::Value;

/// The differences between the results in `a` and `b`, one line each (empty: the same).
pub fn differing_outputs(a: &Path, b: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let (x, y) = (
        csv_without_clock(&a.join("metrics.csv")),
        csv_without_clock(&b.join("metrics.csv")),
    );
    match (&x, &y) {
        (Ok(x), Ok(y)) if x.len() != y.len() => {
            out.push(format!(
                "metrics.csv: {} lines against {}",
                x.len(),
                y.len()
            ));
        }
        (Ok(x), Ok(y)) => out.extend(
            x.iter()
                .zip(y)
                .enumerate()
                .filter(|(_, (l, r))| l != r)
                .map(|(i, (l, r))| format!("metrics.csv line {}: {l} against {r}", i + 1)),
        ),
        _ => out.push(format!("metrics.csv: {x:?} against {y:?}")),
    }
    let (x, y) = (
        json_without_clock(&a.join("summary.json")),
        json_without_clock(&b.join("summary.json")),
    );
    if x != y {
        out.push(format!("summary.json: {x:?} against {y:?}"));
    }
    out
}

/// The file's lines with the `wall_seconds` column removed.
fn csv_without_clock(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let clock = header.iter().position(|h| *h == "wall_seconds");
    let keep = |line: &str| {
        line.split(',')
            .enumerate()
            .filter(|(i, _)| Some(*i) != clock)
            .map(|(_, v)| v)
            .collect::<Vec<_>>()
            .join(",")
    };
    Ok(std::iter::once(header.join(","))
        .chain(lines.map(keep))
        .collect())
}

/// The JSON with every clock field removed.
fn json_without_clock(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let mut value: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    strip_clock(&mut value);
    Ok(value)
}

fn strip_clock(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|k, _| k != "wall_seconds" && !k.ends_with("_per_second"));
            map.values_mut().for_each(strip_clock);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_clock),
        _ => {}
    }
}
