//! Reading a project file: TOML parse errors and validation errors alike point at
//! `file:line:column` with a one-line hint.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::{Project, schema::ProjectFile, validate};

/// One problem in a project file.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub hint: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: error: {}\n  hint: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message,
            self.hint
        )
    }
}

/// Why a project could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "cannot read project file {path}: {source}\n  hint: pass --project PATH, or run in a folder with a pipedeck.toml"
    )]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<ConfigError>),
}

/// Maps byte offsets in one source text to 1-based line and column.
pub(super) struct Locator<'a> {
    pub file: &'a Path,
    pub text: &'a str,
}

impl Locator<'_> {
    pub fn error(
        &self,
        span: Range<usize>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> ConfigError {
        let at = span.start.min(self.text.len());
        let before = &self.text[..at];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let column = before[line_start..].chars().count() + 1;
        ConfigError {
            file: self.file.to_path_buf(),
            line,
            column,
            message: message.into(),
            hint: hint.into(),
        }
    }
}

/// Reads and validates a project file.
pub fn load_project(path: &Path) -> Result<Project, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    parse_project(&abs, &text).map_err(|mut errs| {
        // Report the path as the operator gave it.
        for e in &mut errs {
            e.file = path.to_path_buf();
        }
        LoadError::Invalid(errs)
    })
}

/// Parses and validates project text; `path` names the file in errors and anchors
/// relative paths.
pub fn parse_project(path: &Path, text: &str) -> Result<Project, Vec<ConfigError>> {
    let loc = Locator { file: path, text };
    let file: ProjectFile = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let message = e.message().trim().to_string();
        let hint = if message.contains("unknown field") {
            "remove the key or fix its spelling; config.example.toml lists every key"
        } else if message.contains("duplicate key") {
            "names must be unique: rename or remove one of them"
        } else if message.contains("invalid type") {
            "change the value to the type named; config.example.toml shows each key's type"
        } else if message.contains("missing field") {
            "add the key named; config.example.toml shows an example"
        } else {
            "fix the TOML syntax at this point"
        };
        vec![loc.error(span, message, hint)]
    })?;
    validate::resolve(&loc, file)
}
