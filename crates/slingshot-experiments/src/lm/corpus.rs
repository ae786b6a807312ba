//! The training text: a UTF-8 file, a directory of them, or the built-in default.
//!
//! The default is the text of the two licence files that ship at the root of this
//! repository, `LICENSE-APACHE` (the Apache License 2.0, whose text may be copied verbatim)
//! and `LICENSE-MIT`, compiled into the binary so that the default run works offline and from
//! any directory. Legal text is full of fixed phrases ("the License", "Licensor"): the kind of
//! highly predictable context §4.3 finds in softmax collapse.

use std::path::{Path, PathBuf};

use crate::error::ExperimentError;

/// The built-in corpus's documents.
const DEFAULT_DOCUMENTS: [(&str, &str); 2] = [
    ("LICENSE-APACHE", include_str!("../../../../LICENSE-APACHE")),
    ("LICENSE-MIT", include_str!("../../../../LICENSE-MIT")),
];

/// Documents of text, in a fixed order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corpus {
    /// Where the text came from, for `summary.json`.
    pub source: String,
    /// The documents (files), each non-empty.
    pub documents: Vec<String>,
}

impl Corpus {
    /// The built-in default (see the module docs).
    pub fn builtin() -> Self {
        Self {
            source: "built-in: the repository's LICENSE-APACHE and LICENSE-MIT".into(),
            documents: DEFAULT_DOCUMENTS
                .iter()
                .map(|(_, text)| (*text).to_string())
                .collect(),
        }
    }

    /// `path` when given (a UTF-8 file, or a directory whose regular, non-hidden files are all
    /// UTF-8, read in name order), else [`Corpus::builtin`]. Empty files are skipped; a corpus
    /// with no text at all is an error.
    pub fn load(path: Option<&Path>) -> Result<Self, ExperimentError> {
        let Some(path) = path else {
            return Ok(Self::builtin());
        };
        let err = |p: &Path, reason: String| ExperimentError::Dataset {
            path: p.to_path_buf(),
            reason,
        };
        let files: Vec<PathBuf> = if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| err(path, format!("cannot list the directory: {e}")))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && !p
                            .file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                })
                .collect();
            files.sort();
            files
        } else {
            vec![path.to_path_buf()]
        };
        let mut documents = Vec::new();
        for file in &files {
            let bytes = std::fs::read(file).map_err(|e| err(file, format!("unreadable: {e}")))?;
            let text = String::from_utf8(bytes).map_err(|e| {
                err(
                    file,
                    format!(
                        "not UTF-8 text (invalid byte at offset {})",
                        e.utf8_error().valid_up_to()
                    ),
                )
            })?;
            if !text.is_empty() {
                documents.push(text);
            }
        }
        if documents.is_empty() {
            return Err(err(path, "the corpus has no text".into()));
        }
        Ok(Self {
            source: path.display().to_string(),
            documents,
        })
    }

    /// Bytes of text in all documents.
    pub fn bytes(&self) -> usize {
        self.documents.iter().map(String::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("slingshot-lm-corpus-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_builtin_corpus_is_the_licence_text() {
        let c = Corpus::load(None).unwrap();
        assert_eq!(c.documents.len(), 2);
        assert!(c.documents[0].contains("Apache License"));
        assert!(c.bytes() > 10_000);
    }

    #[test]
    fn a_directory_is_read_in_name_order_and_bad_files_are_named() {
        let dir = temp("dir");
        std::fs::write(dir.join("b.txt"), "second").unwrap();
        std::fs::write(dir.join("a.txt"), "first").unwrap();
        std::fs::write(dir.join(".hidden"), "skipped").unwrap();
        let c = Corpus::load(Some(&dir)).unwrap();
        assert_eq!(c.documents, ["first", "second"]);

        std::fs::write(dir.join("c.bin"), [0xff, 0xfe]).unwrap();
        let e = Corpus::load(Some(&dir)).unwrap_err().to_string();
        assert!(e.contains("c.bin") && e.contains("UTF-8"), "{e}");

        let empty = temp("empty");
        std::fs::write(empty.join("e.txt"), "").unwrap();
        let e = Corpus::load(Some(&empty)).unwrap_err().to_string();
        assert!(e.contains("no text"), "{e}");

        let e = Corpus::load(Some(&dir.join("missing.txt")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unreadable"), "{e}");
    }
}
