//! Derived data the views draw from, computed when its inputs change rather than on
//! every frame or key: the runs table's rows (filtered and sorted) and the DAG layout.
//!
//! Each [`Memo`] keeps one value with the key it was computed from; a read compares
//! the key (cheap) and recomputes only when it differs. The state stays a plain read
//! model: a memo is invisible to `update` and the views except in cost.

use std::cell::RefCell;
use std::sync::Arc;

use crate::domain::{GraphNode, Millis};
use crate::tui::app::SortKey;
use crate::tui::widgets::dag_graph::{Layout, Node};

/// One memoised value and the key it was computed for.
pub struct Memo<K, V>(RefCell<Option<(K, Arc<V>)>>);

impl<K, V> Default for Memo<K, V> {
    fn default() -> Self {
        Self(RefCell::new(None))
    }
}

impl<K: Clone, V> Clone for Memo<K, V> {
    fn clone(&self) -> Self {
        Self(RefCell::new(self.0.borrow().clone()))
    }
}

impl<K, V> std::fmt::Debug for Memo<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.0.borrow().is_some() {
            "filled"
        } else {
            "empty"
        };
        write!(f, "Memo({state})")
    }
}

impl<K, V> Memo<K, V> {
    /// The value for the key `fresh` accepts; else `compute`s it and remembers it
    /// under `key()`. (Separate so a hit never builds a key.)
    pub fn get(
        &self,
        fresh: impl FnOnce(&K) -> bool,
        key: impl FnOnce() -> K,
        compute: impl FnOnce() -> V,
    ) -> Arc<V> {
        if let Some((k, v)) = &*self.0.borrow()
            && fresh(k)
        {
            return v.clone();
        }
        let v = Arc::new(compute());
        *self.0.borrow_mut() = Some((key(), v.clone()));
        v
    }
}

/// What the runs table's rows depend on.
#[derive(Debug, Clone, PartialEq)]
pub struct RowsKey {
    /// Bumped by every change the state makes to `runs` (events, reloads).
    pub generation: u64,
    /// The list itself: a `runs` replaced wholesale has another buffer.
    pub buffer: usize,
    pub len: usize,
    pub filter: String,
    pub sort: SortKey,
    /// The clock, only when the order depends on it (sorting by duration).
    pub now: Option<Millis>,
}

/// What the DAG layout depends on: the run and its graph as the engine reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphKey {
    pub run: i64,
    pub graph: Vec<GraphNode>,
}

/// What the run tree's items depend on: the open run's steps, gates and queues as
/// they stand (a generation bumped by every change in place, and the buffers), the
/// clock to the second (durations of steps still going), the width and the look.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeKey {
    pub generation: u64,
    pub steps: (usize, usize),
    pub gates: (usize, usize),
    pub queues: (usize, usize),
    pub second: Millis,
    pub width: u16,
    pub ascii: bool,
    pub color: bool,
}

/// The memos an [`crate::tui::app::AppState`] carries.
#[derive(Debug, Clone, Default)]
pub struct Caches {
    /// Indices into `runs`, in table order.
    pub rows: Memo<RowsKey, Vec<usize>>,
    pub graph: Memo<GraphKey, Layout>,
    /// The run tree's items, built when the run or the look changes.
    pub tree: Memo<TreeKey, Vec<tui_tree_widget::TreeItem<'static, crate::tui::app::NodeId>>>,
}

/// Lays out an infra run's graph (edges run dependency → dependent).
pub fn layout_graph(graph: &[GraphNode]) -> Layout {
    let nodes: Vec<Node> = graph
        .iter()
        .map(|g| Node {
            id: g.id.clone(),
            deps: g.depends_on.clone(),
        })
        .collect();
    Layout::new(&nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_memo_recomputes_only_when_its_key_changes() {
        let m: Memo<u32, u32> = Memo::default();
        let mut computed = 0;
        for key in [1, 1, 2, 2, 1] {
            let v = m.get(
                |k| *k == key,
                || key,
                || {
                    computed += 1;
                    key * 10
                },
            );
            assert_eq!(*v, key * 10);
        }
        assert_eq!(computed, 3);
    }
}
