//! The state view's model (issue 22 part 3): a resource's Terraform state as its last
//! `state list` job found it, the addresses marked, and the state jobs this view
//! started. A change (taint, untaint, rm) is offered as a confirmation that names
//! every address, then goes to the engine as a typed state job; its log is the job's.

use std::collections::BTreeSet;

use super::{AppState, Dialog, View};
use crate::domain::ansi::inert;
use crate::domain::state_op::{Address, StateOp};
use crate::domain::{RunDetail, RunInfo, RunStatus, Stage};
use crate::tui::action::Effect;

/// A resource's state as the view shows it.
#[derive(Debug, Clone, Default)]
pub struct StateView {
    /// The infra project, when known (from the DAG); else the engine finds it.
    pub project: Option<String>,
    pub resource: String,
    /// What the last list found (`None`: not listed yet).
    pub addresses: Option<Vec<String>>,
    pub sel: usize,
    /// Addresses marked (`space`): what an action acts on.
    pub marked: BTreeSet<String>,
    /// The list job in flight or last done.
    pub list_job: Option<i64>,
    /// The last change this view started, and how it stands.
    pub change_job: Option<(i64, String)>,
    /// One line on how things stand (listing, failed, …).
    pub status: String,
}

/// What a change does, for the confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateChange {
    Taint,
    Untaint,
    Rm,
}

impl StateView {
    pub fn selected(&self) -> Option<&String> {
        self.addresses.as_ref()?.get(self.sel)
    }

    /// The marked addresses, else the selected one.
    pub fn chosen(&self) -> Vec<String> {
        if self.marked.is_empty() {
            self.selected().cloned().into_iter().collect()
        } else {
            self.marked.iter().cloned().collect()
        }
    }

    pub fn len(&self) -> usize {
        self.addresses.as_ref().map_or(0, Vec::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl AppState {
    /// Opens the state view of `resource` and lists its state (a state job).
    pub fn open_state(&mut self, project: Option<String>, resource: String) -> Option<Effect> {
        self.view = View::State;
        self.state = StateView {
            project: project.clone(),
            resource: resource.clone(),
            status: "listing…".into(),
            ..Default::default()
        };
        Some(Effect::StateJob {
            project,
            resource,
            op: StateOp::List,
        })
    }

    /// Lists the state again.
    pub fn relist_state(&mut self) -> Option<Effect> {
        if self.state.resource.is_empty() {
            return None;
        }
        self.state.status = "listing…".into();
        Some(Effect::StateJob {
            project: self.state.project.clone(),
            resource: self.state.resource.clone(),
            op: StateOp::List,
        })
    }

    /// `space`: marks or unmarks the selected address.
    pub fn toggle_state_mark(&mut self) {
        let Some(a) = self.state.selected().cloned() else {
            return;
        };
        if !self.state.marked.remove(&a) {
            self.state.marked.insert(a);
        }
    }

    /// `t`, `u`, `d`: asks to change the chosen addresses, naming each.
    pub fn ask_state_change(&mut self, change: StateChange) {
        let chosen = self.state.chosen();
        if chosen.is_empty() {
            self.error("nothing selected: list the state first (r)");
            return;
        }
        let addresses: Result<Vec<Address>, _> = chosen.iter().map(|a| Address::parse(a)).collect();
        let addresses = match addresses {
            Ok(a) => a,
            Err(e) => {
                self.error(e.to_string());
                return;
            }
        };
        let (verb, what, op) = match change {
            StateChange::Taint => (
                "Taint",
                "Each is replaced (destroyed and created again) at the next apply",
                StateOp::Taint { addresses },
            ),
            StateChange::Untaint => (
                "Untaint",
                "The next apply keeps each as it is",
                StateOp::Untaint { addresses },
            ),
            StateChange::Rm => (
                "Remove from the state",
                "The state forgets each; the real objects stay, unmanaged, until imported",
                StateOp::Rm { addresses },
            ),
        };
        let names: Vec<String> = chosen.iter().map(|a| inert(a)).collect();
        let text = format!(
            "{verb} {} in the state of {}: {}? {what}. A state job runs it, gated like apply; \
             its log shows what Terraform did.",
            if names.len() == 1 {
                "1 resource".to_string()
            } else {
                format!("{} resources", names.len())
            },
            inert(&self.state.resource),
            names.join(", ")
        );
        self.dialog = Some(Dialog::Confirm {
            text,
            effect: Effect::StateJob {
                project: self.state.project.clone(),
                resource: self.state.resource.clone(),
                op,
            },
        });
    }

    /// A state job this view started.
    pub fn state_started(&mut self, run: RunInfo) -> Option<Effect> {
        let id = run.id;
        let what = run.what();
        if !self.runs.iter().any(|r| r.id == id) {
            self.apply_event(crate::domain::Event::Run { run: run.clone() });
        }
        if run.state_op == Some(StateOp::List) {
            self.state.list_job = Some(id);
            self.state.status = format!("listing (job {id})…");
        } else {
            self.state.change_job =
                Some((id, format!("job {id}: {} ({})", inert(&what), run.status)));
            self.info(format!("started job {id}: {}", inert(&what)));
        }
        // It may have ended before this reply came.
        self.state_run_changed(&run)
    }

    /// A run changed: the view's jobs move on (a list ended: read what it found; a
    /// change ended: list again).
    pub fn state_run_changed(&mut self, run: &RunInfo) -> Option<Effect> {
        if self.state.list_job == Some(run.id) && run.status.is_terminal() {
            return Some(Effect::LoadStateList(run.id));
        }
        let (id, _) = self.state.change_job.as_ref()?;
        if *id != run.id {
            return None;
        }
        let reason = run
            .reason
            .as_deref()
            .map(|r| format!(": {}", inert(r)))
            .unwrap_or_default();
        self.state.change_job = Some((
            run.id,
            format!(
                "job {}: {} ({}{reason})",
                run.id,
                inert(&run.what()),
                run.status
            ),
        ));
        if run.status == RunStatus::Succeeded {
            self.state.marked.clear();
            return self.relist_state();
        }
        None
    }

    /// A list job's detail: its addresses, or why it found none.
    pub fn state_listed(&mut self, d: RunDetail) {
        if self.state.list_job != Some(d.run.id) {
            return;
        }
        let found = d
            .steps
            .iter()
            .find(|s| s.stage == Stage::Operation && s.name.ends_with(".state"))
            .and_then(|s| s.outputs.as_ref())
            .and_then(|o| o["addresses"].as_array().cloned());
        match (d.run.status, found) {
            (RunStatus::Succeeded, Some(list)) => {
                let list: Vec<String> = list
                    .iter()
                    .filter_map(|a| a.as_str().map(str::to_string))
                    .collect();
                self.state.sel = self.state.sel.min(list.len().saturating_sub(1));
                self.state.marked.retain(|m| list.contains(m));
                self.state.status = format!(
                    "{} resources, listed by job {} {}",
                    list.len(),
                    d.run.id,
                    crate::tui::views::ago(self.now, d.run.ended_at.unwrap_or(self.now))
                );
                self.state.addresses = Some(list);
            }
            (status, _) => {
                let why = d
                    .steps
                    .iter()
                    .filter(|s| s.status.is_terminal() && s.reason.is_some())
                    .filter_map(|s| s.reason.as_deref())
                    .next_back()
                    .or(d.run.reason.as_deref())
                    .unwrap_or("");
                self.state.status = format!("list job {} {status}: {}", d.run.id, inert(why));
            }
        }
    }
}
