//! The run tree's part of the read model: the open run's stages, steps,
//! environments, resources and their stack-job operations as one tree, which nodes
//! the operator collapsed, and which is selected (it drives the log pane).
//!
//! The structure is derived from the run's steps ([`nodes`]); the state keeps only
//! what the operator chose, so a node the engine adds later shows up open.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use tui_tree_widget::TreeState;

use super::AppState;
use crate::domain::{RunDetail, Stage, StepInfo};
use crate::tui::action::Effect;

/// A node of the run tree: a section (a stage, or "resources") or a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeId {
    Section(Stage),
    Step(i64),
}

/// A node's identifiers from the root down to it.
pub type NodePath = Vec<NodeId>;

/// One node of the tree, in display order.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub path: NodePath,
    /// Index into the run's steps (`None` for a section).
    pub step: Option<usize>,
    pub children: bool,
}

/// The section a step is listed under: operations sit under their resource.
pub fn section_of(stage: Stage) -> Stage {
    match stage {
        Stage::Operation => Stage::Resource,
        other => other,
    }
}

/// A top-level step (index into the run's steps) with its operations' indices.
pub type Branch = (usize, Vec<usize>);

/// The tree's shape: sections in the order their first step appears, each with its
/// steps; a resource's operations under it.
pub fn sections(d: &RunDetail) -> Vec<(Stage, Vec<Branch>)> {
    let ids: HashSet<i64> = d
        .steps
        .iter()
        .filter(|s| s.stage != Stage::Operation)
        .map(|s| s.id)
        .collect();
    let mut ops: HashMap<i64, Vec<usize>> = HashMap::new();
    for (i, s) in d.steps.iter().enumerate() {
        if let Some(p) = s.parent_id.filter(|p| ids.contains(p)) {
            ops.entry(p).or_default().push(i);
        }
    }
    let mut out: Vec<(Stage, Vec<Branch>)> = Vec::new();
    for (i, s) in d.steps.iter().enumerate() {
        if s.parent_id.is_some_and(|p| ids.contains(&p)) {
            continue;
        }
        let section = section_of(s.stage);
        let children = ops.remove(&s.id).unwrap_or_default();
        match out.iter_mut().find(|(st, _)| *st == section) {
            Some((_, v)) => v.push((i, children)),
            None => out.push((section, vec![(i, children)])),
        }
    }
    out
}

/// Every node in pre-order.
pub fn nodes(d: &RunDetail) -> Vec<Node> {
    let mut v = Vec::new();
    for (section, steps) in sections(d) {
        let root = NodeId::Section(section);
        v.push(Node {
            path: vec![root],
            step: None,
            children: !steps.is_empty(),
        });
        for (i, ops) in steps {
            let id = NodeId::Step(d.steps[i].id);
            v.push(Node {
                path: vec![root, id],
                step: Some(i),
                children: !ops.is_empty(),
            });
            for o in ops {
                v.push(Node {
                    path: vec![root, id, NodeId::Step(d.steps[o].id)],
                    step: Some(o),
                    children: false,
                });
            }
        }
    }
    v
}

/// What the operator chose in the run tree.
#[derive(Debug, Default)]
pub struct RunTree {
    /// Nodes collapsed (every other node with children is open).
    pub closed: HashSet<NodePath>,
    pub selected: NodePath,
    /// The widget's own state between frames (its scroll offset).
    pub widget: RefCell<TreeState<NodeId>>,
}

impl Clone for RunTree {
    fn clone(&self) -> Self {
        Self {
            closed: self.closed.clone(),
            selected: self.selected.clone(),
            widget: RefCell::default(),
        }
    }
}

impl RunTree {
    /// Whether `path` is shown: none of its ancestors is collapsed.
    pub fn shows(&self, path: &[NodeId]) -> bool {
        (1..path.len()).all(|k| !self.closed.contains(&path[..k]))
    }
}

impl AppState {
    /// The run tree's items for a tree `width` columns wide inside its border,
    /// built when the run, the clock's second or the look changes.
    pub fn tree_items(
        &self,
        look: &crate::tui::widgets::run_tree::TreeLook,
    ) -> std::sync::Arc<Vec<tui_tree_widget::TreeItem<'static, NodeId>>> {
        let Some(d) = &self.detail else {
            return Default::default();
        };
        let key = || crate::tui::cache::TreeKey {
            generation: self.detail_generation,
            steps: (d.steps.as_ptr() as usize, d.steps.len()),
            gates: (d.gates.as_ptr() as usize, d.gates.len()),
            queues: (self.queues.as_ptr() as usize, self.queues.len()),
            second: look.now / 1000,
            width: look.width,
            ascii: look.ascii,
            color: look.color,
        };
        let fresh = key();
        self.caches.tree.get(
            |k| *k == fresh,
            key,
            || crate::tui::widgets::run_tree::items(d, look),
        )
    }

    /// The nodes shown (ancestors open), in order.
    pub fn visible_nodes(&self) -> Vec<Node> {
        let Some(d) = &self.detail else {
            return Vec::new();
        };
        nodes(d)
            .into_iter()
            .filter(|n| self.tree.shows(&n.path))
            .collect()
    }

    /// The step the tree's selection is on (none when a section is).
    pub fn selected_step(&self) -> Option<&StepInfo> {
        let NodeId::Step(id) = *self.tree.selected.last()? else {
            return None;
        };
        self.detail.as_ref()?.steps.iter().find(|s| s.id == id)
    }

    /// Selects step `id` (opening its ancestors) and points the log pane at it.
    pub fn select_step_id(&mut self, id: i64) -> Option<Effect> {
        let d = self.detail.as_ref()?;
        let node = nodes(d)
            .into_iter()
            .find(|n| n.path.last() == Some(&NodeId::Step(id)))?;
        for k in 1..node.path.len() {
            self.tree.closed.remove(&node.path[..k]);
        }
        self.tree.selected = node.path;
        self.select_step()
    }

    /// Moves the selection `by` visible nodes (down when positive).
    pub fn tree_move(&mut self, by: isize) -> Option<Effect> {
        let v = self.visible_nodes();
        if v.is_empty() {
            return None;
        }
        let at = v
            .iter()
            .position(|n| n.path == self.tree.selected)
            .unwrap_or(0);
        let to = at.saturating_add_signed(by).min(v.len() - 1);
        self.tree.selected = v[to].path.clone();
        self.select_step()
    }

    /// `h`: collapses the selected node, or goes to its parent.
    pub fn tree_left(&mut self) -> Option<Effect> {
        let sel = self.tree.selected.clone();
        let has_children = self
            .visible_nodes()
            .iter()
            .any(|n| n.path == sel && n.children);
        if has_children && !self.tree.closed.contains(&sel) {
            self.tree.closed.insert(sel);
            return None;
        }
        if sel.len() > 1 {
            self.tree.selected = sel[..sel.len() - 1].to_vec();
            return self.select_step();
        }
        None
    }

    /// `l`: expands the selected node, or goes to its first child.
    pub fn tree_right(&mut self) -> Option<Effect> {
        let sel = self.tree.selected.clone();
        let v = self.visible_nodes();
        let at = v.iter().position(|n| n.path == sel)?;
        if !v[at].children {
            return None;
        }
        if self.tree.closed.remove(&sel) {
            return None;
        }
        let child = v.get(at + 1)?.path.clone();
        self.tree.selected = child;
        self.select_step()
    }

    /// `space`: collapses or expands the selected node.
    pub fn tree_toggle(&mut self) -> Option<Effect> {
        let sel = self.tree.selected.clone();
        let has_children = self
            .visible_nodes()
            .iter()
            .any(|n| n.path == sel && n.children);
        if has_children && !self.tree.closed.remove(&sel) {
            self.tree.closed.insert(sel);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{RunStatus, StepStatus};
    use crate::tui::action::Reply;
    use crate::tui::app::tests::run;

    fn step(id: i64, stage: Stage, name: &str, parent: Option<i64>) -> StepInfo {
        StepInfo {
            id,
            run_id: 1,
            stage,
            name: name.into(),
            position: id,
            status: StepStatus::Succeeded,
            reason: None,
            exit_code: None,
            started_at: Some(0),
            ended_at: Some(1),
            parent_id: parent,
            outputs: None,
            superseded_by: None,
            slurm_job: None,
        }
    }

    fn state() -> AppState {
        let mut s = AppState::new(vec![], false, "/d".into());
        s.wanted_detail = Some(1);
        s.apply_reply(Reply::Detail(Box::new(RunDetail {
            run: run(1, RunStatus::Succeeded),
            steps: vec![
                step(1, Stage::Build, "lint", None),
                step(2, Stage::Deploy, "dev", None),
                step(3, Stage::Resource, "db", None),
                step(4, Stage::Operation, "db.plan", Some(3)),
                step(5, Stage::Operation, "db.apply", Some(3)),
            ],
            gates: vec![],
            graph: vec![],
            chain: Default::default(),
        })));
        s
    }

    fn names(s: &AppState) -> Vec<String> {
        s.visible_nodes()
            .iter()
            .map(|n| match n.path.last() {
                Some(NodeId::Section(st)) => st.as_str().to_string(),
                Some(NodeId::Step(id)) => format!("{}{id}", " ".repeat(n.path.len() - 1)),
                None => String::new(),
            })
            .collect()
    }

    #[test]
    fn operations_sit_under_their_resource_and_collapse_with_it() {
        let mut s = state();
        assert_eq!(
            names(&s),
            [
                "build", " 1", "deploy", " 2", "resource", " 3", "  4", "  5"
            ]
        );
        // A succeeded run opens on its first step.
        assert_eq!(s.selected_step().map(|x| x.id), Some(1));
        s.select_step_id(3);
        s.tree_left();
        assert_eq!(names(&s), ["build", " 1", "deploy", " 2", "resource", " 3"]);
        // Left again goes to the parent section; space collapses it.
        s.tree_left();
        assert_eq!(s.tree.selected, vec![NodeId::Section(Stage::Resource)]);
        assert!(s.selected_step().is_none());
        s.tree_toggle();
        assert_eq!(names(&s), ["build", " 1", "deploy", " 2", "resource"]);
        // Right opens it again (the resource stays collapsed), right once more goes in.
        s.tree_right();
        s.tree_right();
        assert_eq!(s.selected_step().map(|x| x.id), Some(3));
        s.tree_right();
        assert_eq!(names(&s).len(), 8);
        s.tree_right();
        assert_eq!(s.selected_step().map(|x| x.id), Some(4));
    }

    #[test]
    fn the_tree_items_are_rebuilt_only_when_the_run_or_the_look_changes() {
        use crate::domain::Event;
        use crate::tui::widgets::run_tree::TreeLook;
        use std::sync::Arc;
        let mut s = state();
        let look = |width| TreeLook {
            ascii: false,
            color: true,
            now: 5_000,
            width,
            accent: ratatui::style::Style::new(),
            queues: &[],
        };
        let a = s.tree_items(&look(30));
        assert!(Arc::ptr_eq(&a, &s.tree_items(&look(30))));
        assert!(!Arc::ptr_eq(&a, &s.tree_items(&look(40))));
        let b = s.tree_items(&look(30));
        let mut st = s.detail.as_ref().unwrap().steps[0].clone();
        st.status = StepStatus::Failed;
        s.apply_event(Event::Step { step: st });
        let c = s.tree_items(&look(30));
        assert!(!Arc::ptr_eq(&b, &c), "a step event rebuilds the items");
    }

    #[test]
    fn moving_walks_the_visible_nodes_and_stops_at_the_ends() {
        let mut s = state();
        s.tree_move(-5);
        assert_eq!(s.tree.selected, vec![NodeId::Section(Stage::Build)]);
        s.tree_move(100);
        assert_eq!(s.selected_step().map(|x| x.id), Some(5));
        // Selecting a step inside a collapsed node opens the way to it.
        s.select_step_id(3);
        s.tree_toggle();
        s.select_step_id(4);
        assert_eq!(names(&s).len(), 8);
        assert_eq!(s.log.step, Some(4));
    }
}
