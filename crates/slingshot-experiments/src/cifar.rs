//! CIFAR-10 for the image experiments (issue 6): the standard binary distribution read from a
//! directory, or a seeded synthetic stand-in with the same shapes, so that every command and
//! test runs offline. Nothing is downloaded.
//!
//! The binary format: each of `data_batch_1.bin` .. `data_batch_5.bin` and `test_batch.bin`
//! holds records of 1 label byte (0-9) and 3,072 pixel bytes (1,024 red, then green, then blue,
//! row-major 32 x 32). The standard files hold 10,000 records each; any whole number of records
//! is accepted, so that tests can write small files.

use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::ExperimentError;

/// Bytes of one image: 3 channels x 32 x 32.
pub const IMAGE_BYTES: usize = 3 * 32 * 32;
/// Bytes of one record: the label and the image.
pub const RECORD_BYTES: usize = 1 + IMAGE_BYTES;
/// The classes.
pub const CLASSES: usize = 10;
/// The training files, in order.
pub const TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
/// The test file.
pub const TEST_FILE: &str = "test_batch.bin";
/// App. D.2's test set size.
pub const PAPER_TEST_SIZE: usize = 1000;

/// Images with their labels, pixels scaled to `[0, 1]` as torchvision's `ToTensor` does, in
/// channel-major `[n, 3, 32, 32]` order.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSplit {
    /// `n * 3072` pixels.
    pub pixels: Vec<f32>,
    /// `n` labels in `0..10`.
    pub labels: Vec<u8>,
}

impl ImageSplit {
    /// The number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there is no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The images at `indices`, in that order.
    fn select(&self, indices: &[usize]) -> Self {
        let mut pixels = Vec::with_capacity(indices.len() * IMAGE_BYTES);
        for &i in indices {
            pixels.extend_from_slice(&self.pixels[i * IMAGE_BYTES..(i + 1) * IMAGE_BYTES]);
        }
        Self {
            pixels,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        }
    }
}

/// Where the images came from; `summary.json` says it as `dataset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetSource {
    /// The CIFAR-10 binary files.
    Cifar10,
    /// The seeded synthetic stand-in ([`synthetic`]).
    Synthetic,
}

impl DatasetSource {
    /// `cifar10` or `synthetic`.
    pub fn name(self) -> &'static str {
        match self {
            DatasetSource::Cifar10 => "cifar10",
            DatasetSource::Synthetic => "synthetic",
        }
    }
}

/// A training and a test split.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageDataset {
    /// The source.
    pub source: DatasetSource,
    /// Training images.
    pub train: ImageSplit,
    /// Test images.
    pub test: ImageSplit,
}

/// The error of a file whose length is not a whole, positive number of records.
fn check_length(path: &Path, len: u64) -> Result<usize, ExperimentError> {
    let record = RECORD_BYTES as u64;
    if len == 0 || !len.is_multiple_of(record) {
        return Err(ExperimentError::Dataset {
            path: path.to_path_buf(),
            reason: format!(
                "{len} bytes is not a whole number of {RECORD_BYTES}-byte records (truncated or not a CIFAR-10 binary file)"
            ),
        });
    }
    Ok((len / record) as usize)
}

/// Checks, without reading them, that the six files of the distribution are in `dir` with
/// whole numbers of records and that they hold at least `train_size` training and
/// `test_size` test images: what a run can know before it starts (labels are checked as the
/// files are read).
pub fn check_distribution(
    dir: &Path,
    train_size: usize,
    test_size: usize,
) -> Result<(), ExperimentError> {
    let records = |name: &str| {
        let path = dir.join(name);
        let meta = std::fs::metadata(&path).map_err(|e| ExperimentError::Dataset {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        check_length(&path, meta.len())
    };
    let mut train = 0;
    for name in TRAIN_FILES {
        train += records(name)?;
    }
    let test = records(TEST_FILE)?;
    for (size, have, name) in [
        (train_size, train, TRAIN_FILES[0]),
        (test_size, test, TEST_FILE),
    ] {
        if size > have {
            return Err(ExperimentError::Dataset {
                path: dir.join(name),
                reason: format!("asked for {size} images, the files hold {have}"),
            });
        }
    }
    Ok(())
}

/// Reads every record of one file, checking its size and labels.
pub fn read_batch_file(path: &Path) -> Result<ImageSplit, ExperimentError> {
    let bad = |reason: String| ExperimentError::Dataset {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    check_length(path, bytes.len() as u64)?;
    let n = bytes.len() / RECORD_BYTES;
    let mut split = ImageSplit {
        pixels: Vec::with_capacity(n * IMAGE_BYTES),
        labels: Vec::with_capacity(n),
    };
    for (i, record) in bytes.chunks_exact(RECORD_BYTES).enumerate() {
        let label = record[0];
        if usize::from(label) >= CLASSES {
            return Err(bad(format!(
                "record {i} has label {label}; CIFAR-10 labels are 0-9"
            )));
        }
        split.labels.push(label);
        split
            .pixels
            .extend(record[1..].iter().map(|&p| f32::from(p) / 255.0));
    }
    Ok(split)
}

/// Reads the distribution in `dir`: a seeded subset of `train_size` training images (all of
/// them with `None`) and of `test_size` test images.
pub fn load_cifar10(
    dir: &Path,
    train_size: Option<usize>,
    test_size: usize,
    seed: u64,
) -> Result<ImageDataset, ExperimentError> {
    let mut train = ImageSplit {
        pixels: Vec::new(),
        labels: Vec::new(),
    };
    for name in TRAIN_FILES {
        let part = read_batch_file(&dir.join(name))?;
        train.pixels.extend(part.pixels);
        train.labels.extend(part.labels);
    }
    let test = read_batch_file(&dir.join(TEST_FILE))?;
    let train = subset(train, train_size, seed, &dir.join(TRAIN_FILES[0]))?;
    let test = subset(test, Some(test_size), seed ^ 0x7e57, &dir.join(TEST_FILE))?;
    Ok(ImageDataset {
        source: DatasetSource::Cifar10,
        train,
        test,
    })
}

/// The images of `task`: a seeded subset of the files in its `data_dir`, or the synthetic
/// stand-in without one.
pub fn load(task: &crate::config::ImageTask, seed: u64) -> Result<ImageDataset, ExperimentError> {
    match &task.data_dir {
        Some(dir) => load_cifar10(dir, Some(task.train_size), task.test_size, seed),
        None => Ok(synthetic(task.train_size, task.test_size, seed)),
    }
}

/// A seeded choice of `size` images (every image, in file order, with `None`).
fn subset(
    split: ImageSplit,
    size: Option<usize>,
    seed: u64,
    path: &Path,
) -> Result<ImageSplit, ExperimentError> {
    let Some(size) = size else {
        return Ok(split);
    };
    if size == 0 || size > split.len() {
        return Err(ExperimentError::Dataset {
            path: PathBuf::from(path),
            reason: format!("asked for {size} images, the files hold {}", split.len()),
        });
    }
    if size == split.len() {
        return Ok(split);
    }
    let mut order: Vec<usize> = (0..split.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    order.truncate(size);
    Ok(split.select(&order))
}

/// The offline stand-in: `train_size` and `test_size` images of the same shape, ten classes
/// with balanced labels. Each class has its own smooth template (a colour and a low-frequency
/// pattern); an image is its class template plus independent pixel noise, clamped to `[0, 1]`.
/// It is learnable like CIFAR-10 is, not a copy of it.
pub fn synthetic(train_size: usize, test_size: usize, seed: u64) -> ImageDataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let templates: Vec<Vec<f32>> = (0..CLASSES)
        .map(|_| {
            let colour: [f32; 3] = [rng.random(), rng.random(), rng.random()];
            let (fx, fy, phase) = (
                rng.random_range(1.0f32..4.0),
                rng.random_range(1.0f32..4.0),
                rng.random_range(0.0f32..std::f32::consts::TAU),
            );
            (0..IMAGE_BYTES)
                .map(|i| {
                    let (c, y, x) = (i / 1024, (i / 32) % 32, i % 32);
                    let wave = ((fx * x as f32 + fy * y as f32) / 32.0 * std::f32::consts::TAU
                        + phase)
                        .sin();
                    0.5 * colour[c] + 0.25 + 0.2 * wave
                })
                .collect()
        })
        .collect();
    let mut make = |n: usize| {
        let mut split = ImageSplit {
            pixels: Vec::with_capacity(n * IMAGE_BYTES),
            labels: Vec::with_capacity(n),
        };
        for i in 0..n {
            let label = i % CLASSES;
            split.labels.push(label as u8);
            split.pixels.extend(
                templates[label]
                    .iter()
                    .map(|t| (t + rng.random_range(-0.25f32..0.25)).clamp(0.0, 1.0)),
            );
        }
        split
    };
    let train = make(train_size);
    let test = make(test_size);
    ImageDataset {
        source: DatasetSource::Synthetic,
        train,
        test,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `labels.len()` records in the binary format; pixel `j` of record `i` is
    /// `(i + j) % 256`.
    fn write_records(path: &Path, labels: &[u8]) {
        let mut bytes = Vec::new();
        for (i, &label) in labels.iter().enumerate() {
            bytes.push(label);
            bytes.extend((0..IMAGE_BYTES).map(|j| ((i + j) % 256) as u8));
        }
        std::fs::write(path, bytes).unwrap();
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("slingshot-cifar-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn write_distribution(dir: &Path) {
        for (f, name) in TRAIN_FILES.iter().enumerate() {
            let labels: Vec<u8> = (0..4).map(|i| ((f * 4 + i) % CLASSES) as u8).collect();
            write_records(&dir.join(name), &labels);
        }
        write_records(&dir.join(TEST_FILE), &[9, 8, 7]);
    }

    #[test]
    fn reads_the_binary_format_and_scales_like_to_tensor() {
        let dir = temp_dir("ok");
        write_distribution(&dir);
        let data = load_cifar10(&dir, None, 3, 0).unwrap();
        assert_eq!(data.source.name(), "cifar10");
        assert_eq!(data.train.len(), 20);
        assert_eq!(data.train.pixels.len(), 20 * IMAGE_BYTES);
        assert_eq!(&data.train.labels[..5], &[0, 1, 2, 3, 4]);
        // Record 1 of data_batch_1: pixel j is (1 + j) % 256, scaled by 1/255.
        assert_eq!(data.train.pixels[IMAGE_BYTES], 1.0 / 255.0);
        assert_eq!(data.train.pixels[IMAGE_BYTES + 254], 1.0);
        assert_eq!(data.train.pixels[IMAGE_BYTES + 255], 0.0);
        assert_eq!(data.test.labels, vec![9, 8, 7]);
        // A seeded subset: the same seed gives the same images.
        let a = load_cifar10(&dir, Some(7), 2, 5).unwrap();
        let b = load_cifar10(&dir, Some(7), 2, 5).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.train.len(), 7);
        assert_eq!(a.test.len(), 2);
        let err = load_cifar10(&dir, Some(21), 2, 5).unwrap_err().to_string();
        assert!(
            err.contains("data_batch_1.bin") && err.contains("21"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn truncated_files_and_bad_labels_name_the_file() {
        let dir = temp_dir("bad");
        write_distribution(&dir);
        let path = dir.join("data_batch_3.bin");
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
        let err = load_cifar10(&dir, None, 3, 0).unwrap_err().to_string();
        assert!(
            err.contains("data_batch_3.bin") && err.contains("truncated"),
            "{err}"
        );

        write_distribution(&dir);
        write_records(&dir.join(TEST_FILE), &[1, 10]);
        let err = load_cifar10(&dir, None, 2, 0).unwrap_err().to_string();
        assert!(
            err.contains("test_batch.bin") && err.contains("record 1 has label 10"),
            "{err}"
        );

        std::fs::remove_file(dir.join("data_batch_5.bin")).unwrap();
        let err = load_cifar10(&dir, None, 2, 0).unwrap_err().to_string();
        assert!(err.contains("data_batch_5.bin"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_distribution_is_checked_before_reading() {
        let dir = temp_dir("check");
        write_distribution(&dir);
        let (train, test) = (
            load_cifar10(&dir, None, 1, 0).unwrap().train.len(),
            read_batch_file(&dir.join(TEST_FILE)).unwrap().len(),
        );
        check_distribution(&dir, train, test).unwrap();
        let err = check_distribution(&dir, train + 1, 1)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("asked for {} images", train + 1)),
            "{err}"
        );
        let path = dir.join("data_batch_2.bin");
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        let err = check_distribution(&dir, 1, 1).unwrap_err().to_string();
        assert!(
            err.contains("data_batch_2.bin") && err.contains("truncated"),
            "{err}"
        );
        // Whole files again, but no test file.
        write_distribution(&dir);
        std::fs::remove_file(dir.join(TEST_FILE)).unwrap();
        let err = check_distribution(&dir, 1, 1).unwrap_err().to_string();
        assert!(err.contains("test_batch.bin"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_synthetic_stand_in_has_cifar_shapes_balanced_labels_and_a_seed() {
        let a = synthetic(50, 20, 3);
        assert_eq!(a.source.name(), "synthetic");
        assert_eq!(a.train.pixels.len(), 50 * IMAGE_BYTES);
        assert_eq!(a.test.len(), 20);
        for c in 0..CLASSES as u8 {
            assert_eq!(a.train.labels.iter().filter(|&&l| l == c).count(), 5);
        }
        assert!(a.train.pixels.iter().all(|p| (0.0..=1.0).contains(p)));
        assert_eq!(a, synthetic(50, 20, 3));
        assert_ne!(a, synthetic(50, 20, 4));
        // Learnable: each test image is nearer its own class template (the class mean of the
        // training images) than any other.
        let mean = |c: u8| -> Vec<f32> {
            let idx: Vec<usize> = (0..50).filter(|&i| a.train.labels[i] == c).collect();
            (0..IMAGE_BYTES)
                .map(|j| {
                    idx.iter()
                        .map(|&i| a.train.pixels[i * IMAGE_BYTES + j])
                        .sum::<f32>()
                        / idx.len() as f32
                })
                .collect()
        };
        let means: Vec<Vec<f32>> = (0..CLASSES as u8).map(mean).collect();
        for i in 0..a.test.len() {
            let x = &a.test.pixels[i * IMAGE_BYTES..(i + 1) * IMAGE_BYTES];
            let nearest = (0..CLASSES)
                .min_by(|&p, &q| {
                    let d =
                        |m: &Vec<f32>| x.iter().zip(m).map(|(a, b)| (a - b).powi(2)).sum::<f32>();
                    d(&means[p]).total_cmp(&d(&means[q]))
                })
                .unwrap();
            assert_eq!(nearest, usize::from(a.test.labels[i]), "test image {i}");
        }
    }
}
