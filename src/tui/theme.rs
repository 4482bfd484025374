//! Themes (PC-4): `theme = "dark"` (the default) or `"light"` in the user config, and
//! `[colors]` by name over either. With `NO_COLOR` set, none of them applies: the
//! dashboard draws in the terminal's own colours, with bold and reverse video.

use std::collections::BTreeMap;

use ratatui::style::Color;

use crate::config::user::{ColorRole, NamedColor, ThemeName};

/// The colours the dashboard's frame is drawn in (status badges keep theirs, so a
/// status reads the same in every theme).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    /// Titles, hints and the dashboard's name.
    pub accent: Color,
    /// The focused pane's border.
    pub border: Color,
    /// The selected row's background, and its text.
    pub selection: Color,
    /// `None`: the text keeps its own colours.
    pub selection_text: Option<Color>,
    /// The "gates waiting" badge's background.
    pub waiting: Color,
}

impl Default for Theme {
    fn default() -> Self {
        Self::named(ThemeName::Dark)
    }
}

impl Theme {
    pub fn named(name: ThemeName) -> Self {
        match name {
            ThemeName::Dark => Self {
                accent: Color::Cyan,
                border: Color::Cyan,
                selection: Color::DarkGray,
                selection_text: None,
                waiting: Color::Yellow,
            },
            // On a light background: darker accents, a pale selection.
            ThemeName::Light => Self {
                accent: Color::Blue,
                border: Color::Blue,
                selection: Color::Gray,
                selection_text: Some(Color::Black),
                waiting: Color::LightYellow,
            },
        }
    }

    /// Theme `name` with the user's `[colors]` over it.
    pub fn from_config(name: Option<ThemeName>, colors: &BTreeMap<ColorRole, NamedColor>) -> Self {
        let mut t = Self::named(name.unwrap_or_default());
        for (role, NamedColor(c)) in colors {
            match role {
                ColorRole::Accent => t.accent = *c,
                ColorRole::Border => t.border = *c,
                ColorRole::Selection => t.selection = *c,
                ColorRole::SelectionText => t.selection_text = Some(*c),
                ColorRole::Waiting => t.waiting = *c,
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_by_name_go_over_the_named_theme() {
        let mut colors = BTreeMap::new();
        colors.insert(ColorRole::Accent, NamedColor(Color::Magenta));
        let t = Theme::from_config(Some(ThemeName::Light), &colors);
        assert_eq!(t.accent, Color::Magenta);
        assert_eq!(t.border, Color::Blue);
        assert_eq!(Theme::from_config(None, &BTreeMap::new()), Theme::default());
    }
}
