//! The collapse warning, the headless renderer, reading burn-train's logs back, and the
//! atomic checkpoint files.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use burn::data::dataloader::Progress;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig, LinearRecord};
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, Recorder};
use burn_flex::Flex;
use burn_train::logger::MetricLogger;
use burn_train::metric::store::{EpochSummary, MetricsUpdate, Split};
use burn_train::metric::{
    Metric, MetricAttributes, MetricDefinition, MetricEntry, MetricId, MetricMetadata,
    NumericEntry, SerializedEntry,
};
use burn_train::renderer::{
    MetricState, MetricsRenderer, MetricsRendererTraining, TrainingProgress,
};
use slingshot_loss::CollapseSummary;
use slingshot_train::{
    AtomicFileRecorder, CollapseInput, CollapseWarning, MetricLinesRenderer, ResumedMetricLogger,
    TrainError, latest_checkpoint, metric_log_path, read_numeric_log,
};

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("slingshot-train-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn input(collapsed_fraction: f64) -> CollapseInput {
    CollapseInput {
        rows: 10,
        summary: CollapseSummary {
            collapsed_fraction,
            zero_loss_fraction: 0.0,
            mean_residual_mass: 0.0,
            max_residual_mass: 0.0,
            min_margin: 0.0,
            mean_margin: 0.0,
            mean_log_sum_exp: 0.0,
            mean_logit: 0.0,
        },
        threshold: 16.6,
    }
}

fn metadata(iteration: usize) -> MetricMetadata {
    MetricMetadata {
        progress: Progress::new(iteration, 10),
        global_progress: Progress::new(2, 3),
        iteration: Some(iteration),
        lr: None,
    }
}

#[test]
fn the_warning_fires_at_each_crossing_and_logs_a_flag_per_batch() {
    let mut warning = CollapseWarning::try_new(0.1).unwrap();
    let lines: Vec<SerializedEntry> = [0.0, 0.5, 0.6, 0.0, 0.2]
        .iter()
        .enumerate()
        .map(|(i, &f)| warning.update(&input(f), &metadata(i + 1)))
        .collect();
    let flags: Vec<&str> = lines.iter().map(|l| l.serialized.as_str()).collect();
    assert_eq!(flags, ["0,0", "0.5,1", "0.6,1", "0,0", "0.2,1"]);
    assert_eq!(warning.crossings(), 2);
    assert!(lines[0].formatted.starts_with("no softmax collapse"));
    assert_eq!(
        lines[1].formatted,
        "SOFTMAX COLLAPSE: 50.00% of rows collapsed (threshold 10.00%) at epoch 2 iteration 2"
    );
    // The message stays until the next crossing.
    assert_eq!(lines[3].formatted, lines[2].formatted);
    assert!(lines[4].formatted.contains("iteration 5"));
}

#[test]
fn a_threshold_outside_0_1_is_refused() {
    for bad in [0.0, -0.5, 1.5, f64::NAN] {
        let err = CollapseWarning::try_new(bad).err().unwrap();
        assert!(matches!(err, TrainError::InvalidThreshold(_)), "{bad}");
    }
    assert!(CollapseWarning::try_new(1.0).is_ok());
}

/// A writer the test reads after the renderer is done with it.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn define(renderer: &mut MetricLinesRenderer, name: &str) -> MetricId {
    let id = MetricId::new(Arc::new(name.to_string()));
    renderer.register_metric(MetricDefinition {
        metric_id: id.clone(),
        name: name.into(),
        description: None,
        attributes: MetricAttributes::None,
    });
    id
}

fn entry(id: &MetricId, text: &str) -> MetricEntry {
    MetricEntry {
        metric_id: id.clone(),
        serialized_entry: SerializedEntry::new(text.into(), text.into()),
    }
}

fn progress(iteration: usize) -> TrainingProgress {
    TrainingProgress {
        progress: Some(Progress::new(iteration, 4)),
        global_progress: Progress::new(1, 2),
        iteration: Some(iteration),
    }
}

#[test]
fn the_renderer_prints_values_every_n_iterations_and_each_new_warning() {
    let out = Shared::default();
    let mut renderer = MetricLinesRenderer::with_writer(2, Box::new(out.clone())).unwrap();
    let loss = define(&mut renderer, "Loss");
    let collapsed = define(&mut renderer, "Collapsed Fraction");
    let warning = define(&mut renderer, "Collapse Warning");
    for (i, (l, c, w)) in [
        (0.5, 0.0, "none"),
        (2e-7, 0.25, "COLLAPSE"),
        (1e-7, 0.5, "COLLAPSE"),
    ]
    .into_iter()
    .enumerate()
    {
        renderer.update_train(MetricState::Numeric(
            entry(&loss, ""),
            NumericEntry::Value(l),
        ));
        renderer.update_train(MetricState::Numeric(
            entry(&collapsed, ""),
            NumericEntry::Value(c),
        ));
        renderer.update_train(MetricState::Generic(entry(&warning, w)));
        renderer.render_train(progress(i + 1), Vec::new());
    }
    renderer.manual_close();
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "Collapse Warning: none",
            "Collapse Warning: COLLAPSE",
            "train epoch 1 iteration 2 | Collapsed Fraction 0.2500 | Loss 2.000e-7",
        ]
    );
}

#[test]
fn an_epoch_shorter_than_the_interval_prints_its_last_iteration() {
    let out = Shared::default();
    let mut renderer = MetricLinesRenderer::with_writer(10, Box::new(out.clone())).unwrap();
    let loss = define(&mut renderer, "Loss");
    for i in 1..=4 {
        let value = NumericEntry::Value(i as f64);
        renderer.update_train(MetricState::Numeric(entry(&loss, ""), value));
        renderer.render_train(progress(i), Vec::new());
    }
    renderer.on_train_end(None).unwrap();
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    assert_eq!(text, "train epoch 1 iteration 4 | Loss 4.0000\n");
}

/// Records the epochs a logger is asked to write and read.
#[derive(Default)]
struct EpochRecorder {
    logged: Vec<usize>,
    read: Vec<usize>,
}

impl MetricLogger for EpochRecorder {
    fn log(&mut self, _: MetricsUpdate, epoch: usize, _: &Split) {
        self.logged.push(epoch);
    }

    fn read_numeric(
        &mut self,
        _: &str,
        epoch: usize,
        _: &Split,
    ) -> Result<Vec<NumericEntry>, String> {
        self.read.push(epoch);
        Ok(Vec::new())
    }

    fn log_metric_definition(&mut self, _: MetricDefinition) {}

    fn log_epoch_summary(&mut self, _: EpochSummary) {}
}

#[test]
fn a_resumed_logger_writes_the_first_epoch_under_its_own_number() {
    let mut logger = ResumedMetricLogger::new(EpochRecorder::default(), 3);
    // burn-train 0.21 numbers the epochs after `.checkpoint(2)` 1, 4, 5.
    for epoch in [1, 4, 5] {
        logger.log(
            MetricsUpdate::new(Vec::new(), Vec::new()),
            epoch,
            &Split::Train,
        );
    }
    logger.read_numeric("Loss", 2, &Split::Valid).unwrap();
    let inner = logger.into_inner();
    assert_eq!(inner.logged, [3, 4, 5]);
    assert_eq!(inner.read, [2], "reads name epochs on disk");
}

#[test]
fn numeric_logs_read_back_with_their_batch_sizes() {
    let dir = temp("logs");
    let path = metric_log_path(&dir, "train", 3, "Collapsed Fraction");
    assert_eq!(
        path,
        dir.join("train")
            .join("epoch-3")
            .join("Collapsed_Fraction.log")
    );
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "0.5,4\n0.25,2\n1e-7\n").unwrap();
    assert_eq!(
        read_numeric_log(&path).unwrap(),
        [(0.5, 4), (0.25, 2), (1e-7, 1)]
    );
    // A kill cut the last line short ("0.2" of "0.25,2"): it is not a value.
    std::fs::write(&path, "0.5,4\n0.2").unwrap();
    assert_eq!(read_numeric_log(&path).unwrap(), [(0.5, 4)]);
    std::fs::write(&path, "0.5,4\nnot a number,1\n").unwrap();
    let err = read_numeric_log(&path).err().unwrap().to_string();
    assert!(err.contains("line 2"), "{err}");
}

type Inner = NamedMpkFileRecorder<FullPrecisionSettings>;

#[test]
fn an_atomic_record_lands_whole_under_the_usual_name() {
    let dir = temp("atomic");
    let device = Default::default();
    let linear = LinearConfig::new(3, 2).init::<Flex>(&device);
    // Parameters initialize lazily, each clone on its own: fix the values first.
    let expected = linear.weight.val().into_data();
    let recorder = AtomicFileRecorder::new(Inner::new());
    recorder
        .record(linear.clone().into_record(), dir.join("model-1"))
        .unwrap();
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["model-1.mpk"], "no partial file is left");
    let record: LinearRecord<Flex> = recorder.load(dir.join("model-1"), &device).unwrap();
    let loaded: Linear<Flex> = linear.clone().load_record(record);
    assert_eq!(loaded.weight.val().into_data(), expected);
    // The plain recorder reads it too: the same format.
    let plain: LinearRecord<Flex> = Inner::new().load(dir.join("model-1"), &device).unwrap();
    assert_eq!(plain.weight.val().into_data(), expected);
}

#[test]
fn the_latest_checkpoint_is_the_latest_complete_one() {
    let dir = temp("latest");
    let checkpoints = dir.join("checkpoint");
    std::fs::create_dir_all(&checkpoints).unwrap();
    assert_eq!(latest_checkpoint(&dir, "mpk"), None);
    for name in [
        "model-1.mpk",
        "optim-1.mpk",
        "scheduler-1.mpk",
        "model-2.mpk",
        "optim-2.mpk",
        ".partial-scheduler-2.mpk",
    ] {
        std::fs::write(checkpoints.join(name), b"x").unwrap();
    }
    assert_eq!(latest_checkpoint(&dir, "mpk"), Some(1));
    std::fs::write(checkpoints.join("scheduler-2.mpk"), b"x").unwrap();
    assert_eq!(latest_checkpoint(&dir, "mpk"), Some(2));
}

#[test]
fn a_zero_line_interval_is_refused() {
    let err = MetricLinesRenderer::with_writer(0, Box::new(Shared::default()))
        .err()
        .unwrap();
    assert!(matches!(err, TrainError::Zero { .. }), "{err}");
}
