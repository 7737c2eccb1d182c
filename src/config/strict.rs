//! A span-keeping reader over TOML (`toml::de::DeTable`) shared by `config` and `mapping`:
//! unknown keys with "did you mean", type errors, every problem collected, each with the
//! file, the 1-based line and the dotted key.

use std::fmt;

/// One problem in one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The file as the user should see it (relative to the config file's folder when
    /// possible).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<u32>,
    /// Dotted key path, e.g. `group[2].grant[1].role` (empty when the whole file is wrong).
    pub key: String,
    /// What is wrong and how to fix it.
    pub message: String,
    /// A near name, for "did you mean".
    pub hint: Option<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}", self.file, line)?,
            None => write!(f, "{}", self.file)?,
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " (did you mean `{h}`?)")?;
        }
        Ok(())
    }
}

/// Every problem found, in file order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}
