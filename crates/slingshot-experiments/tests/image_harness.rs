//! The harness on images: chunked full-batch steps against unchunked ones, resume with
//! BatchNorm state, the image networks' sizes, and what the summary says about the data.

use slingshot_experiments::model::{
    InputSpec, MlpConfig, ModelConfig, ModelKind, NetworkConfig, ResNetConfig, VggConfig, VitConfig,
};
use slingshot_experiments::train::init_model;
use slingshot_experiments::{
    BatchSize, MetricsRow, Precision, RunDir, RunOptions, RunResult, TrainConfig, run,
};

mod common;

use common::numbers;

type B = burn_ndarray::NdArray<f32>;

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("slingshot-images-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn quiet() -> RunOptions {
    RunOptions {
        quiet: true,
        ..RunOptions::default()
    }
}

/// A tiny image run of `kind`: 10 synthetic images, every step logged.
fn tiny(kind: ModelKind, steps: u64) -> TrainConfig {
    let mut c = TrainConfig::cifar_demo(kind);
    c.experiment = "test".into();
    c.arm = kind.name().into();
    c.precision = Precision::F32;
    if let Some(images) = c.images_mut() {
        images.train_size = 10;
        images.test_size = 6;
    }
    c.model.network = match c.model.network {
        NetworkConfig::Mlp(_) => NetworkConfig::Mlp(MlpConfig {
            width: 16,
            depth: 1,
        }),
        NetworkConfig::Vgg11(v) => NetworkConfig::Vgg11(VggConfig { channels: 1, ..v }),
        NetworkConfig::Resnet18(_) => NetworkConfig::Resnet18(ResNetConfig { channels: 1 }),
        NetworkConfig::Vit(v) => NetworkConfig::Vit(VitConfig {
            d_model: 8,
            heads: 2,
            layers: 1,
            ..v
        }),
        other => other,
    };
    c.steps = steps;
    c.log_every = 1;
    c
}

/// The logged numbers of a row, the wall clock left out.
fn values(r: &MetricsRow) -> Vec<(&'static str, f64)> {
    vec![
        ("loss", r.loss),
        ("train_acc", r.train_acc),
        ("test_loss", r.test_loss),
        ("test_acc", r.test_acc),
        ("collapsed", r.collapsed_fraction),
        ("residual", r.mean_residual_mass),
        ("min_margin", r.min_margin),
        ("mean_logit", r.mean_logit),
        ("max_logit", r.max_logit),
        ("w_g", r.w_g_norm),
        ("mu_g", r.mu_g_norm),
        ("cos", r.cos_wg_mug),
        ("norm", r.last_layer_norm),
        ("grad_norm", r.grad_norm.unwrap_or(f64::NAN)),
        ("eff_lr", r.eff_lr_median.unwrap_or(f64::NAN)),
    ]
}

fn train(config: &TrainConfig, name: &str) -> RunResult {
    run(config, &RunDir::create(&temp(name)).unwrap(), &quiet()).unwrap()
}

#[test]
fn chunked_full_batch_steps_equal_unchunked_ones() {
    for kind in [ModelKind::Mlp, ModelKind::Vgg11, ModelKind::Vit] {
        let mut whole = tiny(kind, 3);
        // Adam with a large epsilon is nearly gradient descent, so a gradient that differs only
        // in summation order gives the same step (with eps 1e-8, entries whose gradient is
        // rounding noise would be normalized to +-lr and differ).
        whole.eps = 1.0;
        whole.lr = 0.5;
        let mut chunked = whole.clone();
        // 10 rows in chunks of 3, 3, 3 and 1.
        chunked.grad_chunk = Some(3);
        let a = train(&whole, &format!("whole-{}", kind.name()));
        let b = train(&chunked, &format!("chunked-{}", kind.name()));
        assert_eq!(a.rows.len(), 3);
        assert_eq!(b.rows.len(), 3);
        for (ra, rb) in a.rows.iter().zip(&b.rows) {
            for ((name, x), (_, y)) in values(ra).into_iter().zip(values(rb)) {
                let tolerance = 1e-5 * x.abs().max(1e-3);
                assert!(
                    (x - y).abs() <= tolerance || (x.is_nan() && y.is_nan()),
                    "{} step {}: {name} unchunked {x} vs chunked {y}",
                    kind.name(),
                    ra.step
                );
            }
        }
        // The steps really moved the model.
        assert_ne!(a.rows[0].loss, a.rows[2].loss, "{}", kind.name());
    }
}

#[test]
fn a_minibatch_image_run_with_batch_norm_resumes_bit_for_bit() {
    let mut config = tiny(ModelKind::Vgg11Bn, 6);
    config.batch = BatchSize::Rows(4);
    config.log_every = 2;
    let options = RunOptions {
        checkpoint_every: Some(2),
        ..quiet()
    };
    let whole_dir = RunDir::create(&temp("bn-whole")).unwrap();
    let whole = run(&config, &whole_dir, &options).unwrap();
    let dir = RunDir::create(&temp("bn-killed")).unwrap();
    run(
        &config,
        &dir,
        &RunOptions {
            stop_after: Some(3),
            ..options.clone()
        },
    )
    .unwrap();
    let resumed = run(
        &config,
        &dir,
        &RunOptions {
            resume: true,
            ..options
        },
    )
    .unwrap();
    assert_eq!(numbers(&resumed.rows), numbers(&whole.rows));
    // The files too: metrics.csv and summary.json equal the uninterrupted run's but the clock.
    common::same_files(whole_dir.root(), dir.root());
    assert_eq!(whole.summary.model, "vgg11-bn");
    assert_eq!(whole.summary.dataset.as_deref(), Some("synthetic"));
    let text = std::fs::read_to_string(dir.summary()).unwrap();
    assert!(text.contains("\"dataset\": \"synthetic\""), "{text}");
}

#[test]
fn the_paper_networks_have_the_papers_sizes() {
    let device = Default::default();
    // Under the harness's initialization lock: other tests train in parallel threads, and
    // burn's generator is global.
    let count = |kind: ModelKind| {
        init_model::<B>(
            &ModelConfig::paper_image(kind),
            InputSpec::Images,
            10,
            0,
            &device,
        )
        .num_params()
    };
    use burn::module::Module;
    // 3072 -> 512, four 512 -> 512, 512 -> 10, with biases.
    assert_eq!(count(ModelKind::Mlp), 2_629_130);
    // burn counts BatchNorm's running mean and variance too: 2 x 2,752 (VGG11) and 2 x 4,800
    // (ResNet18) channels on top of PyTorch's parameter counts.
    // The CIFAR VGG11 with one linear classifier (PyTorch: 9,225,610; 9,231,114 with BatchNorm).
    assert_eq!(count(ModelKind::Vgg11), 9_225_610);
    assert_eq!(count(ModelKind::Vgg11Bn), 9_231_114 + 2 * 2_752);
    // The CIFAR ResNet18 (3x3 stem, no max-pool; PyTorch: 11,173,962).
    assert_eq!(count(ModelKind::Resnet18), 11_173_962 + 2 * 4_800);
    // App. D.2's "about 10M": 12 blocks of width 256 with 64 patch tokens.
    assert_eq!(count(ModelKind::Vit), 9_509_130);
}

#[test]
fn image_networks_give_features_of_their_width() {
    let device = Default::default();
    // Synthetic images rather than `Tensor::random`, which would draw from burn's global
    // generator while other tests initialize their models from it.
    let images = slingshot_experiments::cifar::synthetic(2, 1, 0);
    let split = slingshot_experiments::batches::Split::<B>::images(&images.train, &device);
    for (kind, width) in [
        (ModelKind::Mlp, 16),
        (ModelKind::Vgg11, 8),
        (ModelKind::Vgg11Bn, 8),
        (ModelKind::Resnet18, 8),
        (ModelKind::Vit, 8),
    ] {
        let config = tiny(kind, 1).model;
        let model = init_model::<B>(&config, InputSpec::Images, 10, 0, &device);
        let out = model.forward(split.inputs.clone());
        assert_eq!(out.features.dims(), [2, width], "{}", kind.name());
        assert_eq!(out.logits.dims(), [2, 10], "{}", kind.name());
        assert!(
            out.logits.into_data().iter::<f32>().all(f32::is_finite),
            "{}",
            kind.name()
        );
    }
}

#[test]
fn image_configurations_are_checked() {
    let mut c = tiny(ModelKind::Transformer, 1);
    assert!(
        c.validate()
            .unwrap_err()
            .to_string()
            .contains("cannot train on images")
    );
    c = tiny(ModelKind::Vit, 1);
    if let NetworkConfig::Vit(v) = &mut c.model.network {
        v.patch = 5;
    }
    assert!(c.validate().unwrap_err().to_string().contains("divides 32"));
    c = tiny(ModelKind::Mlp, 1);
    c.grad_chunk = Some(0);
    assert!(c.validate().unwrap_err().to_string().contains("grad-chunk"));
    c = tiny(ModelKind::Mlp, 1);
    c.images_mut().unwrap().data_dir = Some(temp("no-such-dir"));
    assert!(
        c.validate()
            .unwrap_err()
            .to_string()
            .contains("not a directory")
    );
    c = tiny(ModelKind::Resnet18, 1);
    c.sharpness_every = Some(1);
    assert!(c.validate().unwrap_err().to_string().contains("BatchNorm"));
    let mut modular = TrainConfig::demo();
    modular.model.network = NetworkConfig::paper(ModelKind::Vgg11);
    assert!(
        modular
            .validate()
            .unwrap_err()
            .to_string()
            .contains("modular")
    );
}
