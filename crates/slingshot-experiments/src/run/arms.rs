//! The arms protocol of every multi-arm binary. The parent checks every arm and the output
//! directory before any training, writes each arm's `config.json`, and starts the running
//! executable once per arm with that file (burn keeps one default float dtype per device and
//! process, so each arm gets its own process). The child reads the file and trains. A resume
//! continues the arm that was interrupted and starts the arms that had not begun.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::checkpoint;
use super::resume::{check_resumable, claim_fresh, differences};
use super::train_loop::RunOptions;
use crate::error::ExperimentError;
use crate::output::{RunDir, write_json};

/// The hidden first argument that makes a binary run one arm.
const CHILD_FLAG: &str = "--slingshot-arm";

/// A task that runs as an arm.
pub trait ArmTask {
    /// The arm's `config.json`.
    type Config: Serialize + DeserializeOwned + Clone;
    /// What a finished arm gives back.
    type Output;
    /// Whether a resume may raise `steps` ([`super::Training::STEPS_EXTEND`]).
    const STEPS_EXTEND: bool = true;
    /// Checks the configuration before any arm starts.
    fn validate(config: &Self::Config) -> Result<(), ExperimentError>;
    /// Trains the arm into `dir`.
    fn run(
        config: &Self::Config,
        dir: &RunDir,
        options: &RunOptions,
    ) -> Result<Self::Output, ExperimentError>;
    /// A finished arm's outputs, read back from `dir`.
    fn read(dir: &RunDir) -> Result<Self::Output, ExperimentError>;
}

/// One arm: its name (output subdirectory and legend) and configuration.
#[derive(Debug, Clone)]
pub struct Arm<C> {
    /// Output subdirectory and legend label.
    pub label: String,
    /// The arm's configuration.
    pub config: C,
}

/// What the parent does with an arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// Train from step 0.
    Fresh,
    /// Continue from its checkpoint.
    Resume,
    /// Finished without a checkpoint to extend: read its outputs.
    Finished,
}

/// `arm <label>: ` before a message, once.
pub fn in_arm(label: &str, e: ExperimentError) -> ExperimentError {
    match e {
        ExperimentError::InvalidConfig(m) => {
            ExperimentError::InvalidConfig(format!("arm {label}: {m}"))
        }
        other => other,
    }
}

/// Decides every arm's plan, checking each resumable arm's configuration against its
/// checkpoint. Nothing is written.
fn plan<T: ArmTask>(
    out: &Path,
    arms: &[Arm<T::Config>],
    options: &RunOptions,
) -> Result<Vec<Plan>, ExperimentError> {
    for arm in arms {
        T::validate(&arm.config).map_err(|e| in_arm(&arm.label, e))?;
    }
    if !options.resume {
        claim_fresh(out, options.overwrite)?;
        return Ok(vec![Plan::Fresh; arms.len()]);
    }
    if !out.join("config.json").is_file() {
        return Err(ExperimentError::Resume {
            path: out.to_path_buf(),
            reason: "holds no run to resume (no config.json); start it without --resume".into(),
        });
    }
    arms.iter().map(|arm| plan_one::<T>(out, arm)).collect()
}

fn plan_one<T: ArmTask>(out: &Path, arm: &Arm<T::Config>) -> Result<Plan, ExperimentError> {
    let dir = RunDir::at(&out.join(&arm.label));
    if checkpoint::exists(&dir.checkpoint()) {
        let (found, state) =
            checkpoint::read_state::<T::Config, serde_json::Map<_, _>>(&dir.checkpoint())?;
        check_resumable(
            &state.config,
            &arm.config,
            state.step,
            &found,
            T::STEPS_EXTEND,
        )?;
        // The rows the checkpoint counts must be there, or the child would refuse later.
        let rows = count_rows(&dir.metrics());
        if rows < state.metrics_rows {
            return Err(ExperimentError::Resume {
                path: dir.metrics(),
                reason: format!(
                    "has {rows} rows, the checkpoint expects {}; without them arm {} cannot resume (start the run again with --overwrite)",
                    state.metrics_rows, arm.label
                ),
            });
        }
        return Ok(Plan::Resume);
    }
    let written = std::fs::read_to_string(dir.config())
        .ok()
        .and_then(|t| serde_json::from_str::<T::Config>(&t).ok());
    let Some(written) = written else {
        // Never began (or died before writing anything of its own): start it.
        return Ok(Plan::Fresh);
    };
    let changed = differences(&written, &arm.config);
    if !changed.is_empty() {
        return Err(ExperimentError::Resume {
            path: dir.config(),
            reason: format!(
                "arm {} was written with another configuration: {}; resume with the same flags",
                arm.label,
                changed.join("; ")
            ),
        });
    }
    Ok(if dir.summary().is_file() {
        Plan::Finished
    } else {
        Plan::Fresh
    })
}

/// Complete records of a CSV file (0 when it is missing).
fn count_rows(path: &Path) -> usize {
    csv::Reader::from_path(path).map_or(0, |mut r| r.records().take_while(Result::is_ok).count())
}

/// Runs every arm (each in its own process) into `out/<label>` and reads their outputs back.
pub fn run_arms<T: ArmTask>(
    out: &Path,
    arms: &[Arm<T::Config>],
    options: &RunOptions,
) -> Result<(RunDir, Vec<T::Output>), ExperimentError> {
    let plans = plan::<T>(out, arms, options)?;
    let root = RunDir::create(out)?;
    let configs: Vec<&T::Config> = arms.iter().map(|a| &a.config).collect();
    write_json(&root.config(), &configs)?;
    install_forwarding();
    let outputs = run_planned::<T>(out, arms, &plans, options);
    restore_default_signals();
    Ok((root, outputs?))
}

/// Runs the arms that `plans` says to run, and reads every arm's outputs.
fn run_planned<T: ArmTask>(
    out: &Path,
    arms: &[Arm<T::Config>],
    plans: &[Plan],
    options: &RunOptions,
) -> Result<Vec<T::Output>, ExperimentError> {
    let mut outputs = Vec::new();
    for (arm, &plan) in arms.iter().zip(plans) {
        if let Some(signal) = received_signal() {
            return Err(ExperimentError::Interrupted { signal });
        }
        let dir = RunDir::create(&out.join(&arm.label))?;
        if plan == Plan::Fresh {
            // An arm that never reached a checkpoint starts again from nothing.
            claim_fresh(dir.root(), true)?;
        }
        if plan != Plan::Finished {
            // The child trains what this file says (a resume may extend --steps).
            write_json(&dir.config(), &arm.config)?;
            run_child(&arm.label, dir.root(), plan == Plan::Resume, options)?;
        }
        outputs.push(T::read(&dir)?);
    }
    Ok(outputs)
}

/// The running executable: on Linux `/proc/self/exe`, valid even after a rebuild replaced the
/// file on disk.
fn this_executable() -> Result<PathBuf, ExperimentError> {
    if cfg!(target_os = "linux") {
        return Ok(PathBuf::from("/proc/self/exe"));
    }
    std::env::current_exe().map_err(|e| {
        ExperimentError::InvalidConfig(format!("cannot find this binary to re-run: {e}"))
    })
}

/// Starts this executable for one arm and waits for it, forwarding SIGTERM and SIGINT.
fn run_child(
    label: &str,
    dir: &Path,
    resume: bool,
    options: &RunOptions,
) -> Result<(), ExperimentError> {
    let mut command = Command::new(this_executable()?);
    command.arg(CHILD_FLAG).arg(dir);
    if resume {
        command.arg("--resume");
    }
    if options.quiet {
        command.arg("--quiet");
    }
    if let Some(every) = options.checkpoint_every {
        command.arg("--checkpoint-every").arg(every.to_string());
    }
    let failed = |reason: String| ExperimentError::ArmFailed {
        arm: label.into(),
        reason,
    };
    let mut child = command.spawn().map_err(|e| failed(e.to_string()))?;
    let status = wait_forwarding(&mut child).map_err(|e| failed(e.to_string()))?;
    match (status.success(), received_signal()) {
        // A signal that came as the arm ended still stops the run before the next arm.
        (_, Some(sig)) => Err(ExperimentError::Interrupted { signal: sig }),
        (true, None) => Ok(()),
        (false, None) => Err(failed(format!(
            "{status}; its outputs so far are in {}",
            dir.display()
        ))),
    }
}

/// The last SIGTERM or SIGINT the parent received (0: none).
static RECEIVED: AtomicI32 = AtomicI32::new(0);

fn received_signal() -> Option<i32> {
    Some(RECEIVED.load(Ordering::SeqCst)).filter(|&s| s != 0)
}

#[cfg(unix)]
extern "C" fn remember_signal(signal: libc::c_int) {
    RECEIVED.store(signal, Ordering::SeqCst);
}

/// Catches SIGTERM and SIGINT in the parent, so that it can pass them on and wait.
fn install_forwarding() {
    #[cfg(unix)]
    // SAFETY: the handler only stores into an atomic, which is async-signal-safe.
    unsafe {
        let handler = remember_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::signal(libc::SIGTERM, handler);
        libc::signal(libc::SIGINT, handler);
    }
}

/// Gives SIGTERM and SIGINT their default action back once no child runs.
fn restore_default_signals() {
    #[cfg(unix)]
    // SAFETY: restoring the default disposition has no preconditions.
    unsafe {
        libc::signal(libc::SIGTERM, libc::SIG_DFL);
        libc::signal(libc::SIGINT, libc::SIG_DFL);
    }
}

/// Waits for `child`, sending it any signal the parent receives meanwhile.
fn wait_forwarding(child: &mut std::process::Child) -> std::io::Result<std::process::ExitStatus> {
    let mut forwarded = 0;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        let signal = RECEIVED.load(Ordering::SeqCst);
        if signal != 0 && signal != forwarded {
            #[cfg(unix)]
            // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
            unsafe {
                libc::kill(child.id() as libc::pid_t, signal);
            }
            #[cfg(not(unix))]
            child.kill()?;
            forwarded = signal;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The child side: when this process was started for one arm, trains it and returns the exit
/// code; otherwise `None`. Every multi-arm binary calls this first in `main`.
pub fn child_entry<T: ArmTask>() -> Option<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) != Some(CHILD_FLAG) {
        return None;
    }
    Some(crate::error::exit_code(run_as_child::<T>(&args[1..])))
}

fn run_as_child<T: ArmTask>(args: &[String]) -> Result<(), ExperimentError> {
    let bad = |m: String| ExperimentError::InvalidConfig(format!("{CHILD_FLAG}: {m}"));
    let dir = RunDir::at(Path::new(
        args.first().ok_or_else(|| bad("no directory".into()))?,
    ));
    let mut options = RunOptions::default();
    let mut rest = args[1..].iter();
    while let Some(flag) = rest.next() {
        match flag.as_str() {
            "--resume" => options.resume = true,
            "--quiet" => options.quiet = true,
            "--checkpoint-every" => {
                let every = rest.next().and_then(|v| v.parse().ok());
                options.checkpoint_every =
                    Some(every.ok_or_else(|| bad("bad --checkpoint-every".into()))?);
            }
            other => return Err(bad(format!("unexpected {other:?}"))),
        }
    }
    let text = std::fs::read_to_string(dir.config()).map_err(|e| ExperimentError::Resume {
        path: dir.config(),
        reason: e.to_string(),
    })?;
    let config: T::Config = serde_json::from_str(&text).map_err(|e| ExperimentError::Resume {
        path: dir.config(),
        reason: e.to_string(),
    })?;
    // The parent wrote config.json into the arm's own directory: a fresh arm replaces it.
    options.overwrite = !options.resume;
    let stop = test_stop(dir.root());
    options.stop_after = stop;
    T::run(&config, &dir, &options)?;
    match stop {
        Some(step) => Err(ExperimentError::Killed { step }),
        None => Ok(()),
    }
}

/// The test hook `SLINGSHOT_TEST_STOP_ARM=<label>:<step>`: the arm `<label>` stops after
/// `<step>` steps as a kill would, so that tests of a multi-arm resume need no timing.
pub const TEST_STOP_ARM: &str = "SLINGSHOT_TEST_STOP_ARM";

fn test_stop(dir: &Path) -> Option<u64> {
    let hook = std::env::var(TEST_STOP_ARM).ok()?;
    let (label, step) = hook.split_once(':')?;
    let this = dir.file_name()?.to_str()?;
    (this == label).then(|| step.parse().ok()).flatten()
}
