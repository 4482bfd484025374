//! A DAG as text (IP-8): longest-path layers laid out left to right, barycentre
//! crossing reduction, boxes with status, edges in box-drawing characters (or plain
//! ASCII) routed through the gaps between layers. Long edges pass through their
//! intermediate layers on placeholder slots, so no edge ever crosses a box.
//!
//! This only lays out and draws: what a box says (a resource's status, a waiting gate)
//! comes from the caller, as the engine reported it. Nothing here decides what is ready,
//! running or skipped. A [`Layout`] is computed once per graph, edge routes included;
//! [`draw_window`] then draws only what a window onto it shows.

mod canvas;
mod draw;

use std::collections::HashMap;

pub use canvas::Canvas;
pub use draw::{Label, Seg, Window, draw, draw_window, route};

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
pub(crate) enum Slot {
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
    pub(crate) layers: Vec<Vec<Slot>>,
    /// Each edge's route ([`route`]), computed with the layout.
    pub(crate) routes: Vec<Vec<Seg>>,
    pub width: u16,
    pub height: u16,
}

pub(crate) fn slot_y(slot: usize) -> u16 {
    slot as u16 * (BOX_H + VGAP)
}

pub(crate) fn layer_x(layer: usize) -> u16 {
    layer as u16 * (BOX_W + 2 + GAP)
}

/// Each node's layer: 0 without dependencies, else one past its deepest dependency
/// (the longest path to it). This places boxes; it says nothing about when a node may
/// run. A dependency that would close a cycle is left out (the engine rejects cyclic
/// graphs; this only keeps the drawing total).
fn layer_of_each(deps: &[Vec<usize>]) -> Vec<usize> {
    const NEW: u8 = 0;
    const OPEN: u8 = 1;
    const DONE: u8 = 2;
    let mut mark = vec![NEW; deps.len()];
    let mut layer = vec![0usize; deps.len()];
    for root in 0..deps.len() {
        if mark[root] != NEW {
            continue;
        }
        // Depth first without recursion (deep chains): (node, next dependency).
        mark[root] = OPEN;
        let mut stack = vec![(root, 0usize)];
        while let Some(top) = stack.last_mut() {
            let (v, k) = *top;
            if let Some(&u) = deps[v].get(k) {
                top.1 += 1;
                match mark[u] {
                    NEW => {
                        mark[u] = OPEN;
                        stack.push((u, 0));
                    }
                    DONE => layer[v] = layer[v].max(layer[u] + 1),
                    _ => {} // on the current path: a cycle
                }
            } else {
                mark[v] = DONE;
                stack.pop();
                if let Some(&(p, _)) = stack.last() {
                    layer[p] = layer[p].max(layer[v] + 1);
                }
            }
        }
    }
    layer
}

impl Layout {
    /// Lays out `nodes` (unknown dependency ids are ignored; the graph must be acyclic).
    pub fn new(nodes: &[Node]) -> Self {
        let index: HashMap<&str, usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.as_str(), i))
            .collect();
        let deps: Vec<Vec<usize>> = nodes
            .iter()
            .map(|n| {
                n.deps
                    .iter()
                    .filter_map(|d| index.get(d.as_str()).copied())
                    .collect()
            })
            .collect();
        let layer = layer_of_each(&deps);
        // Edges run left to right: one that would close a cycle is not drawn.
        let edges: Vec<(usize, usize)> = deps
            .iter()
            .enumerate()
            .flat_map(|(i, ds)| ds.iter().map(move |&j| (j, i)))
            .filter(|&(a, b)| layer[a] < layer[b])
            .collect();
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
        let mut layout = Layout {
            nodes: placed,
            edges,
            width: layer_x(n_layers).saturating_sub(GAP),
            height: slot_y(tallest).saturating_sub(VGAP),
            layers,
            routes: Vec::new(),
        };
        layout.routes = (0..layout.edges.len()).map(|e| route(&layout, e)).collect();
        layout
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

    #[test]
    fn layers_are_longest_paths_and_cycles_do_not_panic() {
        let nodes = vec![
            n("d", &["b", "c", "a"]),
            n("a", &[]),
            n("b", &["a"]),
            n("c", &["b"]),
        ];
        let l = Layout::new(&nodes);
        let layers: Vec<usize> = l.nodes.iter().map(|p| p.layer).collect();
        assert_eq!(layers, [3, 0, 1, 2]);
        // A cycle and a self-dependency: laid out all the same, the closing edge left out.
        let nodes = vec![n("x", &["y"]), n("y", &["x"]), n("z", &["z"])];
        let l = Layout::new(&nodes);
        assert_eq!(l.edges.len(), 1);
        let text = draw(&l, &[], None, true, false).to_text(true);
        assert!(text.contains('>'));
    }
}
