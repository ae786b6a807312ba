//! The experiment binaries end to end, on tiny settings: every output of every arm, the
//! combined figures, and flags refused before any training.

use std::path::{Path, PathBuf};
use std::process::Command;

fn temp(name: &str) -> PathBuf {
    // Inside target/, so that runs do not accumulate in the system temp directory.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("slingshot-bin-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

const TINY: [&str; 12] = [
    "--p",
    "7",
    "--width",
    "16",
    "--depth",
    "1",
    "--steps",
    "40",
    "--log-every",
    "10",
    "--quiet",
    "--checkpoint-every=20",
];

/// The process succeeded; otherwise its stderr is the failure message.
fn assert_ok(output: &std::process::Output) {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn assert_arm(dir: &Path) {
    for file in ["metrics.csv", "summary.json", "config.json", "figure.png"] {
        assert!(dir.join(file).is_file(), "{} lacks {file}", dir.display());
    }
    assert!(dir.join("checkpoint/state.json").is_file());
    let rows = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert_eq!(rows.lines().count(), 1 + 4, "header and 4 logged steps");
}

#[test]
fn modular_division_writes_every_arm_and_the_combined_figure() {
    let out = temp("md");
    let status = Command::new(env!("CARGO_BIN_EXE_modular-division"))
        .args(TINY)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_ok(&status);
    for arm in ["f32", "f64-loss", "f64"] {
        assert_arm(&out.join(arm));
    }
    assert!(out.join("figure.png").is_file());
    let table = String::from_utf8_lossy(&status.stdout);
    assert!(
        table.contains("f64-loss") && table.contains("steps/s"),
        "{table}"
    );
    let f64_summary = std::fs::read_to_string(out.join("f64/summary.json")).unwrap();
    assert!(f64_summary.contains("\"precision\": \"f64\""));
}

#[test]
fn mitigations_runs_the_chosen_arms() {
    let out = temp("mit");
    let status = Command::new(env!("CARGO_BIN_EXE_mitigations"))
        .args(TINY)
        .args([
            "--only",
            "baseline,zero-sum,f64-loss,layer-norm-head",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert_ok(&status);
    for arm in ["baseline", "zero-sum", "f64-loss", "layer-norm-head"] {
        assert_arm(&out.join(arm));
    }
    assert!(out.join("figure-1.png").is_file());
    // Fig. 3(b) is drawn only when the baseline and the LayerNorm head both ran.
    let fig3b = std::fs::read(out.join("layer-norm.png")).unwrap();
    assert!(fig3b.starts_with(b"\x89PNG"), "layer-norm.png is not a PNG");
    let config = std::fs::read_to_string(out.join("zero-sum/config.json")).unwrap();
    assert!(config.contains("\"zero_sum\": true"), "{config}");
    let config = std::fs::read_to_string(out.join("f64-loss/config.json")).unwrap();
    assert!(config.contains("\"precision\": \"f64-loss\""), "{config}");
}

#[test]
fn bad_flags_fail_before_anything_is_written() {
    let out = temp("bad");
    let run = Command::new(env!("CARGO_BIN_EXE_modular-division"))
        .args(["--lr=-1", "--quiet", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("learning rate"));
    assert!(!out.exists(), "nothing is created for a refused run");
    let run = Command::new(env!("CARGO_BIN_EXE_mitigations"))
        .args(["--only", "no-such-arm", "--quiet", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("unknown arm"));
    for preset in ["add-mod-113", "grokking"] {
        let run = Command::new(env!("CARGO_BIN_EXE_cifar-mitigations"))
            .args(["--preset", preset, "--quiet", "--out"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(!run.status.success());
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(
            stderr.contains(&format!("--preset {preset} is for the modular task")),
            "{stderr}"
        );
        assert!(!out.exists());
    }
}

#[test]
fn mitigations_lists_the_clamp_the_switch_and_the_sweep() {
    let list = Command::new(env!("CARGO_BIN_EXE_mitigations"))
        .arg("--list")
        .output()
        .unwrap();
    assert!(list.status.success());
    let text = String::from_utf8_lossy(&list.stdout);
    for arm in ["logit-clamp", "gd-switch", "lr-1e-3", "lr-1e-4", "lr-1e-5"] {
        assert!(text.contains(arm), "{arm} missing from:\n{text}");
    }
    // The demo's own learning rate (1e-2) is the baseline, not a sweep arm.
    assert!(!text.contains("lr-1e-2"), "{text}");
    assert!(text.contains("--switch-when-loss-at-most 1e-7"), "{text}");
    let paper = Command::new(env!("CARGO_BIN_EXE_mitigations"))
        .args(["--list", "--preset", "paper"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&paper.stdout);
    assert!(
        text.contains("lr-1e-2") && !text.contains("lr-1e-3"),
        "{text}"
    );
    assert!(text.contains("--switch-when-loss-at-most 0"), "{text}");
}

#[test]
fn mitigations_passes_the_clamp_and_the_switch_to_their_arms() {
    let out = temp("mit-new");
    let status = Command::new(env!("CARGO_BIN_EXE_mitigations"))
        .args(TINY)
        .args(["--only", "logit-clamp,gd-switch", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_ok(&status);
    for arm in ["logit-clamp", "gd-switch"] {
        assert_arm(&out.join(arm));
    }
    assert!(!out.join("layer-norm.png").exists());
    let config = std::fs::read_to_string(out.join("logit-clamp/config.json")).unwrap();
    assert!(config.contains("\"logit_clamp\": 100.0"), "{config}");
    let config = std::fs::read_to_string(out.join("gd-switch/config.json")).unwrap();
    assert!(config.contains("\"lr\": 100000.0"), "{config}");
    assert!(config.contains("\"loss_at_most\": 1e-7"), "{config}");
}

#[test]
fn eos_vs_slingshot_measures_sharpness_in_both_precisions() {
    let out = temp("eos");
    let status = Command::new(env!("CARGO_BIN_EXE_eos-vs-slingshot"))
        .args([
            "--p",
            "7",
            "--depth",
            "1",
            "--steps",
            "40",
            "--log-every",
            "10",
            "--sharpness-every",
            "20",
            "--quiet",
            "--checkpoint-every=20",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert_ok(&status);
    for arm in ["f32", "f64"] {
        assert_arm(&out.join(arm));
        let config = std::fs::read_to_string(out.join(arm).join("config.json")).unwrap();
        assert!(config.contains("\"width\": 20"), "Fig. 5's width: {config}");
        let rows = std::fs::read_to_string(out.join(arm).join("metrics.csv")).unwrap();
        let header: Vec<&str> = rows.lines().next().unwrap().split(',').collect();
        let column = |name: &str| -> Vec<String> {
            let col = header.iter().position(|h| *h == name).unwrap();
            rows.lines()
                .skip(1)
                .map(|l| l.split(',').nth(col).unwrap().to_string())
                .collect()
        };
        // Steps 10, 20, 30, 40: measured at 20 and 40 only, finite and positive, the raw and
        // Adam's preconditioned sharpness (the top of its spectrum) both.
        for measured in [column("sharpness"), column("preconditioned_sharpness")] {
            assert!(
                measured[0].is_empty() && measured[2].is_empty(),
                "{measured:?}"
            );
            for v in [&measured[1], &measured[3]] {
                let v: f64 = v.parse().unwrap();
                assert!(v.is_finite() && v > 0.0, "{measured:?}");
            }
        }
    }
    assert!(out.join("figure.png").is_file());
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(
        stdout.contains("lambda_max") && stdout.contains("P^-1 H"),
        "{stdout}"
    );
}

#[test]
fn update_spike_says_so_when_no_spike_happened() {
    let out = temp("us-none");
    let run = Command::new(env!("CARGO_BIN_EXE_update-spike"))
        .args(TINY)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("no loss spike"),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

/// A small configuration that spikes near step 5,500 (p = 7, width 64, lr 0.1): the spike's
/// classifier update is far larger than the one before it, and every output is written.
#[test]
fn update_spike_measures_the_updates_around_the_first_spike() {
    let out = temp("us");
    let run = Command::new(env!("CARGO_BIN_EXE_update-spike"))
        .args([
            "--p",
            "7",
            "--width",
            "64",
            "--lr",
            "0.1",
            "--steps",
            "6000",
            "--window",
            "20",
            "--quiet",
            "--checkpoint-every=0",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert_ok(&run);
    for file in ["histograms.png", "window.png", "update-spike.json"] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    assert!(out.join("window/classifier-updates.csv").is_file());
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("update-spike.json")).unwrap())
            .unwrap();
    let mean = |k: &str| report[k]["mean_abs"].as_f64().unwrap();
    assert!(mean("at") > 10.0 * mean("before"), "{report}");
    let estimate = report["estimate"]["update"].as_f64().unwrap();
    assert!(estimate.is_finite() && estimate > 0.0, "{report}");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("§4.1 estimate"), "{stdout}");
}

/// Tiny image runs: 8 synthetic images, 4 steps logged every 2, the narrowest networks.
const TINY_IMAGES: [&str; 22] = [
    "--train-size",
    "8",
    "--test-size",
    "4",
    "--steps",
    "4",
    "--log-every",
    "2",
    "--channels",
    "1",
    "--width",
    "8",
    "--depth",
    "1",
    "--d-model",
    "8",
    "--heads",
    "2",
    "--layers",
    "1",
    "--quiet",
    "--checkpoint-every=2",
];

/// One arm of an image experiment: every output, two logged rows, the model and the data
/// named in `summary.json`.
fn assert_image_arm(dir: &Path, model: &str, dataset: &str) {
    for file in ["metrics.csv", "summary.json", "config.json", "figure.png"] {
        assert!(dir.join(file).is_file(), "{} lacks {file}", dir.display());
    }
    let png = std::fs::read(dir.join("figure.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let rows = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert_eq!(rows.lines().count(), 1 + 2, "{}", dir.display());
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["model"], model, "{summary}");
    assert_eq!(summary["dataset"], dataset, "{summary}");
    assert_eq!(summary["steps"], 4, "{summary}");
    assert!(summary["final_test_acc"].as_f64().unwrap().is_finite());
}

/// `table.csv`'s arms and models, in order.
fn table(out: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(out.join("table.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(&header[..3], ["arm", "model", "dataset"]);
    assert!(header.contains(&"n_spikes"));
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].to_string(), f[1].to_string())
        })
        .collect()
}

fn image_binary(bin: &str, out: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(bin)
        .args(TINY_IMAGES)
        .args(extra)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn cifar_architectures_trains_every_network_of_table_1() {
    let out = temp("cifar-arch");
    let run = image_binary(env!("CARGO_BIN_EXE_cifar-architectures"), &out, &[]);
    assert_ok(&run);
    let networks = ["mlp", "vgg11", "vgg11-bn", "vit", "resnet18"];
    for n in networks {
        assert_image_arm(&out.join(n), n, "synthetic");
    }
    let rows = table(&out);
    assert_eq!(
        rows.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(),
        networks
    );
    assert!(rows.iter().all(|(a, m)| a == m));
    assert!(out.join("figure.png").is_file());
}

#[test]
fn cifar_mitigations_dataset_size_and_minibatch_write_their_arms() {
    let out = temp("cifar-mit");
    assert_ok(&image_binary(
        env!("CARGO_BIN_EXE_cifar-mitigations"),
        &out,
        &[],
    ));
    for arm in [
        "baseline",
        "batch-norm-head",
        "layer-norm-head",
        "centered",
        "zero-sum",
    ] {
        assert_image_arm(&out.join(arm), "vgg11-bn", "synthetic");
    }
    let config = std::fs::read_to_string(out.join("centered/config.json")).unwrap();
    assert!(config.contains("\"centered\": true"), "{config}");

    let out = temp("cifar-size");
    // Sizes beyond --train-size's 8 come from --sizes.
    let run = Command::new(env!("CARGO_BIN_EXE_cifar-dataset-size"))
        .args(&TINY_IMAGES[2..])
        .args(["--sizes", "6,12", "--precision", "f64-loss", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_ok(&run);
    for (arm, n) in [("n-6", 6), ("n-12", 12)] {
        assert_image_arm(&out.join(arm), "mlp", "synthetic");
        let config: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join(arm).join("config.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(config["images"]["train_size"], n);
        assert_eq!(config["precision"], "f64-loss");
    }

    let out = temp("cifar-mb");
    assert_ok(&image_binary(
        env!("CARGO_BIN_EXE_cifar-minibatch"),
        &out,
        &["--batch", "4"],
    ));
    for arm in ["baseline", "centered", "batch-norm-head"] {
        assert_image_arm(&out.join(arm), "vgg11", "synthetic");
    }
    let config = std::fs::read_to_string(out.join("baseline/config.json")).unwrap();
    assert!(config.contains("\"rows\": 4"), "{config}");
}

/// Writes a distribution in the CIFAR-10 binary format: the loader takes only files of exactly
/// 10,000 records, so six files of 30,730,000 bytes (the same records in each).
fn write_cifar(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let mut bytes = vec![0u8; 10_000 * 3073];
    for (i, record) in bytes.chunks_exact_mut(3073).enumerate() {
        record[0] = (i % 10) as u8;
        for (j, p) in record[1..].iter_mut().enumerate() {
            *p = ((7 * i + j) % 256) as u8;
        }
    }
    let names = [
        "data_batch_1.bin",
        "data_batch_2.bin",
        "data_batch_3.bin",
        "data_batch_4.bin",
        "data_batch_5.bin",
        "test_batch.bin",
    ];
    for name in names {
        std::fs::write(dir.join(name), &bytes).unwrap();
    }
}

#[test]
fn cifar_binaries_read_the_binary_format_and_refuse_bad_data_before_training() {
    let data = temp("cifar-data");
    write_cifar(&data);
    let out = temp("cifar-real");
    let run = image_binary(
        env!("CARGO_BIN_EXE_cifar-architectures"),
        &out,
        &["--only", "mlp", "--data-dir", data.to_str().unwrap()],
    );
    assert_ok(&run);
    assert_image_arm(&out.join("mlp"), "mlp", "cifar10");

    // Too few images, a truncated file, a missing directory: refused, nothing written.
    let truncated = data.join("data_batch_4.bin");
    let bytes = std::fs::read(&truncated).unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--train-size".into(), "50001".into()],
            "asked for 50001 images",
        ),
        (
            vec![
                "--train-size".into(),
                "8".into(),
                "--model".into(),
                "vgg11".into(),
            ],
            "--only",
        ),
        (
            vec![
                "--train-size".into(),
                "8".into(),
                "--grad-chunk".into(),
                "0".into(),
            ],
            "grad-chunk",
        ),
        (vec!["--only".into(), "alexnet".into()], "unknown arm"),
    ];
    for (flags, message) in cases {
        let out = temp("cifar-refused");
        let run = Command::new(env!("CARGO_BIN_EXE_cifar-architectures"))
            .args(["--data-dir", data.to_str().unwrap(), "--test-size", "4"])
            .args(["--quiet", "--out"])
            .arg(&out)
            .args(&flags)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{flags:?}");
        assert!(stderr.contains(message), "{flags:?}: {stderr}");
        assert!(!out.exists(), "{flags:?}: output written before the check");
    }
    // Cut on a record boundary (half the records) and mid-record: both refused.
    for (cut, message) in [(bytes.len() / 2, "5,000 records"), (100, "truncated")] {
        std::fs::write(&truncated, &bytes[..bytes.len() - cut]).unwrap();
        let out = temp("cifar-truncated");
        let run = Command::new(env!("CARGO_BIN_EXE_cifar-mitigations"))
            .args(["--data-dir", data.to_str().unwrap(), "--quiet", "--out"])
            .arg(&out)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(
            stderr.contains("data_batch_4.bin") && stderr.contains(message),
            "{stderr}"
        );
        assert!(!out.exists());
    }
    std::fs::remove_dir_all(&data).unwrap();
    let out = temp("cifar-missing");
    let run = Command::new(env!("CARGO_BIN_EXE_cifar-dataset-size"))
        .args(["--data-dir", "/no/such/cifar", "--quiet", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("not a directory"), "{stderr}");
    assert!(!out.exists());
}
