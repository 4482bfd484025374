//! User settings (PC-4): the user config file, overridable by flags and environment.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The user config file's contents; every key optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// Where state, logs and workspaces live.
    pub data_dir: Option<PathBuf>,
    /// The engine's socket (a shared engine's): `PIPEDECK_SOCKET` and `--socket` win.
    pub socket: Option<PathBuf>,
    /// Gone: who you are is the account you run as. Present, it is refused with a hint.
    user: Option<toml::Spanned<String>>,
    /// Draw with plain ASCII instead of box-drawing glyphs.
    pub ascii: Option<bool>,
    /// Key overrides: `"runs.cancel" = "C"` (scopes: global, runs, detail, approvals).
    #[serde(default)]
    pub keymap: std::collections::BTreeMap<String, String>,
    /// The dashboard's colours: `"dark"` (the default) or `"light"`.
    pub theme: Option<ThemeName>,
    /// Colours by name over the theme: `accent`, `border`, `selection`,
    /// `selection_text`, `waiting` = a colour name (`red`, `lightblue`), an index
    /// (`208`) or `#rrggbb`.
    #[serde(default)]
    pub colors: std::collections::BTreeMap<ColorRole, NamedColor>,
}

/// A named theme.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThemeName {
    #[default]
    Dark,
    Light,
}

/// What a colour of the theme paints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColorRole {
    Accent,
    Border,
    Selection,
    SelectionText,
    Waiting,
}

/// A colour as the user names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct NamedColor(pub ratatui::style::Color);

impl TryFrom<String> for NamedColor {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse::<ratatui::style::Color>()
            .map(NamedColor)
            .map_err(|_| {
                format!(
                    "`{s}` is not a colour: use a name (red, lightblue), an index (208) or #rrggbb"
                )
            })
    }
}

/// Why the user config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum UserConfigError {
    /// The file is not valid TOML, or holds a key this version does not know;
    /// `line` is where (1-based).
    #[error(
        "{}:{line}: error: {}\n  hint: fix or remove the key; known keys: data_dir, socket, ascii, keymap, theme, colors",
        path.display(),
        source.message().trim()
    )]
    Invalid {
        path: PathBuf,
        line: usize,
        source: toml::de::Error,
    },
    /// A key that no longer means anything and must not be trusted to.
    #[error(
        "{}:{line}: error: the `user` key is gone: the engine identifies you by the account you run as\n  hint: remove the key",
        path.display()
    )]
    UserKey { path: PathBuf, line: usize },
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
        let line_at = |at: usize| {
            text.as_bytes()[..at.min(text.len())]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1
        };
        let cfg: Self = toml::from_str(text).map_err(|source| {
            let line = line_at(source.span().map(|s| s.start).unwrap_or(0));
            UserConfigError::Invalid {
                path: path.to_path_buf(),
                line,
                source,
            }
        })?;
        if let Some(user) = &cfg.user {
            return Err(UserConfigError::UserKey {
                path: path.to_path_buf(),
                line: line_at(user.span().start),
            });
        }
        Ok(cfg)
    }

    /// The engine's socket: flag, then `PIPEDECK_SOCKET`, then this file, then the
    /// data dir's own.
    pub fn socket(&self, flag: Option<&Path>, data_dir: &Path) -> PathBuf {
        if let Some(p) = flag {
            return p.to_path_buf();
        }
        if let Some(p) = std::env::var_os("PIPEDECK_SOCKET").filter(|p| !p.is_empty()) {
            return PathBuf::from(p);
        }
        if let Some(p) = &self.socket {
            return p.clone();
        }
        crate::api::protocol::socket_path(data_dir)
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
}

#[cfg(test)]
mod tests {
    use super::UserConfig;

    #[test]
    fn an_unknown_key_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "ascii = true\ncolour = true\n").unwrap();
        let e = UserConfig::load_from(&path).unwrap_err().to_string();
        let head = format!("{}:2: error: unknown field `colour`", path.display());
        assert!(e.starts_with(&head), "{e}");
        assert!(
            e.ends_with(
                "\n  hint: fix or remove the key; known keys: data_dir, socket, ascii, keymap, theme, colors"
            ),
            "{e}"
        );
    }

    #[test]
    fn themes_and_colours_by_name_and_a_bad_one_named_by_line() {
        use super::{ColorRole, NamedColor, ThemeName};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "theme = \"light\"\n[colors]\naccent = \"magenta\"\n").unwrap();
        let c = UserConfig::load_from(&path).unwrap();
        assert_eq!(c.theme, Some(ThemeName::Light));
        assert_eq!(
            c.colors.get(&ColorRole::Accent),
            Some(&NamedColor(ratatui::style::Color::Magenta))
        );
        std::fs::write(&path, "[colors]\nborder = \"blurple\"\n").unwrap();
        let e = UserConfig::load_from(&path).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "{}:2: error: `blurple` is not a colour",
                path.display()
            )),
            "{e}"
        );
        std::fs::write(&path, "theme = \"solarized\"\n").unwrap();
        let e = UserConfig::load_from(&path).unwrap_err().to_string();
        assert!(e.contains(":1: error: unknown variant `solarized`"), "{e}");
    }

    #[test]
    fn an_unreadable_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = UserConfig::load_from(dir.path()).unwrap_err().to_string();
        let head = format!("cannot read {}: ", dir.path().display());
        assert!(e.starts_with(&head), "{e}");
        let missing = dir.path().join("none.toml");
        assert!(UserConfig::load_from(&missing).unwrap().socket.is_none());
    }

    #[test]
    fn the_user_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "ascii = true\nuser = \"alice\"\n").unwrap();
        let e = UserConfig::load_from(&path).unwrap_err().to_string();
        let head = format!("{}:2: error: the `user` key is gone", path.display());
        assert!(e.starts_with(&head), "{e}");
    }
}
