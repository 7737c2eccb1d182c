//! scimwatch.toml → [`Config`](super::Config).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Config, Problems};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Problems),
}

/// Loads the config from `path`, else `$SCIMWATCH_CONFIG`, else `./scimwatch.toml`, with
/// `SCIMWATCH__SECTION__KEY` overrides from the process environment.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    let _ = path;
    todo!("config loading")
}

/// Parses config text as if it were the file `file`; `env` stands for the process
/// environment (secret references and overrides are looked up in it).
pub fn load_str(
    text: &str,
    file: &Path,
    env: &BTreeMap<String, String>,
) -> Result<Config, ConfigError> {
    let _ = (text, file, env);
    todo!("config parsing")
}
