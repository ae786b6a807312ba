//! A lower bound on the memory a modular or image run needs, checked before training, so that
//! a configuration that cannot fit is refused with a message instead of aborting on an
//! allocation (`--p 4093` asked for 549 GB of one-hot inputs).

use super::{BackendKind, BatchSize, ModularTaskConfig, Precision, TaskConfig, TrainConfig};
use crate::model::{ModelKind, NetworkConfig};

/// What a run needs at least, in bytes, and the largest part of it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryEstimate {
    /// Bytes, a lower bound.
    pub bytes: u64,
    /// The biggest part, in words.
    pub largest: String,
}

/// The examples of the modular task: every pair `(a, b)` (`b != 0` for division).
pub fn modular_pairs(task: &ModularTaskConfig) -> u64 {
    crate::data::pair_count(task.p, task.op) as u64
}

/// Training rows: the modular task's share of the pairs, or the image subset.
pub fn train_rows(config: &TrainConfig) -> u64 {
    match &config.task {
        TaskConfig::Images(images) => images.train_size as u64,
        TaskConfig::Modular(m) => {
            crate::data::train_count(crate::data::pair_count(m.p, m.op), m.train_fraction) as u64
        }
    }
}

/// The inputs of every split on the device (and, for the MLP's one-hot rows, once on the
/// host while they are built), plus one batch's activations kept for the backward pass.
pub fn estimate(config: &TrainConfig) -> MemoryEstimate {
    let elem: u64 = if config.precision == Precision::F64 {
        8
    } else {
        4
    };
    let m = &config.model;
    let (rows, input_floats, host_floats) = match &config.task {
        TaskConfig::Images(images) => {
            let rows = (images.train_size + images.test_size) as u64;
            (rows, 3 * 32 * 32, 3 * 32 * 32)
        }
        TaskConfig::Modular(task) if m.kind() == ModelKind::Mlp => {
            let one_hot = 4 * (task.p as u64 + 2);
            (modular_pairs(task), one_hot, one_hot)
        }
        TaskConfig::Modular(task) => (modular_pairs(task), 4, 0),
    };
    let inputs = rows * input_floats * elem + rows * host_floats * 4;
    let batch = match config.batch {
        BatchSize::Full => train_rows(config),
        BatchSize::Rows(n) => n as u64,
    };
    let batch = config.grad_chunk.map_or(batch, |c| batch.min(c as u64));
    let hidden = match m.network {
        NetworkConfig::Mlp(mlp) => mlp.width * mlp.depth,
        NetworkConfig::Transformer(t) => 4 * t.d_model * t.layers,
        _ => 0,
    };
    let per_row = input_floats + hidden as u64 + config.classes() as u64;
    let activations = 3 * batch * per_row * elem;
    let largest = if inputs >= activations {
        format!("the inputs of {rows} examples, {input_floats} numbers each")
    } else {
        format!("the activations of a {batch}-row batch")
    };
    MemoryEstimate {
        bytes: inputs + activations,
        largest,
    }
}

/// The memory this machine has free now (`MemAvailable`), where it can be read.
pub fn available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Refuses a run on a CPU backend whose lower bound exceeds the free memory.
pub fn check(config: &TrainConfig) -> Result<(), String> {
    if !matches!(config.backend, BackendKind::Ndarray | BackendKind::Flex) {
        return Ok(());
    }
    let need = estimate(config);
    match available_bytes() {
        Some(free) if need.bytes > free => Err(format!(
            "this configuration needs at least {:.1} GB ({}), and {:.1} GB are free: use a smaller --p, --width or --batch",
            need.bytes as f64 / 1e9,
            need.largest,
            free as f64 / 1e9
        )),
        _ => Ok(()),
    }
}
