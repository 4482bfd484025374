//! Edge routes and drawing: the whole graph ([`draw`]) or a window onto it
//! ([`draw_window`]).

use ratatui::style::Color;

use super::canvas::{Canvas, PLAIN, SELECTED};
use super::{BOX_H, BOX_W, GAP, Layout, Slot, layer_x, slot_y};

/// What a box shows.
#[derive(Debug, Clone)]
pub struct Label {
    pub title: String,
    pub status: String,
    pub color: Color,
}

/// The part of the drawing to show: columns `x..x+w`, rows `y..y+h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub x: u16,
    pub y: u16,
    pub w: u16,
    pub h: u16,
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

/// Draws the whole laid-out graph: boxes with labels, edges with arrowheads.
pub fn draw(
    layout: &Layout,
    labels: &[Label],
    selected: Option<usize>,
    ascii: bool,
    color: bool,
) -> Canvas {
    let all = Window {
        x: 0,
        y: 0,
        w: layout.width.max(1),
        h: layout.height.max(1),
    };
    draw_window(
        layout,
        |i| labels.get(i).cloned(),
        selected,
        ascii,
        color,
        all,
    )
}

/// Draws what `window` shows of the laid-out graph; only the boxes in it are asked
/// for their `label`. The canvas is the window (cut to the drawing's size), so its
/// `lines(0, 0, ..)` are the window's rows.
pub fn draw_window(
    layout: &Layout,
    label: impl Fn(usize) -> Option<Label>,
    selected: Option<usize>,
    ascii: bool,
    color: bool,
    window: Window,
) -> Canvas {
    let (full_w, full_h) = (layout.width.max(1), layout.height.max(1));
    let mut c = Canvas::new(
        window.x,
        window.y,
        window.w.min(full_w.saturating_sub(window.x)),
        window.h.min(full_h.saturating_sub(window.y)),
    );
    let (h, v, tl, tr, bl, br, arrow) = if ascii {
        ('-', '|', '+', '+', '+', '+', '>')
    } else {
        ('─', '│', '┌', '┐', '└', '┘', '▶')
    };
    // Edges first; boxes never lie on a route.
    for segs in &layout.routes {
        for seg in segs {
            match *seg {
                Seg::H(x0, x1, y) => c.hline(x0, x1, y),
                Seg::V(x, y0, y1) => c.vline(x, y0, y1),
                Seg::Arrow(x, y) => c.put(x, y, arrow, PLAIN),
            }
        }
    }
    let w = BOX_W as usize;
    for (i, p) in layout.nodes.iter().enumerate() {
        if !c.sees(p.x, p.y, BOX_W + 2, BOX_H) {
            continue;
        }
        let label = label(i);
        let style = if Some(i) == selected {
            SELECTED
        } else if color {
            c.color_slot(label.as_ref().map_or(Color::Reset, |l| l.color))
        } else {
            PLAIN
        };
        let title = label.as_ref().map_or("", |l| l.title.as_str());
        let status = label.as_ref().map_or("", |l| l.status.as_str());
        let edge = h.to_string().repeat(w);
        c.text(p.x, p.y, &format!("{tl}{edge}{tr}"), style);
        c.text(p.x, p.y + 1, &format!("{v}{:<w$}{v}", fit(title, w)), style);
        c.text(
            p.x,
            p.y + 2,
            &format!("{v}{:<w$}{v}", fit(status, w)),
            style,
        );
        c.text(p.x, p.y + 3, &format!("{bl}{edge}{br}"), style);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::super::Node;
    use super::*;

    #[test]
    fn a_window_shows_what_the_whole_drawing_shows_there() {
        let nodes: Vec<Node> = (0..30)
            .map(|k| Node {
                id: format!("n{k}"),
                deps: if k < 4 {
                    vec![]
                } else {
                    vec![format!("n{}", k - 4), format!("n{}", (k * 5) % k)]
                },
            })
            .collect();
        let l = Layout::new(&nodes);
        let labels: Vec<Label> = nodes
            .iter()
            .map(|n| Label {
                title: n.id.clone(),
                status: "ok".into(),
                color: Color::Green,
            })
            .collect();
        let whole = draw(&l, &labels, Some(3), false, true);
        for (x, y, w, h) in [(0, 0, 50, 20), (17, 9, 40, 13), (60, 30, 500, 500)] {
            let part = draw_window(
                &l,
                |i| labels.get(i).cloned(),
                Some(3),
                false,
                true,
                Window { x, y, w, h },
            );
            assert_eq!(
                part.lines(0, 0, w, h, false),
                whole.lines(x, y, w, h, false),
                "window at {x},{y}"
            );
        }
    }
}
