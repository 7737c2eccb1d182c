//! mappings/*.toml → [`MappingSet`](super::MappingSet), every problem at once.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::MappingSet;
use crate::config::Problems;

#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("reading {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Problems),
}

/// Reads every `*.toml` below `dir` (recursively, sorted by path). File names in origins
/// and problems are shown relative to `base_dir` (the config file's folder).
pub fn load_dir(
    dir: &Path,
    base_dir: &Path,
    known_workspaces: &[String],
    now: DateTime<Utc>,
) -> Result<MappingSet, MappingError> {
    let _ = (dir, base_dir, known_workspaces, now);
    todo!("mapping loading")
}

/// Parses mapping files given as `(display name, text)`, in the order given.
pub fn parse_files(
    files: &[(String, String)],
    known_workspaces: &[String],
    now: DateTime<Utc>,
) -> Result<MappingSet, MappingError> {
    let _ = (files, known_workspaces, now);
    todo!("mapping parsing")
}
