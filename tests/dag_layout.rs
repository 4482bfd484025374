//! The DAG drawing: snapshots of typical shapes, and a property test over random DAGs
//! that no boxes overlap and every edge is drawn along its whole route.

use pipedeck::tui::widgets::dag_graph::{BOX_H, BOX_W, Label, Layout, Node, Seg, draw, route};
use ratatui::style::Color;

fn n(id: &str, deps: &[&str]) -> Node {
    Node {
        id: id.into(),
        deps: deps.iter().map(|d| d.to_string()).collect(),
    }
}

fn labels(nodes: &[Node]) -> Vec<Label> {
    nodes
        .iter()
        .map(|n| Label {
            title: n.id.clone(),
            status: "✓ 1.2s".into(),
            color: Color::Green,
        })
        .collect()
}

fn text(nodes: &[Node], ascii: bool) -> String {
    let l = Layout::new(nodes);
    draw(&l, &labels(nodes), None, ascii, false).to_text(ascii)
}

#[test]
fn reference_example() {
    let nodes = vec![
        n("vpc", &[]),
        n("subnet-public", &["vpc"]),
        n("subnet-private", &["vpc"]),
        n("db", &["subnet-private"]),
        n("lb", &["subnet-public"]),
        n("dns", &["lb"]),
    ];
    insta::assert_snapshot!("reference", text(&nodes, false));
    insta::assert_snapshot!("reference_ascii", text(&nodes, true));
}

#[test]
fn diamond_and_long_edge() {
    let nodes = vec![
        n("a", &[]),
        n("b", &["a"]),
        n("c", &["a"]),
        n("d", &["b", "c", "a"]),
    ];
    insta::assert_snapshot!("diamond", text(&nodes, false));
}

#[test]
fn wide_fan_out() {
    let mut nodes = vec![n("root", &[])];
    for i in 0..8 {
        nodes.push(n(&format!("leaf-{i}"), &["root"]));
    }
    nodes.push(n("join", &["leaf-0", "leaf-7"]));
    insta::assert_snapshot!("fan_out", text(&nodes, false));
}

/// A small deterministic generator (no randomness crate needed).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

fn random_dag(seed: u64, size: usize) -> Vec<Node> {
    let mut r = Lcg(seed);
    (0..size)
        .map(|i| {
            let k = if i == 0 { 0 } else { r.next(3) };
            let deps = (0..k).map(|_| format!("n{}", r.next(i as u64))).collect();
            Node {
                id: format!("n{i}"),
                deps,
            }
        })
        .collect()
}

#[test]
fn sixty_node_generated_graph() {
    insta::assert_snapshot!("generated_60", text(&random_dag(7, 60), false));
}

#[test]
fn no_boxes_overlap_and_every_edge_is_drawn() {
    for seed in 0..150 {
        let size = 1 + (seed as usize * 7) % 60;
        let nodes = random_dag(seed, size);
        let l = Layout::new(&nodes);
        let c = draw(&l, &labels(&nodes), None, false, false);
        let (w, h) = (BOX_W + 2, BOX_H);
        let inside = |x: u16, y: u16| {
            l.nodes
                .iter()
                .any(|p| x >= p.x && x < p.x + w && y >= p.y && y < p.y + h)
        };
        for (i, a) in l.nodes.iter().enumerate() {
            for b in &l.nodes[i + 1..] {
                let apart = a.x + w <= b.x || b.x + w <= a.x || a.y + h <= b.y || b.y + h <= a.y;
                assert!(apart, "seed {seed}: boxes overlap: {a:?} {b:?}");
            }
        }
        for e in 0..l.edges.len() {
            for seg in route(&l, e) {
                let cells: Vec<(u16, u16)> = match seg {
                    Seg::H(x0, x1, y) => (x0.min(x1)..=x0.max(x1)).map(|x| (x, y)).collect(),
                    Seg::V(x, y0, y1) => (y0.min(y1)..=y0.max(y1)).map(|y| (x, y)).collect(),
                    Seg::Arrow(x, y) => vec![(x, y)],
                };
                for (x, y) in cells {
                    assert!(
                        !inside(x, y),
                        "seed {seed}: edge {e} runs through a box at {x},{y}"
                    );
                    assert!(
                        c.filled(x, y),
                        "seed {seed}: edge {e} is not drawn at {x},{y}"
                    );
                }
            }
        }
        // Every edge ends in an arrow right beside its target's box.
        for &(_, b) in &l.edges {
            let p = l.nodes[b];
            assert!(c.filled(p.x - 1, p.y + 1));
        }
    }
}
