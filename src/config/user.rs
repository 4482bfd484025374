//! User settings (PC-4): the user config file, overridable by flags and environment.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The user config file's contents; every key optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// Where state, logs and workspaces live.
    pub data_dir: Option<PathBuf>,
    /// The name recorded as who triggered, approved or rejected.
    pub user: Option<String>,
    /// Draw with plain ASCII instead of box-drawing glyphs.
    pub ascii: Option<bool>,
    /// Key overrides: `"runs.cancel" = "C"` (scopes: global, runs, detail, approvals).
    #[serde(default)]
    pub keymap: std::collections::BTreeMap<String, String>,
}

/// Why the user config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum UserConfigError {
    /// The file is not valid TOML, or holds a key this version does not know;
    /// `line` is where (1-based).
    #[error(
        "{}:{line}: error: {}\n  hint: fix or remove the key; known keys: data_dir, user, ascii, keymap",
        path.display(),
        source.message().trim()
    )]
    Invalid {
        path: PathBuf,
        line: usize,
        source: toml::de::Error,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The platform's config dir entry for pipedeck (e.g. `~/.config/pipedeck/config.toml`).
pub fn user_config_path() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("PIPEDECK_CONFIG") {
        return Some(PathBuf::from(p));
    }
    directories::ProjectDirs::from("", "", "pipedeck").map(|d| d.config_dir().join("config.toml"))
}

impl UserConfig {
    /// Reads the user config file; a missing file is an empty config.
    pub fn load() -> Result<Self, UserConfigError> {
        let Some(path) = user_config_path() else {
            return Ok(Self::default());
        };
        Self::load_from(&path)
    }

    pub fn load_from(path: &Path) -> Result<Self, UserConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(UserConfigError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Parses the text of the user config file `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, UserConfigError> {
        toml::from_str(text).map_err(|source| {
            let at = source.span().map(|s| s.start).unwrap_or(0);
            let line = text.as_bytes()[..at.min(text.len())]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            UserConfigError::Invalid {
                path: path.to_path_buf(),
                line,
                source,
            }
        })
    }

    /// Data dir: flag, then `PIPEDECK_DATA_DIR`, then this file, then the platform default.
    pub fn data_dir(&self, flag: Option<&Path>) -> PathBuf {
        if let Some(p) = flag {
            return p.to_path_buf();
        }
        if let Some(p) = std::env::var_os("PIPEDECK_DATA_DIR") {
            return PathBuf::from(p);
        }
        if let Some(p) = &self.data_dir {
            return p.clone();
        }
        directories::ProjectDirs::from("", "", "pipedeck")
            .map(|d| d.data_dir().to_path_buf())
            .unwrap_or_else(|| PathBuf::from(".pipedeck"))
    }

    /// Identity: flag, then `PIPEDECK_USER`, then this file, then `$USER` (or
    /// `$LOGNAME`), then the name of the account pipedeck runs as (containers and
    /// `sudo -i` shells often set neither variable).
    pub fn identity(&self, flag: Option<&str>) -> String {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        flag.map(str::to_string)
            .or_else(|| var("PIPEDECK_USER"))
            .or_else(|| self.user.clone())
            .or_else(|| var("USER"))
            .or_else(|| var("LOGNAME"))
            .or_else(account_name)
            .unwrap_or_else(|| "unknown".into())
    }
}

/// The name of the account pipedeck runs as, from the password database.
fn account_name() -> Option<String> {
    // SAFETY: geteuid cannot fail; getpwuid_r writes only into `pwd` and `buf`, whose
    // sizes it is given, and `pw_name` points into `buf` when it succeeds.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 4096];
        let mut found = std::ptr::null_mut();
        let rc = libc::getpwuid_r(
            libc::geteuid(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        );
        if rc != 0 || found.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        let name = std::ffi::CStr::from_ptr(pwd.pw_name).to_str().ok()?;
        (!name.is_empty()).then(|| name.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::UserConfig;

    #[test]
    fn an_unknown_key_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "user = \"ann\"\ncolour = true\n").unwrap();
        let e = UserConfig::load_from(&path).unwrap_err().to_string();
        let head = format!("{}:2: error: unknown field `colour`", path.display());
        assert!(e.starts_with(&head), "{e}");
        assert!(
            e.ends_with(
                "\n  hint: fix or remove the key; known keys: data_dir, user, ascii, keymap"
            ),
            "{e}"
        );
    }

    #[test]
    fn an_unreadable_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = UserConfig::load_from(dir.path()).unwrap_err().to_string();
        let head = format!("cannot read {}: ", dir.path().display());
        assert!(e.starts_with(&head), "{e}");
        let missing = dir.path().join("none.toml");
        assert!(UserConfig::load_from(&missing).unwrap().user.is_none());
    }

    #[test]
    fn account_name_is_the_one_id_reports() {
        let out = std::process::Command::new("id")
            .arg("-un")
            .output()
            .unwrap();
        let id = String::from_utf8(out.stdout).unwrap();
        assert_eq!(super::account_name().as_deref(), Some(id.trim()));
    }
}
