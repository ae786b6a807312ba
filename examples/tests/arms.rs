//! The arms protocol end to end: a multi-arm run killed in its first arm resumes every arm
//! (the modular task and the language model), SIGTERM to the parent reaches the training
//! child, and a binary replaced on disk during a run still starts its later arms.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use slingshot_experiments::run::arms::TEST_STOP_ARM;
use slingshot_experiments::run::compare::differing_outputs;

fn temp(name: &str) -> PathBuf {
    // Inside target/, so that runs do not accumulate in the system temp directory.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("slingshot-arms-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

const MODULAR: [&str; 13] = [
    "--p",
    "7",
    "--width",
    "16",
    "--depth",
    "1",
    "--steps",
    "60",
    "--log-every",
    "10",
    "--quiet",
    "--checkpoint-every=20",
    "--arms=f32,f64-loss",
];

const LM: [&str; 21] = [
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
    "--checkpoint-every=10",
    "--arms=f32,centered",
];

fn run(binary: &str, args: &[&str], out: &Path, stop: Option<&str>) -> Output {
    let mut command = Command::new(binary);
    command.args(args).arg("--out").arg(out);
    match stop {
        Some(hook) => command.env(TEST_STOP_ARM, hook),
        None => command.env_remove(TEST_STOP_ARM),
    };
    command.output().unwrap()
}

fn assert_ok(output: &Output) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
}

/// Killed (by the test hook) in the middle of the first arm, then `--resume`: both arms equal
/// an uninterrupted run's.
fn kill_in_first_arm_and_resume(binary: &str, args: &[&str], arms: [&str; 2], stop: &str) {
    let whole = temp(&format!("{}-whole", arms[1]));
    assert_ok(&run(binary, args, &whole, None));
    let out = temp(&format!("{}-killed", arms[1]));
    let killed = run(binary, args, &out, Some(stop));
    assert!(!killed.status.success());
    assert!(!out.join(arms[1]).exists(), "the second arm had not begun");
    let resume = [args, &["--resume"]].concat();
    assert_ok(&run(binary, &resume, &out, None));
    for arm in arms {
        let differences = differing_outputs(&whole.join(arm), &out.join(arm));
        assert!(differences.is_empty(), "{arm}: {differences:#?}");
    }
}

#[test]
fn a_modular_run_killed_in_its_first_arm_resumes_every_arm() {
    let binary = env!("CARGO_BIN_EXE_modular-division");
    kill_in_first_arm_and_resume(binary, &MODULAR, ["f32", "f64-loss"], "f32:30");
}

#[test]
fn a_language_model_run_killed_in_its_first_arm_resumes_every_arm() {
    let binary = env!("CARGO_BIN_EXE_lm-collapse");
    kill_in_first_arm_and_resume(binary, &LM, ["f32", "centered"], "f32:25");
}

/// Waits until `path` exists (the child has started training), or fails after a minute.
fn wait_for(path: &Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
        .collect()
}

#[test]
#[cfg(target_os = "linux")]
fn sigterm_to_the_parent_stops_the_training_child() {
    let out = temp("sigterm");
    let parent = Command::new(env!("CARGO_BIN_EXE_modular-division"))
        .args([
            "--p",
            "7",
            "--steps",
            "100000000",
            "--quiet",
            "--arms=f32,f64",
            "--out",
        ])
        .arg(&out)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&out.join("f32").join("metrics.csv"));
    let arm_dir = out.join("f32").display().to_string();
    assert_eq!(
        processes_mentioning(&arm_dir).len(),
        1,
        "one training child"
    );
    Command::new("kill")
        .args(["-TERM", &parent.id().to_string()])
        .status()
        .unwrap();
    let output = parent.wait_with_output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("signal 15") && stderr.contains("--resume"),
        "{stderr}"
    );
    assert!(
        processes_mentioning(&arm_dir).is_empty(),
        "the child outlived its parent"
    );
    assert!(!out.join("f64").exists(), "no arm starts after the signal");
}

#[test]
#[cfg(target_os = "linux")]
fn a_binary_replaced_during_a_run_still_starts_its_later_arms() {
    let out = temp("replaced");
    let copy = temp("replaced-bin");
    std::fs::create_dir_all(&copy).unwrap();
    let binary = copy.join("modular-division");
    std::fs::copy(env!("CARGO_BIN_EXE_modular-division"), &binary).unwrap();
    let parent = Command::new(&binary)
        .args(MODULAR)
        .arg("--out")
        .arg(&out)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&out.join("f32"));
    // What a `cargo build` does to the file while the run goes on.
    std::fs::remove_file(&binary).unwrap();
    let output = parent.wait_with_output().unwrap();
    assert_ok(&output);
    for arm in ["f32", "f64-loss"] {
        assert!(out.join(arm).join("summary.json").is_file(), "{arm}");
    }
}

#[test]
fn negative_values_reach_the_range_check_in_one_line_and_write_nothing() {
    let out = temp("negative");
    let output = run(
        env!("CARGO_BIN_EXE_mitigations"),
        &["--lr", "-0.01", "--quiet", "--only", "baseline,zero-sum"],
        &out,
        None,
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("arm baseline: learning rate -0.01"),
        "{stderr}"
    );
    assert!(!out.exists(), "a refused run creates nothing");
}
