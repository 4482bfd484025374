//! A character grid for the DAG: boxes and text, and lines whose junctions merge.
//! It covers a window of the whole drawing (from `origin`); everything outside is
//! clipped, so a frame costs what the window shows, not what the graph holds.

use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};

#[derive(Clone, Copy, PartialEq)]
enum Cell {
    Empty,
    Text(char, u16),
    /// Line directions: 1 up, 2 down, 4 left, 8 right.
    Line(u8),
}

pub(super) const UP: u8 = 1;
pub(super) const DOWN: u8 = 2;
pub(super) const LEFT: u8 = 4;
pub(super) const RIGHT: u8 = 8;

/// Style slot of plain text.
pub(super) const PLAIN: u16 = 0;
/// Style slot of the selected box.
pub(super) const SELECTED: u16 = 1;

pub struct Canvas {
    /// Where the window starts in the whole drawing.
    ox: u16,
    oy: u16,
    w: usize,
    h: usize,
    cells: Vec<Cell>,
    /// Style slots for text: [`PLAIN`], [`SELECTED`], then one per node colour.
    styles: Vec<Style>,
}

impl Canvas {
    /// A `w`×`h` window whose top left is `(x, y)` of the whole drawing.
    pub(super) fn new(x: u16, y: u16, w: u16, h: u16) -> Self {
        Self {
            ox: x,
            oy: y,
            w: w as usize,
            h: h as usize,
            cells: vec![Cell::Empty; w as usize * h as usize],
            styles: vec![
                Style::new(),
                Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD),
            ],
        }
    }

    /// Whether any of the rectangle `x..x+w`, `y..y+h` (whole-drawing coordinates)
    /// is in the window.
    pub(super) fn sees(&self, x: u16, y: u16, w: u16, h: u16) -> bool {
        let (x, y, w, h) = (x as usize, y as usize, w as usize, h as usize);
        let (ox, oy) = (self.ox as usize, self.oy as usize);
        x < ox + self.w && x + w > ox && y < oy + self.h && y + h > oy
    }

    /// The slot of a text style in `color`.
    pub(super) fn color_slot(&mut self, color: Color) -> u16 {
        let style = Style::new().fg(color);
        match self.styles[2..].iter().position(|s| *s == style) {
            Some(k) => (k + 2) as u16,
            None => {
                self.styles.push(style);
                (self.styles.len() - 1) as u16
            }
        }
    }

    /// The cell at whole-drawing `(x, y)`, if it is in the window.
    fn at(&mut self, x: u16, y: u16) -> Option<&mut Cell> {
        let x = (x as usize).checked_sub(self.ox as usize)?;
        let y = (y as usize).checked_sub(self.oy as usize)?;
        if x < self.w && y < self.h {
            self.cells.get_mut(y * self.w + x)
        } else {
            None
        }
    }

    pub(super) fn put(&mut self, x: u16, y: u16, c: char, style: u16) {
        if let Some(cell) = self.at(x, y) {
            *cell = Cell::Text(c, style);
        }
    }

    pub(super) fn text(&mut self, x: u16, y: u16, s: &str, style: u16) {
        for (k, c) in s.chars().enumerate() {
            self.put(x + k as u16, y, c, style);
        }
    }

    fn line(&mut self, x: u16, y: u16, dirs: u8) {
        if let Some(c) = self.at(x, y) {
            *c = match *c {
                Cell::Line(m) => Cell::Line(m | dirs),
                Cell::Empty => Cell::Line(dirs),
                text => text,
            };
        }
    }

    /// The part of `a..=b` inside `origin..origin+len`.
    fn clip(a: u16, b: u16, origin: u16, len: usize) -> (usize, usize) {
        let lo = (a as usize).max(origin as usize);
        let hi = (b as usize).min((origin as usize + len).saturating_sub(1));
        (lo, hi)
    }

    pub(super) fn hline(&mut self, x0: u16, x1: u16, y: u16) {
        let (a, b) = (x0.min(x1), x0.max(x1));
        if !self.sees(a, y, b - a + 1, 1) {
            return;
        }
        let (lo, hi) = Self::clip(a, b, self.ox, self.w);
        for x in lo..=hi {
            let x = x as u16;
            let mut d = 0;
            if x > a {
                d |= LEFT;
            }
            if x < b {
                d |= RIGHT;
            }
            self.line(x, y, d);
        }
    }

    pub(super) fn vline(&mut self, x: u16, y0: u16, y1: u16) {
        let (a, b) = (y0.min(y1), y0.max(y1));
        if !self.sees(x, a, 1, b - a + 1) {
            return;
        }
        let (lo, hi) = Self::clip(a, b, self.oy, self.h);
        for y in lo..=hi {
            let y = y as u16;
            let mut d = 0;
            if y > a {
                d |= UP;
            }
            if y < b {
                d |= DOWN;
            }
            self.line(x, y, d);
        }
    }

    /// Whether the cell at whole-drawing `(x, y)` holds anything.
    pub fn filled(&self, x: u16, y: u16) -> bool {
        let (Some(x), Some(y)) = (x.checked_sub(self.ox), y.checked_sub(self.oy)) else {
            return false;
        };
        (x as usize) < self.w
            && self
                .cells
                .get(y as usize * self.w + x as usize)
                .is_some_and(|c| *c != Cell::Empty)
    }

    fn glyph(m: u8, ascii: bool) -> char {
        if ascii {
            return match m {
                x if x == LEFT | RIGHT || x == LEFT || x == RIGHT => '-',
                x if x == UP | DOWN || x == UP || x == DOWN => '|',
                _ => '+',
            };
        }
        match m {
            x if x == LEFT | RIGHT || x == LEFT || x == RIGHT => '─',
            x if x == UP | DOWN || x == UP || x == DOWN => '│',
            x if x == DOWN | RIGHT => '┌',
            x if x == DOWN | LEFT => '┐',
            x if x == UP | RIGHT => '└',
            x if x == UP | LEFT => '┘',
            x if x == UP | DOWN | RIGHT => '├',
            x if x == UP | DOWN | LEFT => '┤',
            x if x == LEFT | RIGHT | DOWN => '┬',
            x if x == LEFT | RIGHT | UP => '┴',
            _ => '┼',
        }
    }

    /// Rows `y0..y0+h`, columns `x0..x0+w` of this canvas, as styled lines.
    pub fn lines(&self, x0: u16, y0: u16, w: u16, h: u16, ascii: bool) -> Vec<Line<'static>> {
        let mut out = Vec::new();
        for y in y0 as usize..(y0 as usize + h as usize).min(self.h) {
            let mut spans: Vec<Span<'static>> = Vec::new();
            let mut buf = String::new();
            let mut cur = PLAIN;
            for x in x0 as usize..(x0 as usize + w as usize).min(self.w) {
                let (c, st) = match self.cells[y * self.w + x] {
                    Cell::Empty => (' ', PLAIN),
                    Cell::Text(c, s) => (c, s),
                    Cell::Line(m) => (Self::glyph(m, ascii), PLAIN),
                };
                if st != cur && !buf.is_empty() {
                    spans.push(Span::styled(
                        std::mem::take(&mut buf),
                        self.styles[cur as usize],
                    ));
                }
                cur = st;
                buf.push(c);
            }
            if !buf.is_empty() {
                spans.push(Span::styled(buf, self.styles[cur as usize]));
            }
            out.push(Line::from(spans));
        }
        out
    }

    /// The whole canvas as plain text (trailing spaces trimmed).
    pub fn to_text(&self, ascii: bool) -> String {
        self.lines(0, 0, self.w as u16, self.h as u16, ascii)
            .iter()
            .map(|l| {
                let s: String = l.spans.iter().map(|s| s.content.as_ref()).collect();
                s.trim_end().to_string()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}
