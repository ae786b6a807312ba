//! slingshot inside burn-train's Learner: the logged metrics equal `CollapseStats`,
//! `NfiDiagnostics` and ProbedAdam's probe on the same batches; the example binary's outputs,
//! its flags, and a run stopped mid-epoch that resumes from burn-train's checkpoint to the
//! uninterrupted files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use burn::backend::Autodiff;
use burn::data::dataloader::batcher::Batcher;
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, cast::ToElement};
use burn_flex::Flex;
use slingshot::loss::CollapseAwareCrossEntropyConfig;
use slingshot::nn::NfiDiagnostics;
use slingshot::numerics::collapse_impossible_below;
use slingshot::optim::ProbedAdamConfig;
use slingshot_examples::burn_train_collapse::arms::run_arms;
use slingshot_examples::burn_train_collapse::model::{CollapseMlp, PairBatcher, split_pairs};
use slingshot_examples::burn_train_collapse::report::{ArmLogs, ArmSummary, read_arm};
use slingshot_examples::burn_train_collapse::run::LaunchOptions;
use slingshot_examples::burn_train_collapse::{CollapseRunConfig, LossArm};
use slingshot_train::loss_format;

type B = Autodiff<Flex>;

fn temp(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "slingshot-burn-train-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

const QUIET: LaunchOptions = LaunchOptions {
    log_every: 1,
    quiet: true,
};

/// burn-train trains 40 steps of `arm`; the same steps again by hand give the values each
/// logged training metric must equal: bit for bit for the collapse statistics (the margin
/// over the threshold too), the NFI values and the classifier's effective learning rate; the
/// loss and accuracy within burn-train's own conversions.
fn replay(arm: LossArm) {
    let config = CollapseRunConfig {
        epochs: 2,
        steps_per_epoch: 20,
        ..CollapseRunConfig::demo(arm)
    };
    let out = temp(&format!("replay-{}", arm.label()));
    run_arms(std::slice::from_ref(&config), &out, false, false, QUIET).unwrap();
    let logs = read_arm(&out.join(arm.label()), &config).unwrap();

    let device = Default::default();
    B::seed(&device, config.seed);
    let mut model = CollapseMlp::<B>::new(config.p, config.width, config.arm, &device);
    let (train, _) = split_pairs(config.p, config.train_fraction, config.seed);
    let batch = PairBatcher { p: config.p }.batch(train, &device);
    let mut adam = ProbedAdamConfig::new()
        .with_epsilon(config.eps)
        .init::<B, CollapseMlp<B>>();
    let loss_fn = CollapseAwareCrossEntropyConfig::new()
        .with_precision(arm.precision())
        .init::<B>(&device);
    let threshold = collapse_impossible_below(loss_format(arm.precision(), DType::F32));
    for step in 0..40 {
        let out = model.output(batch.clone());
        let burn_out = out.classification();
        let (logits, targets) = (burn_out.output.clone(), burn_out.targets.clone());
        let stats = loss_fn
            .forward_with_stats(logits.clone(), targets.clone())
            .stats
            .summary();
        let features = out.classifier().unwrap().features.clone();
        let weight = model.classifier.weight.val();
        let nfi = NfiDiagnostics::try_new_inflation(weight, None, features, targets.clone())
            .unwrap()
            .summary();
        let expect = |column: &str, want: f64| {
            let got = logs.column(column)[step];
            let at = step + 1;
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "{arm:?} step {at}: {column} {got} vs {want}"
            );
        };
        expect("collapsed_fraction", stats.collapsed_fraction);
        expect("zero_loss_fraction", stats.zero_loss_fraction);
        expect("residual_mass", stats.mean_residual_mass);
        expect("margin_over_threshold", stats.mean_margin - threshold);
        expect("mean_logit", stats.mean_logit);
        expect("mu_g_norm", nfi.mu_g_norm);
        expect("w_g_norm", nfi.w_g_norm);
        expect("cos_wg_mug", nfi.cos_wg_mug);
        let right = logits.argmax(1).squeeze::<1>().equal(targets).int().sum();
        let accuracy = 100.0 * right.into_scalar().to_f64() / config.train_rows() as f64;
        check_loss_and_accuracy(&logs, step, out.loss().into_scalar().into(), accuracy);

        let grads = GradientsParams::from_grads(out.loss().backward(), &model);
        model = adam.step(config.lr, model, grads);
        let id = model.classifier.weight.id;
        let probe = adam.take_probe().unwrap().read_params(&[id]);
        let lr = &probe.param(id).unwrap().effective_lr;
        expect("eff_lr_median", lr.median);
        expect("eff_lr_max", lr.max);
        expect("eff_lr_near_ceiling", lr.near_ceiling_fraction);
    }
    let collapsed = logs.column("collapsed_fraction");
    let any = collapsed.iter().any(|&f| f > 0.0);
    // f32 collapses within these 40 steps and f64 does not: both sides are compared.
    assert_eq!(any, arm == LossArm::BurnF32, "{arm:?}: {collapsed:?}");
}

/// burn-train syncs the loss to its f32 CPU backend (an f64 loss arrives rounded once) and
/// computes the accuracy in f64.
fn check_loss_and_accuracy(logs: &ArmLogs, step: usize, loss: f64, accuracy: f64) {
    let logged = logs.column("loss")[step];
    assert!(
        (logged - loss).abs() <= loss * f64::from(f32::EPSILON),
        "{logged} vs {loss}"
    );
    let logged = logs.column("accuracy_percent")[step];
    assert!(
        (logged - accuracy).abs() <= 1e-12 * 100.0,
        "{logged} vs {accuracy}"
    );
}

#[test]
fn logged_metrics_equal_the_primitives_on_the_same_batches_f32() {
    replay(LossArm::BurnF32);
}

#[test]
fn logged_metrics_equal_the_primitives_on_the_same_batches_f64_loss() {
    replay(LossArm::SlingshotF64Loss);
}

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_burn-train-collapse"))
}

/// The binary with `args` and `--out out`.
fn run_into(out: &Path, args: &[&str]) -> Output {
    binary().args(args).arg("--out").arg(out).output().unwrap()
}

/// `--resume`s the run in `out`, which must succeed; its standard output.
fn resume_into(out: &Path, args: &[&str]) -> String {
    let output = binary()
        .args(args)
        .arg("--out")
        .arg(out)
        .arg("--resume")
        .output()
        .unwrap();
    assert_ok(&output);
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn assert_ok(output: &Output) {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn summary(dir: &Path) -> ArmSummary {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn the_f32_arms_collapse_and_warn_and_the_f64_loss_arms_do_not() {
    let out = temp("arms");
    let output = run_into(
        &out,
        &["--epochs", "2", "--steps-per-epoch", "30", "--quiet"],
    );
    assert_ok(&output);
    for arm in LossArm::ALL {
        let dir = out.join(arm.label());
        for file in ["metrics.csv", "summary.json", "config.json"] {
            assert!(dir.join(file).is_file(), "{arm:?} lacks {file}");
        }
        let rows = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
        assert_eq!(rows.lines().count(), 1 + 60);
        // burn-train's own logs: one line per batch.
        let log = dir.join("train/epoch-2/Collapsed_Fraction.log");
        assert_eq!(std::fs::read_to_string(log).unwrap().lines().count(), 30);
        assert!(dir.join("checkpoint/model-2.mpk").is_file());
        let s = summary(&dir);
        let f32_arm = matches!(arm, LossArm::BurnF32 | LossArm::SlingshotF32);
        assert_eq!(s.first_collapse_step.is_some(), f32_arm, "{arm:?}: {s:?}");
        assert_eq!(s.warning_step.is_some(), f32_arm, "{arm:?}: {s:?}");
        assert_eq!(s.max_collapsed_fraction > 0.1, f32_arm, "{arm:?}: {s:?}");
    }
    assert!(out.join("figure.png").is_file());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("SOFTMAX COLLAPSE"), "{stdout}");
}

/// `summary.json` without the wall clock.
fn summary_numbers(dir: &Path) -> ArmSummary {
    ArmSummary {
        wall_seconds: 0.0,
        ..summary(dir)
    }
}

#[test]
fn a_run_stopped_mid_epoch_resumes_to_the_uninterrupted_files() {
    let args = [
        "--arms",
        "burn-f32,slingshot-f64-loss",
        "--epochs",
        "3",
        "--steps-per-epoch",
        "10",
        "--quiet",
    ];
    let whole = temp("whole");
    assert_ok(&run_into(&whole, &args));
    let stopped = temp("stopped");
    let output = binary()
        .args(args)
        .arg("--out")
        .arg(&stopped)
        .env("SLINGSHOT_TEST_INTERRUPT", "slingshot-f64-loss:15")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("continue with --resume"), "{stderr}");
    assert!(!stopped.join("slingshot-f64-loss/summary.json").exists());
    // Stopped at iteration 15 of 10 per epoch: from epoch 1's checkpoint, not from scratch.
    let said = resume_into(&stopped, &args);
    assert!(
        said.contains("slingshot-f64-loss: resuming after epoch 1"),
        "{said}"
    );
    assert!(!said.contains("burn-f32: resuming"), "{said}");
    for arm in ["burn-f32", "slingshot-f64-loss"] {
        let (a, b) = (whole.join(arm), stopped.join(arm));
        let read = |d: &Path, f: &str| std::fs::read_to_string(d.join(f)).unwrap();
        assert_eq!(read(&a, "metrics.csv"), read(&b, "metrics.csv"), "{arm}");
        assert_eq!(summary_numbers(&a), summary_numbers(&b), "{arm}");
        // burn-train's per-epoch logs too: the resumed epoch is logged as epoch 2, not 1.
        for epoch in 1..=3 {
            let log = format!("train/epoch-{epoch}/Loss.log");
            assert_eq!(read(&a, &log), read(&b, &log), "{arm} {log}");
        }
    }
}

#[test]
fn bad_flags_and_used_directories_are_refused_before_training() {
    let out = temp("flags");
    for (flags, says) in [
        (vec!["--lr", "-1"], "--lr"),
        (vec!["--p", "1"], "--p"),
        (vec!["--p", "2001"], "--p"),
        (vec!["--width", "0"], "--width"),
        (vec!["--epochs", "0"], "--epochs"),
        (vec!["--eps", "0"], "--eps"),
        (vec!["--eps", "inf"], "--eps"),
        (vec!["--train-fraction", "1"], "--train-fraction"),
        (vec!["--warning-threshold", "0"], "--warning-threshold"),
        (vec!["--steps-per-epoch", "0"], "--steps-per-epoch"),
        (vec!["--log-every", "0"], "--log-every"),
        (vec!["--arms", "burn-f32,burn-f32"], "twice"),
        (vec!["--resume"], "no run to resume"),
    ] {
        let output = binary()
            .args(&flags)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{flags:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{flags:?}: {stderr}");
        assert!(!out.exists(), "{flags:?} wrote {}", out.display());
    }
    let tiny = [
        "--epochs",
        "1",
        "--steps-per-epoch",
        "2",
        "--quiet",
        "--arms",
        "burn-f32",
    ];
    assert_ok(&binary().args(tiny).arg("--out").arg(&out).output().unwrap());
    let again = binary().args(tiny).arg("--out").arg(&out).output().unwrap();
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a run"));
    let other = binary()
        .args(tiny)
        .args(["--lr", "0.01", "--resume", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert!(stderr.contains("lr is 0.07 there, 0.01 now"), "{stderr}");
}

#[test]
fn the_ndarray_backend_trains_the_same_example() {
    let out = temp("ndarray");
    let flags = [
        "--backend",
        "ndarray",
        "--arms",
        "burn-f32",
        "--epochs",
        "1",
    ];
    let output = run_into(
        &out,
        &[&flags[..], &["--steps-per-epoch", "30", "--quiet"]].concat(),
    );
    assert_ok(&output);
    let s = summary(&out.join("burn-f32"));
    assert_eq!(s.steps, 30);
    assert!(s.first_collapse_step.is_some(), "{s:?}");
}

/// burn-train writes its logs on threads of their own: a kill right after a checkpoint can
/// leave that epoch's logs short. A resume then starts from the checkpoint before it.
#[test]
fn a_checkpoint_whose_logs_were_cut_short_is_not_resumed_from() {
    let args = [
        "--arms",
        "burn-f32",
        "--epochs",
        "3",
        "--steps-per-epoch",
        "10",
        "--quiet",
    ];
    let whole = temp("cut-whole");
    assert_ok(&run_into(&whole, &args));
    let cut = temp("cut");
    assert_ok(&run_into(&cut, &args));
    let arm = cut.join("burn-f32");
    std::fs::remove_file(arm.join("summary.json")).unwrap();
    let log = arm.join("train/epoch-3/Loss.log");
    let text = std::fs::read_to_string(&log).unwrap();
    let short: Vec<&str> = text.lines().take(4).collect();
    std::fs::write(&log, short.join("\n") + "\n").unwrap();
    assert!(arm.join("checkpoint/model-3.mpk").is_file());
    let said = resume_into(&cut, &args);
    assert!(said.contains("burn-f32: resuming after epoch 2"), "{said}");
    let read = |d: &Path| std::fs::read_to_string(d.join("burn-f32/metrics.csv")).unwrap();
    assert_eq!(read(&whole), read(&cut));
    assert_eq!(
        std::fs::read_to_string(&log).unwrap().lines().count(),
        10,
        "epoch 3 was trained again"
    );
}

/// A real kill (SIGKILL, at whatever the run is doing once its second checkpoint exists),
/// then `--resume`: the same files as an uninterrupted run.
#[test]
fn a_killed_run_resumes_to_the_uninterrupted_files() {
    let args = [
        "--arms",
        "slingshot-f32",
        "--epochs",
        "30",
        "--steps-per-epoch",
        "40",
        "--quiet",
    ];
    let whole = temp("kill-whole");
    assert_ok(&run_into(&whole, &args));
    let killed = temp("killed");
    let mut child = binary()
        .args(args)
        .arg("--out")
        .arg(&killed)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // By epoch 2's checkpoint, epoch 1's logs have had a whole epoch to land: the resume
    // must start after epoch 1 at least.
    let first = killed.join("slingshot-f32/checkpoint/model-2.mpk");
    let started = std::time::Instant::now();
    while !first.exists() && started.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(first.exists(), "no checkpoint within 2 minutes");
    assert!(!status.success(), "the run finished before the kill");
    let said = resume_into(&killed, &args);
    assert!(
        said.contains("slingshot-f32: resuming after epoch "),
        "{said}"
    );
    let read =
        |d: &Path, f: &str| std::fs::read_to_string(d.join("slingshot-f32").join(f)).unwrap();
    assert_eq!(read(&whole, "metrics.csv"), read(&killed, "metrics.csv"));
    assert_eq!(
        summary_numbers(&whole.join("slingshot-f32")),
        summary_numbers(&killed.join("slingshot-f32"))
    );
}
