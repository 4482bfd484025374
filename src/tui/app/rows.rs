//! Derived data of the read model, computed when its inputs change (see
//! [`crate::tui::cache`]): the runs table's rows and the open infra run's DAG layout.

use std::sync::Arc;

use super::{AppState, SortKey};
use crate::domain::RunInfo;
use crate::tui::cache::{GraphKey, RowsKey, layout_graph};
use crate::tui::widgets::dag_graph::Layout;

impl AppState {
    /// Says that `runs` was edited in place (the table's rows are recomputed).
    pub fn touch_runs(&mut self) {
        self.runs_generation += 1;
    }

    /// Runs after the filter and sort, as the table shows them.
    pub fn visible_runs(&self) -> Vec<&RunInfo> {
        self.rows().iter().map(|&i| &self.runs[i]).collect()
    }

    /// How many runs the table shows.
    pub fn visible_len(&self) -> usize {
        self.rows().len()
    }

    /// The runs at table positions `from..from + n`.
    pub fn visible_window(&self, from: usize, n: usize) -> Vec<&RunInfo> {
        let rows = self.rows();
        rows.iter()
            .skip(from)
            .take(n)
            .map(|&i| &self.runs[i])
            .collect()
    }

    /// Where run `id` is in the table.
    pub fn visible_position(&self, id: i64) -> Option<usize> {
        self.rows().iter().position(|&i| self.runs[i].id == id)
    }

    /// The table's rows (indices into `runs`), computed when the runs, the filter or
    /// the sort change.
    fn rows(&self) -> Arc<Vec<usize>> {
        let now = (self.sort == SortKey::Duration).then_some(self.now);
        let key = || RowsKey {
            generation: self.runs_generation,
            buffer: self.runs.as_ptr() as usize,
            len: self.runs.len(),
            filter: self.filter.clone(),
            sort: self.sort,
            now,
        };
        self.caches.rows.get(
            |k| {
                k.generation == self.runs_generation
                    && k.buffer == self.runs.as_ptr() as usize
                    && k.len == self.runs.len()
                    && k.filter == self.filter
                    && k.sort == self.sort
                    && k.now == now
            },
            key,
            || self.compute_rows(),
        )
    }

    fn compute_rows(&self) -> Vec<usize> {
        let needle = self.filter.to_lowercase();
        let mut v: Vec<usize> = self
            .runs
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                needle.is_empty()
                    || [
                        r.service.as_str(),
                        r.place(),
                        r.status.as_str(),
                        r.author.as_str(),
                        r.triggered_by.as_str(),
                        r.commit_message.as_str(),
                        r.commit_sha.as_str(),
                    ]
                    .iter()
                    .any(|f| f.to_lowercase().contains(&needle))
                    || r.id.to_string() == needle
            })
            .map(|(i, _)| i)
            .collect();
        let runs = &self.runs;
        match self.sort {
            SortKey::Newest => {}
            SortKey::Status => v.sort_by_key(|&i| {
                let r = &runs[i];
                (r.status.is_terminal(), r.status.as_str(), -r.id)
            }),
            SortKey::Service => v.sort_by(|&a, &b| {
                let (a, b) = (&runs[a], &runs[b]);
                a.service.cmp(&b.service).then(b.id.cmp(&a.id))
            }),
            SortKey::Duration => {
                v.sort_by_key(|&i| std::cmp::Reverse(runs[i].duration_ms(self.now).unwrap_or(0)))
            }
        }
        v
    }

    pub fn selected_run(&self) -> Option<&RunInfo> {
        let i = *self.rows().get(self.runs_sel)?;
        self.runs.get(i)
    }

    /// The layout of the open infra run's DAG, computed when its graph changes.
    pub fn graph_layout(&self) -> Option<Arc<Layout>> {
        let d = self.detail.as_ref()?;
        if d.graph.is_empty() {
            return None;
        }
        Some(self.caches.graph.get(
            |k| k.run == d.run.id && k.graph == d.graph,
            || GraphKey {
                run: d.run.id,
                graph: d.graph.clone(),
            },
            || layout_graph(&d.graph),
        ))
    }
}
