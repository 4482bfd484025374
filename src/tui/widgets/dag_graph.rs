//! A DAG as text (IP-8): longest-path layers laid out left to right, barycentre
//! crossing reduction, boxes with status, edges in box-drawing characters (or plain
//! ASCII) routed through the gaps between layers. Long edges pass through their
//! intermediate layers on placeholder slots, so no edge ever crosses a box.

use std::collections::HashMap;

use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};

/// Inner width of a box (its label is cut to fit).
pub const BOX_W: u16 = 20;
pub const BOX_H: u16 = 4;
/// Columns between layers, where edges run.
pub const GAP: u16 = 7;
/// Rows between slots.
pub const VGAP: u16 = 1;

/// One node: its id and the ids it depends on (edges run dependency → dependent).
#[derive(Debug, Clone)]
pub struct Node {
    pub id: String,
    pub deps: Vec<String>,
}

/// Where a node's box is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    pub x: u16,
    pub y: u16,
    pub layer: usize,
    pub slot: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Slot {
    Node(usize),
    /// A long edge (index into `edges`) passing through this layer.
    Pass(usize),
}

/// A laid-out graph.
#[derive(Debug, Clone)]
pub struct Layout {
    pub nodes: Vec<Placed>,
    /// `(from, to)` node indices.
    pub edges: Vec<(usize, usize)>,
    layers: Vec<Vec<Slot>>,
    pub width: u16,
    pub height: u16,
}

fn slot_y(slot: usize) -> u16 {
    slot as u16 * (BOX_H + VGAP)
}

fn layer_x(layer: usize) -> u16 {
    layer as u16 * (BOX_W + 2 + GAP)
}

impl Layout {
    /// Lays out `nodes` (unknown dependency ids are ignored; the graph must be acyclic).
    pub fn new(nodes: &[Node]) -> Self {
        let index: HashMap<&str, usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.as_str(), i))
            .collect();
        let mut edges = Vec::new();
        for (i, n) in nodes.iter().enumerate() {
            for d in &n.deps {
                if let Some(&j) = index.get(d.as_str()) {
                    edges.push((j, i));
                }
            }
        }
        // Longest-path layering in topological order (Kahn).
        let mut indeg = vec![0usize; nodes.len()];
        let mut out: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
        for &(a, b) in &edges {
            indeg[b] += 1;
            out[a].push(b);
        }
        let mut layer = vec![0usize; nodes.len()];
        let mut queue: std::collections::VecDeque<usize> =
            (0..nodes.len()).filter(|&i| indeg[i] == 0).collect();
        while let Some(a) = queue.pop_front() {
            for &b in &out[a] {
                layer[b] = layer[b].max(layer[a] + 1);
                indeg[b] -= 1;
                if indeg[b] == 0 {
                    queue.push_back(b);
                }
            }
        }
        let n_layers = layer.iter().max().map_or(0, |m| m + 1);
        let mut layers: Vec<Vec<Slot>> = vec![Vec::new(); n_layers];
        for (i, &l) in layer.iter().enumerate() {
            layers[l].push(Slot::Node(i));
        }
        for (e, &(a, b)) in edges.iter().enumerate() {
            for slots in &mut layers[layer[a] + 1..layer[b]] {
                slots.push(Slot::Pass(e));
            }
        }
        let mut ins: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
        let mut outs: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
        for (e, &(a, b)) in edges.iter().enumerate() {
            outs[a].push(e);
            ins[b].push(e);
        }
        // Crossing reduction: barycentres against the previous layer, then the next.
        let pos_of = |layers: &Vec<Vec<Slot>>| -> HashMap<Slot, usize> {
            let mut m = HashMap::new();
            for l in layers {
                for (k, s) in l.iter().enumerate() {
                    m.insert(*s, k);
                }
            }
            m
        };
        // Neighbours of a slot in the layer before (`up`) or after.
        let neighbours = |s: Slot, l: usize, up: bool| -> Vec<Slot> {
            match s {
                Slot::Pass(e) => {
                    let (a, b) = edges[e];
                    let target = if up { l - 1 } else { l + 1 };
                    if up {
                        vec![if target == layer[a] {
                            Slot::Node(a)
                        } else {
                            Slot::Pass(e)
                        }]
                    } else {
                        vec![if target == layer[b] {
                            Slot::Node(b)
                        } else {
                            Slot::Pass(e)
                        }]
                    }
                }
                Slot::Node(i) => {
                    let list = if up { &ins[i] } else { &outs[i] };
                    list.iter()
                        .map(|&e| {
                            let (a, b) = edges[e];
                            if up {
                                if layer[a] + 1 == l {
                                    Slot::Node(a)
                                } else {
                                    Slot::Pass(e)
                                }
                            } else if layer[b] == l + 1 {
                                Slot::Node(b)
                            } else {
                                Slot::Pass(e)
                            }
                        })
                        .collect()
                }
            }
        };
        if nodes.len() <= 2000 {
            for _ in 0..4 {
                for (range, up) in [
                    ((1..n_layers).collect::<Vec<_>>(), true),
                    ((0..n_layers.saturating_sub(1)).rev().collect(), false),
                ] {
                    for l in range {
                        let pos = pos_of(&layers);
                        let mut keyed: Vec<(f64, usize, Slot)> = layers[l]
                            .iter()
                            .enumerate()
                            .map(|(k, &s)| {
                                let ns = neighbours(s, l, up);
                                let bary = if ns.is_empty() {
                                    k as f64
                                } else {
                                    ns.iter()
                                        .map(|n| pos.get(n).copied().unwrap_or(k) as f64)
                                        .sum::<f64>()
                                        / ns.len() as f64
                                };
                                (bary, k, s)
                            })
                            .collect();
                        keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                        layers[l] = keyed.into_iter().map(|(_, _, s)| s).collect();
                    }
                }
            }
        }
        let mut placed = vec![
            Placed {
                x: 0,
                y: 0,
                layer: 0,
                slot: 0
            };
            nodes.len()
        ];
        for (l, slots) in layers.iter().enumerate() {
            for (k, s) in slots.iter().enumerate() {
                if let Slot::Node(i) = *s {
                    placed[i] = Placed {
                        x: layer_x(l),
                        y: slot_y(k),
                        layer: l,
                        slot: k,
                    };
                }
            }
        }
        let tallest = layers.iter().map(Vec::len).max().unwrap_or(0);
        Layout {
            nodes: placed,
            edges,
            width: layer_x(n_layers).saturating_sub(GAP),
            height: slot_y(tallest).saturating_sub(VGAP),
            layers,
        }
    }

    /// The node to the left/right (nearest slot in the neighbouring layer) or above/below.
    pub fn neighbour(&self, from: usize, dx: i32, dy: i32) -> Option<usize> {
        let p = self.nodes.get(from)?;
        if dy != 0 {
            let slots = &self.layers[p.layer];
            let mut k = p.slot as i64;
            loop {
                k += dy as i64;
                match slots.get(usize::try_from(k).ok()?) {
                    Some(Slot::Node(i)) => return Some(*i),
                    Some(Slot::Pass(_)) => continue,
                    None => return None,
                }
            }
        }
        let l = p.layer as i64 + dx as i64;
        let slots = self.layers.get(usize::try_from(l).ok()?)?;
        slots
            .iter()
            .enumerate()
            .filter_map(|(k, s)| match s {
                Slot::Node(i) => Some((k.abs_diff(p.slot), *i)),
                Slot::Pass(_) => None,
            })
            .min()
            .map(|(_, i)| i)
    }
}

/// What a box shows.
#[derive(Debug, Clone)]
pub struct Label {
    pub title: String,
    pub status: String,
    pub color: Color,
}

#[derive(Clone, Copy, PartialEq)]
enum Cell {
    Empty,
    Text(char, u8),
    /// Line directions: 1 up, 2 down, 4 left, 8 right.
    Line(u8),
}

/// A character grid: boxes and text, and lines whose junctions merge.
pub struct Canvas {
    w: usize,
    h: usize,
    cells: Vec<Cell>,
    /// Style slots for text: 0 plain, 1 selected, 2.. node colours.
    styles: Vec<Style>,
}

const UP: u8 = 1;
const DOWN: u8 = 2;
const LEFT: u8 = 4;
const RIGHT: u8 = 8;

impl Canvas {
    fn new(w: u16, h: u16) -> Self {
        Self {
            w: w as usize,
            h: h as usize,
            cells: vec![Cell::Empty; w as usize * h as usize],
            styles: vec![
                Style::new(),
                Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD),
            ],
        }
    }

    fn put(&mut self, x: u16, y: u16, c: char, style: u8) {
        let (x, y) = (x as usize, y as usize);
        if x < self.w && y < self.h {
            self.cells[y * self.w + x] = Cell::Text(c, style);
        }
    }

    fn text(&mut self, x: u16, y: u16, s: &str, style: u8) {
        for (k, c) in s.chars().enumerate() {
            self.put(x + k as u16, y, c, style);
        }
    }

    fn line(&mut self, x: u16, y: u16, dirs: u8) {
        let (x, y) = (x as usize, y as usize);
        if x < self.w && y < self.h {
            let c = &mut self.cells[y * self.w + x];
            *c = match *c {
                Cell::Line(m) => Cell::Line(m | dirs),
                Cell::Empty => Cell::Line(dirs),
                text => text,
            };
        }
    }

    fn hline(&mut self, x0: u16, x1: u16, y: u16) {
        let (a, b) = (x0.min(x1), x0.max(x1));
        for x in a..=b {
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

    fn vline(&mut self, x: u16, y0: u16, y1: u16) {
        let (a, b) = (y0.min(y1), y0.max(y1));
        for y in a..=b {
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

    /// Whether the cell holds anything.
    pub fn filled(&self, x: u16, y: u16) -> bool {
        self.cells
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

    /// Rows `y0..y0+h`, columns `x0..x0+w`, as styled lines.
    pub fn lines(&self, x0: u16, y0: u16, w: u16, h: u16, ascii: bool) -> Vec<Line<'static>> {
        let mut out = Vec::new();
        for y in y0 as usize..(y0 as usize + h as usize).min(self.h) {
            let mut spans: Vec<Span<'static>> = Vec::new();
            let mut buf = String::new();
            let mut cur = 0u8;
            for x in x0 as usize..(x0 as usize + w as usize).min(self.w) {
                let (c, st) = match self.cells[y * self.w + x] {
                    Cell::Empty => (' ', 0),
                    Cell::Text(c, s) => (c, s),
                    Cell::Line(m) => (Self::glyph(m, ascii), 0),
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

fn fit(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('~');
        t
    }
}

/// A piece of an edge's route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seg {
    /// Horizontal from x0 to x1 at y.
    H(u16, u16, u16),
    /// Vertical at x from y0 to y1.
    V(u16, u16, u16),
    Arrow(u16, u16),
}

/// Edge `e`'s route, one hop per pair of neighbouring layers: out of the source's
/// right side, along a trunk column in the gap, into the next layer — through a
/// placeholder slot when the edge is long, into the target's left side at the end.
pub fn route(layout: &Layout, e: usize) -> Vec<Seg> {
    let (a, b) = layout.edges[e];
    let (pa, pb) = (layout.nodes[a], layout.nodes[b]);
    let mut out = Vec::new();
    let mut from = (pa.x + BOX_W + 2, pa.y + 1);
    for l in pa.layer + 1..=pb.layer {
        let want = if l == pb.layer {
            Slot::Node(b)
        } else {
            Slot::Pass(e)
        };
        let slot = layout.layers[l]
            .iter()
            .position(|s| *s == want)
            .unwrap_or(0);
        let to_y = slot_y(slot) + 1;
        // One trunk column per source slot keeps fan-outs readable.
        let trunk = layer_x(l) - GAP + 1 + (pa.slot as u16 % (GAP - 3));
        let end_x = layer_x(l) - 1;
        out.push(Seg::H(from.0, trunk, from.1));
        out.push(Seg::V(trunk, from.1, to_y));
        out.push(Seg::H(trunk, end_x, to_y));
        if l == pb.layer {
            out.push(Seg::Arrow(end_x, to_y));
        } else {
            out.push(Seg::H(layer_x(l), layer_x(l) + BOX_W + 2, to_y));
            from = (layer_x(l) + BOX_W + 2, to_y);
        }
    }
    out
}

/// Draws the laid-out graph: boxes with labels, edges with arrowheads.
pub fn draw(
    layout: &Layout,
    labels: &[Label],
    selected: Option<usize>,
    ascii: bool,
    color: bool,
) -> Canvas {
    let mut c = Canvas::new(layout.width.max(1), layout.height.max(1));
    let (h, v, tl, tr, bl, br, arrow) = if ascii {
        ('-', '|', '+', '+', '+', '+', '>')
    } else {
        ('─', '│', '┌', '┐', '└', '┘', '▶')
    };
    // Edges first; boxes never lie on a route.
    for e in 0..layout.edges.len() {
        for seg in route(layout, e) {
            match seg {
                Seg::H(x0, x1, y) => c.hline(x0, x1, y),
                Seg::V(x, y0, y1) => c.vline(x, y0, y1),
                Seg::Arrow(x, y) => c.put(x, y, arrow, 0),
            }
        }
    }
    for (i, p) in layout.nodes.iter().enumerate() {
        let label = labels.get(i);
        let style = if Some(i) == selected {
            1
        } else if color {
            let col = label.map_or(Color::Reset, |l| l.color);
            c.styles.push(Style::new().fg(col));
            (c.styles.len() - 1) as u8
        } else {
            0
        };
        let w = BOX_W as usize;
        c.text(
            p.x,
            p.y,
            &format!("{tl}{}{tr}", h.to_string().repeat(w)),
            style,
        );
        let title = label.map_or("", |l| l.title.as_str());
        let status = label.map_or("", |l| l.status.as_str());
        c.text(p.x, p.y + 1, &format!("{v}{:<w$}{v}", fit(title, w)), style);
        c.text(
            p.x,
            p.y + 2,
            &format!("{v}{:<w$}{v}", fit(status, w)),
            style,
        );
        c.text(
            p.x,
            p.y + 3,
            &format!("{bl}{}{br}", h.to_string().repeat(w)),
            style,
        );
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(id: &str, deps: &[&str]) -> Node {
        Node {
            id: id.into(),
            deps: deps.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn navigation_moves_between_layers_and_slots() {
        let nodes = vec![n("a", &[]), n("b", &["a"]), n("c", &["a"])];
        let l = Layout::new(&nodes);
        assert_eq!(
            l.neighbour(0, 1, 0).map(|i| nodes[i].id.as_str()),
            Some("b")
        );
        assert_eq!(
            l.neighbour(1, 0, 1).map(|i| nodes[i].id.as_str()),
            Some("c")
        );
        assert_eq!(l.neighbour(1, -1, 0), Some(0));
        assert_eq!(l.neighbour(0, -1, 0), None);
    }
}
