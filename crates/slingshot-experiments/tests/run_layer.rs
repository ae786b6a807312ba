//! The run layer: atomic checkpoints (a kill at every stage of a save, by the test hook),
//! resume rules and their messages, and the output-directory rules of a fresh run.

use std::path::{Path, PathBuf};

use slingshot_experiments::model::{MlpConfig, NetworkConfig};
use slingshot_experiments::run::checkpoint::{self, CheckpointState, SaveStage};
use slingshot_experiments::run::resume::differences;
use slingshot_experiments::{ExperimentError, Precision, RunDir, RunOptions, TrainConfig, run};

mod common;

use common::{numbers, same_files};

fn temp(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("slingshot-run-layer-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn tiny() -> TrainConfig {
    common::tiny(Precision::F32, 60)
}

fn checkpoints(every: u64) -> RunOptions {
    RunOptions {
        quiet: true,
        checkpoint_every: Some(every),
        ..RunOptions::default()
    }
}

/// A plain state for saves without burn.
fn state(step: u64) -> CheckpointState<u64, serde_json::Map<String, serde_json::Value>> {
    CheckpointState {
        format: checkpoint::CHECKPOINT_FORMAT,
        step,
        metrics_rows: step as usize,
        wall_seconds: 0.0,
        config: 7,
        task: serde_json::Map::new(),
    }
}

fn parts(dir: &Path) -> Result<(), ExperimentError> {
    std::fs::write(dir.join("model.mpk"), b"model").unwrap();
    Ok(())
}

#[test]
fn a_save_stopped_at_any_stage_leaves_a_whole_checkpoint() {
    for stage in SaveStage::ALL {
        let root = temp(&format!("stage-{stage:?}"));
        let dir = root.join("checkpoint");
        checkpoint::save(&dir, parts, &state(10), None).unwrap();
        checkpoint::save(&dir, parts, &state(20), Some(stage)).unwrap();
        let (found, read) = checkpoint::read_state::<u64, serde_json::Value>(&dir).unwrap();
        let want = if matches!(stage, SaveStage::NewInPlace | SaveStage::Done) {
            20
        } else {
            10
        };
        assert_eq!(read.step, want, "{stage:?}: read from {}", found.display());
        assert!(found.join("model.mpk").is_file(), "{stage:?}");
        // A second interrupted save never removes the only whole checkpoint (the language
        // model's old save deleted `checkpoint.old` first).
        for again in SaveStage::ALL {
            checkpoint::save(&dir, parts, &state(30), Some(again)).unwrap();
            let (_, read) = checkpoint::read_state::<u64, serde_json::Value>(&dir).unwrap();
            assert!(read.step >= want, "{stage:?} then {again:?}: {}", read.step);
        }
    }
}

#[test]
fn a_newer_checkpoint_format_is_named() {
    let dir = temp("format").join("checkpoint");
    let mut newer = state(5);
    newer.format = checkpoint::CHECKPOINT_FORMAT + 1;
    checkpoint::save(&dir, parts, &newer, None).unwrap();
    let err = checkpoint::read_state::<u64, serde_json::Value>(&dir).unwrap_err();
    assert!(err.to_string().contains("newer slingshot"), "{err}");
}

/// A kill inside the save of step 40 (checkpoints every 20), at every stage, then a resume:
/// the files equal an uninterrupted run's.
#[test]
fn a_run_killed_inside_a_save_resumes_to_the_uninterrupted_files() {
    let config = tiny();
    let whole_dir = RunDir::create(&temp("whole")).unwrap();
    run(&config, &whole_dir, &checkpoints(20)).unwrap();
    for stage in SaveStage::ALL {
        let dir = RunDir::create(&temp(&format!("killed-{stage:?}"))).unwrap();
        let killed = RunOptions {
            kill_in_save: Some((40, stage)),
            ..checkpoints(20)
        };
        let err = run(&config, &dir, &killed).unwrap_err();
        assert!(matches!(err, ExperimentError::Killed { step: 40 }), "{err}");
        let resume = RunOptions {
            resume: true,
            ..checkpoints(20)
        };
        run(&config, &dir, &resume).unwrap();
        same_files(whole_dir.root(), dir.root());
    }
}

#[test]
fn a_used_output_directory_needs_resume_or_overwrite() {
    let config = tiny();
    let dir = RunDir::create(&temp("used")).unwrap();
    run(&config, &dir, &checkpoints(20)).unwrap();
    let err = run(&config, &dir, &checkpoints(20)).unwrap_err();
    assert!(err.to_string().contains("--overwrite"), "{err}");
    std::fs::write(dir.root().join("notes.txt"), "mine").unwrap();
    let overwrite = RunOptions {
        overwrite: true,
        stop_after: Some(10),
        ..checkpoints(20)
    };
    run(&config, &dir, &overwrite).unwrap();
    // Replaced whole: no old summary, checkpoint or stray file is left beside the new run.
    assert!(!dir.summary().exists());
    assert!(!dir.checkpoint().exists());
    assert!(!dir.root().join("notes.txt").exists());

    // A repository that holds a run's files and its own: --overwrite leaves it alone.
    std::fs::create_dir_all(dir.root().join("src")).unwrap();
    std::fs::write(dir.root().join("src/main.rs"), "fn main() {}").unwrap();
    let err = run(&config, &dir, &overwrite).unwrap_err();
    assert!(err.to_string().contains("which no run writes"), "{err}");
    assert!(dir.root().join("src/main.rs").exists());

    let other = RunDir::create(&temp("not-a-run")).unwrap();
    std::fs::write(other.root().join("thesis.tex"), "precious").unwrap();
    let err = run(&config, &other, &overwrite).unwrap_err();
    assert!(err.to_string().contains("holds no slingshot run"), "{err}");
    assert!(other.root().join("thesis.tex").exists());
}

#[test]
fn a_refused_resume_names_the_field_and_writes_nothing() {
    let config = tiny();
    let dir = RunDir::create(&temp("refused")).unwrap();
    let stopped = RunOptions {
        stop_after: Some(30),
        ..checkpoints(20)
    };
    run(&config, &dir, &stopped).unwrap();
    let before = std::fs::read(dir.config()).unwrap();
    let mut other = config.clone();
    other.lr = 1e-3;
    other.model.network = NetworkConfig::Mlp(MlpConfig {
        width: 32,
        depth: 2,
    });
    let resume = RunOptions {
        resume: true,
        ..checkpoints(20)
    };
    let err = run(&other, &dir, &resume).unwrap_err().to_string();
    assert!(err.contains("lr is 0.03 there, 0.001 now"), "{err}");
    assert!(err.contains("model.width is 64 there, 32 now"), "{err}");
    assert_eq!(std::fs::read(dir.config()).unwrap(), before);

    let empty = RunDir::create(&temp("empty")).unwrap();
    let err = run(&config, &empty, &resume).unwrap_err();
    assert!(matches!(err, ExperimentError::Resume { .. }), "{err}");
    assert!(
        !empty.config().exists(),
        "a refused resume wrote config.json"
    );
}

#[test]
fn a_finished_run_extends_to_more_steps() {
    let mut longer = tiny();
    longer.steps = 80;
    let whole = RunDir::create(&temp("longer")).unwrap();
    run(&longer, &whole, &checkpoints(20)).unwrap();
    let dir = RunDir::create(&temp("extended")).unwrap();
    run(&tiny(), &dir, &checkpoints(20)).unwrap();
    let resume = RunOptions {
        resume: true,
        ..checkpoints(20)
    };
    run(&longer, &dir, &resume).unwrap();
    same_files(whole.root(), dir.root());
    let mut shorter = tiny();
    shorter.steps = 50;
    let err = run(&shorter, &dir, &resume).unwrap_err();
    assert!(err.to_string().contains("past --steps 50"), "{err}");
}

#[test]
fn resume_messages_name_the_damaged_file() {
    let config = tiny();
    let stopped = RunOptions {
        stop_after: Some(45),
        ..checkpoints(20)
    };
    let resume = RunOptions {
        resume: true,
        ..checkpoints(20)
    };
    // A partial last row after the checkpoint's step is dropped, as the rows after it are.
    let dir = RunDir::create(&temp("partial-row")).unwrap();
    run(&config, &dir, &stopped).unwrap();
    let mut text = std::fs::read_to_string(dir.metrics()).unwrap();
    text.push_str("50,0.1,0.");
    std::fs::write(dir.metrics(), text).unwrap();
    let resumed = run(&config, &dir, &resume).unwrap();
    let whole = run(
        &config,
        &RunDir::create(&temp("partial-whole")).unwrap(),
        &checkpoints(20),
    );
    assert_eq!(numbers(&resumed.rows), numbers(&whole.unwrap().rows));

    let dir = RunDir::create(&temp("no-metrics")).unwrap();
    run(&config, &dir, &stopped).unwrap();
    std::fs::remove_file(dir.metrics()).unwrap();
    let err = run(&config, &dir, &resume).unwrap_err().to_string();
    assert!(err.contains("metrics.csv is missing"), "{err}");

    let dir = RunDir::create(&temp("truncated-model")).unwrap();
    run(&config, &dir, &stopped).unwrap();
    let model = dir.checkpoint().join("model.mpk");
    let bytes = std::fs::read(&model).unwrap();
    std::fs::write(&model, &bytes[..bytes.len() / 2]).unwrap();
    let err = run(&config, &dir, &resume).unwrap_err().to_string();
    assert!(err.contains("model.mpk cannot be read"), "{err}");
    assert!(!err.contains("backward"), "burn's hint leaks: {err}");

    // A checkpoint of the first format whose model does not load names the format.
    let state = dir.checkpoint().join("state.json");
    let text = std::fs::read_to_string(&state).unwrap();
    let first: String = text.lines().filter(|l| !l.contains("\"format\"")).collect();
    std::fs::write(&state, first).unwrap();
    let err = run(&config, &dir, &resume).unwrap_err().to_string();
    assert!(err.contains("checkpoint format 1"), "{err}");
}

#[test]
fn differences_are_dotted_paths_with_both_values() {
    let a = tiny();
    let mut b = a.clone();
    b.mitigations
        .set(slingshot_experiments::mitigation::ZeroSum);
    assert_eq!(
        differences(&a, &b),
        vec!["mitigations.zero_sum is false there, true now".to_string()]
    );
    assert!(differences(&a, &a).is_empty());
}

#[test]
fn configurations_that_cannot_run_are_refused_before_training() {
    let mut huge = tiny();
    huge.modular_mut().expect("the modular task").p = 4093;
    let err = huge.validate().unwrap_err().to_string();
    assert!(
        err.contains("needs at least") && err.contains("GB"),
        "{err}"
    );
    let mut big_batch = tiny();
    big_batch.batch = slingshot_experiments::BatchSize::Rows(100);
    let err = big_batch.validate().unwrap_err().to_string();
    assert!(
        err.contains("larger than the training set (21 rows)"),
        "{err}"
    );
    let mut not_prime = tiny();
    not_prime.modular_mut().expect("the modular task").p = 8;
    assert!(
        not_prime
            .validate()
            .unwrap_err()
            .to_string()
            .contains("prime")
    );
}

/// A multi-arm child reads its configuration back from config.json, and a resume compares it
/// with the checkpoint's: both parses must give the written f64 exactly. serde_json's default
/// fast float parser read the add-mod-113 preset's eps 1e-25 as 9.999999999999999e-26, so a
/// killed `generalization` run could not resume.
#[test]
fn a_configuration_read_back_from_json_resumes() {
    let mut config = tiny();
    config.eps = 1e-25;
    config.lr = 5e-4;
    config.beta2 = 0.99;
    let dir = RunDir::create(&temp("json-floats")).unwrap();
    let stopped = RunOptions {
        stop_after: Some(30),
        ..checkpoints(20)
    };
    run(&config, &dir, &stopped).unwrap();
    let read: TrainConfig =
        serde_json::from_str(&std::fs::read_to_string(dir.config()).unwrap()).unwrap();
    assert_eq!(read.eps.to_bits(), 1e-25_f64.to_bits(), "{:e}", read.eps);
    let resume = RunOptions {
        resume: true,
        ..checkpoints(20)
    };
    run(&read, &dir, &resume).unwrap();
    // Every f64 survives both routes a checkpoint's value takes: straight into a field,
    // and through a `serde_json::Value`.
    for x in [
        1e-25_f64,
        9.999999999999999e-26,
        1e-8,
        5e-4,
        0.99,
        0.1,
        1.0 / 3.0,
        2e-308,
    ] {
        let text = serde_json::to_string(&x).unwrap();
        let direct: f64 = serde_json::from_str(&text).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let via_value: f64 = serde_json::from_value(value).unwrap();
        assert_eq!(direct.to_bits(), x.to_bits(), "{text}");
        assert_eq!(via_value.to_bits(), x.to_bits(), "{text} through Value");
    }
}
