//! The arms of one `burn-train-collapse` run: the output directory's rules (fresh, resumed
//! or replaced), each arm's launch from its last complete checkpoint, and the outputs.

use std::path::Path;

use slingshot_experiments::ExperimentError;
use slingshot_experiments::config::memory::available_bytes;
use slingshot_experiments::output::write_json;
use slingshot_experiments::run::resume::{claim_fresh, differences};
use slingshot_train::checkpoint_epochs;

use super::CollapseRunConfig;
use super::report::{
    ArmSummary, complete_epochs, draw_figure, read_arm, write_metrics, write_summary,
};
use super::run::{CHECKPOINT_EXTENSION, LaunchOptions, train_arm};

/// Validates `configs`, prepares `out`, trains every arm into `out/<label>` (a finished arm
/// is kept on `resume`) and writes each arm's outputs and `out/figure.png`.
pub fn run_arms(
    configs: &[CollapseRunConfig],
    out: &Path,
    resume: bool,
    overwrite: bool,
    options: LaunchOptions,
) -> Result<Vec<ArmSummary>, ExperimentError> {
    for config in configs {
        config.validate()?;
    }
    check_memory(configs)?;
    prepare(out, configs, resume, overwrite)?;
    let mut summaries = Vec::new();
    let mut figure = Vec::new();
    for config in configs {
        let dir = out.join(config.arm.label());
        summaries.push(run_arm(config, &dir, resume, options)?);
        figure.push((config.arm.label().to_string(), read_arm(&dir, config)?));
    }
    draw_figure(out, &figure)?;
    Ok(summaries)
}

/// Refuses a configuration whose lower bound of memory exceeds what is free.
fn check_memory(configs: &[CollapseRunConfig]) -> Result<(), ExperimentError> {
    let need = configs.iter().map(|c| c.memory_bytes()).max().unwrap_or(0);
    match available_bytes() {
        Some(free) if need > free => Err(ExperimentError::InvalidConfig(format!(
            "this configuration needs at least {:.1} GB and {:.1} GB are free: use a smaller --p or --width",
            need as f64 / 1e9,
            free as f64 / 1e9
        ))),
        _ => Ok(()),
    }
}

/// A fresh run claims `out` (refusing a used one unless `overwrite`) and records every
/// arm's configuration; a resumed one must find the same configurations there. The run's
/// `config.json` is written first: with it, a kill at any later point leaves a run that
/// `--resume` and `--overwrite` both accept.
fn prepare(
    out: &Path,
    configs: &[CollapseRunConfig],
    resume: bool,
    overwrite: bool,
) -> Result<(), ExperimentError> {
    let recorded = out.join("config.json");
    if resume {
        let refuse = |reason: String| ExperimentError::Resume {
            path: out.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(&recorded)
            .map_err(|e| refuse(format!("no run to resume ({}: {e})", recorded.display())))?;
        let then: Vec<CollapseRunConfig> =
            serde_json::from_str(&text).map_err(|e| refuse(format!("config.json: {e}")))?;
        let changed: Vec<String> = if then.len() == configs.len() {
            then.iter()
                .zip(configs)
                .flat_map(|(a, b)| differences(a, b))
                .collect()
        } else {
            vec![format!("{} arms there, {} now", then.len(), configs.len())]
        };
        if !changed.is_empty() {
            return Err(refuse(format!(
                "the run was started with other flags: {}; resume with the same flags",
                changed.join("; ")
            )));
        }
    } else {
        claim_fresh(out, overwrite)?;
        std::fs::create_dir_all(out).map_err(|e| ExperimentError::Output {
            path: out.to_path_buf(),
            reason: e.to_string(),
        })?;
        write_json(&recorded, &configs.to_vec())?;
    }
    // Each arm's own record (again on a resume, for an arm a kill left without one).
    for config in configs {
        let dir = out.join(config.arm.label());
        std::fs::create_dir_all(&dir).map_err(|e| ExperimentError::Output {
            path: dir.clone(),
            reason: e.to_string(),
        })?;
        write_json(&dir.join("config.json"), config)?;
    }
    Ok(())
}

/// Trains one arm (or continues it after its last complete checkpoint) and writes its
/// `metrics.csv` and `summary.json`.
fn run_arm(
    config: &CollapseRunConfig,
    dir: &Path,
    resume: bool,
    options: LaunchOptions,
) -> Result<ArmSummary, ExperimentError> {
    let summary_path = dir.join("summary.json");
    if resume
        && let Some(done) = std::fs::read_to_string(&summary_path)
            .ok()
            .and_then(|t| serde_json::from_str::<ArmSummary>(&t).ok())
    {
        return Ok(done);
    }
    // The latest checkpoint whose epoch's logs are whole (KeepLastNCheckpoints(2) keeps the
    // one before it too).
    let logged = complete_epochs(dir, config);
    let start_after = checkpoint_epochs(dir, CHECKPOINT_EXTENSION)
        .into_iter()
        .filter(|&epoch| resume && epoch <= logged)
        .max();
    if resume {
        drop_partial_epochs(dir, start_after.unwrap_or(0))?;
    }
    let wall = match start_after {
        Some(k) if k >= config.epochs => 0.0,
        Some(k) => {
            // Said on every resume, so that a user (and the tests) can tell it from a restart.
            println!("{}: resuming after epoch {k}", config.arm.label());
            train_arm(config, dir, start_after, options)?
        }
        None => train_arm(config, dir, None, options)?,
    };
    let logs = read_arm(dir, config)?;
    write_metrics(dir, &logs, config)?;
    write_summary(dir, &logs, config, wall)
}

/// Removes the logs and checkpoint files of epochs after `k`: a kill left them partial or
/// ahead of the logs, and the resumed run writes them again.
fn drop_partial_epochs(dir: &Path, k: usize) -> Result<(), ExperimentError> {
    let later = |name: &str, prefix: &str| {
        name.strip_prefix(prefix)
            .and_then(|rest| rest.split('.').next())
            .and_then(|e| e.parse::<usize>().ok())
            .is_some_and(|e| e > k)
    };
    let places = [
        ("train", &["epoch-"][..]),
        ("valid", &["epoch-"][..]),
        ("checkpoint", &["model-", "optim-", "scheduler-"][..]),
    ];
    for (sub, prefixes) in places {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !prefixes.iter().any(|p| later(&name, p)) {
                continue;
            }
            let path = entry.path();
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.map_err(|e| ExperimentError::Write {
                path,
                reason: e.to_string(),
            })?;
        }
    }
    Ok(())
}
