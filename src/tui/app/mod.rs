//! The dashboard's read model: built from engine events and replies, drawn by views.

pub mod drift;
mod logs;
mod releases;
mod rows;
mod search;
mod state_view;
mod tree;
mod trigger;

use crate::domain::{
    Decision, EnvQueue, Event, GateInfo, GateStatus, Millis, QueueKey, RunDetail, RunInfo, Stage,
};

use super::action::{Effect, Reply};
use super::cache::Caches;

pub use logs::LogView;
pub use releases::{Releases, describe};
pub use search::SearchFrom;
pub use state_view::{StateChange, StateView};
pub use tree::{Node, NodeId, NodePath, RunTree, nodes, section_of, sections};
pub use trigger::{STACK_JOB_OPS, TriggerField, TriggerForm, TriggerKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum View {
    Runs,
    Detail,
    Approvals,
    /// An infra run's DAG.
    Graph,
    /// The audit log (`:audit`).
    Audit,
    /// Every trigger (`:triggers`).
    Triggers,
    /// Deployments (releases, `:deployments`).
    Deployments,
    /// Stations (`:stations`).
    Stations,
    /// A resource's Terraform state (from the DAG, or `:state RESOURCE`).
    State,
}

/// Following: when this many lines or more are unread, jump to the newest instead.
pub const FOLLOW_CATCH_UP: u64 = 500;

/// `from` for a load of the newest lines.
pub const TAIL: u64 = u64::MAX;

/// Lines kept in memory for the log pane; the rest is read from the store on scroll.
pub const LOG_WINDOW: usize = 2000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Newest,
    Status,
    Service,
    Duration,
}

impl SortKey {
    pub fn next(self) -> Self {
        match self {
            Self::Newest => Self::Status,
            Self::Status => Self::Service,
            Self::Service => Self::Duration,
            Self::Duration => Self::Newest,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Newest => "newest",
            Self::Status => "status",
            Self::Service => "service",
            Self::Duration => "duration",
        }
    }
}

/// A modal dialog; while open it takes every key.
#[derive(Debug, Clone, PartialEq)]
pub enum Dialog {
    /// A destructive action, stated in full, waiting for `y`.
    Confirm { text: String, effect: Effect },
    /// A comment for a gate decision; `enter` continues to the confirmation.
    Comment {
        run: i64,
        env: String,
        decision: Decision,
        input: String,
    },
    /// `t`: start a run of any kind.
    Trigger(TriggerForm),
    /// `:` jump to a view.
    CommandLine(String),
    /// `w`: which lines of the shown log to write to a file (`FROM-TO`, a line, `+COUNT`).
    WriteLog {
        run: i64,
        step: i64,
        /// The step's path (`build/test`), for the file name.
        what: String,
        input: String,
    },
    /// `q` while this process hosts an engine with active runs.
    Quit { active: usize },
}

#[derive(Debug, Clone)]
pub struct AppState {
    pub view: View,
    /// Newest first. Replace it wholesale, or let events change it; code that edits a
    /// run in place calls [`AppState::touch_runs`] so the table's rows are recomputed.
    pub runs: Vec<RunInfo>,
    pub runs_sel: usize,
    pub filter: String,
    pub filter_editing: bool,
    pub sort: SortKey,
    pub detail: Option<RunDetail>,
    /// The run tree's collapsed nodes and selection.
    pub tree: RunTree,
    pub log: LogView,
    pub gates: Vec<GateInfo>,
    pub gate_sel: usize,
    /// The triggers as last read (`:triggers`), and the selected one.
    pub triggers: Vec<crate::domain::trigger::TriggerInfo>,
    pub trigger_sel: usize,
    /// Deployments and stations as last read, with their selections and marks.
    pub deploys: Releases,
    /// The state view's resource, its listed state and its jobs.
    pub state: StateView,
    /// Every environment's deploy queue (who deploys, who waits, who was superseded).
    pub queues: Vec<EnvQueue>,
    /// The selected node of the DAG view (index into the run's graph).
    pub graph_sel: usize,
    /// Each infra resource's latest drift check.
    pub drift: drift::DriftMarks,
    /// The audit log's newest entries, oldest first, as last read.
    pub audit: Vec<crate::store::AuditEntry>,
    pub audit_sel: usize,
    pub dialog: Option<Dialog>,
    pub help: bool,
    /// The first row of the help shown (it scrolls when the window is small).
    pub help_top: u16,
    pub message: Option<(bool, String)>,
    pub services: Vec<String>,
    /// Infra projects and resources (from the engine's catalog), for the trigger dialog.
    pub infra: Vec<String>,
    pub resources: Vec<String>,
    /// Who may decide which gates (from the engine's catalog).
    pub gate_rules: Vec<crate::domain::command::GateRule>,
    pub now: Millis,
    /// This process hosts the engine (versus attached to one another process hosts).
    pub hosting: bool,
    /// Each service's local git repository, where this machine has one.
    pub repos: std::collections::BTreeMap<String, std::path::PathBuf>,
    /// The commits the gate being decided lets through (once git said).
    pub gate_commits: Option<crate::tui::commits::GateCommits>,
    /// Who the engine takes this dashboard's user for (once it said).
    pub identity: Option<crate::domain::command::Identity>,
    /// The host this dashboard runs on (the engine's may differ).
    pub host: String,
    pub data_dir: String,
    /// The engine's project file and data-dir disk, as last asked.
    pub engine_status: Option<crate::domain::command::ConfigStatus>,
    pub ascii: bool,
    pub color: bool,
    /// The colours, when `color` (no `NO_COLOR`).
    pub theme: crate::tui::theme::Theme,
    pub quit: bool,
    /// The terminal's height at the last draw, for paging.
    pub screen_height: u16,
    /// The run whose detail was asked for last: replies for any other are stale.
    pub wanted_detail: Option<i64>,
    /// A reload (runs and gates) is in flight; events meanwhile are kept in `replay`
    /// and applied again over the snapshot, so none is lost to the race.
    pub reloading: bool,
    replay: Vec<Event>,
    /// Bumped on every change the state makes to `runs`.
    runs_generation: u64,
    /// Bumped on every change made in place to the open run's detail.
    detail_generation: u64,
    caches: Caches,
}

impl AppState {
    pub fn new(services: Vec<String>, hosting: bool, data_dir: String) -> Self {
        Self {
            view: View::Runs,
            runs: Vec::new(),
            runs_sel: 0,
            filter: String::new(),
            filter_editing: false,
            sort: SortKey::Newest,
            detail: None,
            tree: RunTree::default(),
            log: LogView {
                follow: true,
                ..Default::default()
            },
            gates: Vec::new(),
            queues: Vec::new(),
            gate_sel: 0,
            triggers: Vec::new(),
            trigger_sel: 0,
            deploys: Releases::default(),
            state: StateView::default(),
            graph_sel: 0,
            drift: Default::default(),
            audit: Vec::new(),
            audit_sel: 0,
            dialog: None,
            help: false,
            help_top: 0,
            message: None,
            services,
            infra: Vec::new(),
            resources: Vec::new(),
            gate_rules: Vec::new(),
            now: 0,
            hosting,
            identity: None,
            repos: Default::default(),
            gate_commits: None,
            host: crate::engine::account::host_name(),
            data_dir,
            engine_status: None,
            ascii: false,
            color: true,
            theme: Default::default(),
            quit: false,
            screen_height: 24,
            wanted_detail: None,
            reloading: false,
            replay: Vec::new(),
            runs_generation: 0,
            detail_generation: 0,
            caches: Caches::default(),
        }
    }

    /// Rows of the log pane (title and status bars, run header, borders aside).
    pub fn log_rows(&self) -> u16 {
        self.screen_height.saturating_sub(7).max(1)
    }

    /// Rows of the runs table (bars, borders and header aside).
    pub fn table_rows(&self) -> u16 {
        let banner = crate::tui::views::banner_height(self);
        self.screen_height.saturating_sub(5 + banner).max(1)
    }

    /// Runs still going, for the quit question.
    pub fn active_runs(&self) -> usize {
        self.runs.iter().filter(|r| !r.status.is_terminal()).count()
    }

    /// The gate waiting in the open run: the selected resource's own (its pause
    /// before apply, or its node gate) when it has one, else any.
    pub fn waiting_gate_in_detail(&self) -> Option<&GateInfo> {
        let d = self.detail.as_ref()?;
        // An operation's resource is its parent.
        let resource = self.selected_step().and_then(|sel| match sel.parent_id {
            Some(p) => d.steps.iter().find(|s| s.id == p).map(|s| s.name.as_str()),
            None => Some(sel.name.as_str()),
        });
        let mine = resource.and_then(|r| {
            self.gates.iter().find(|g| {
                g.run_id == d.run.id
                    && (g.env.ends_with(&format!("/{r}")) || g.env.contains(&format!("/{r}/")))
            })
        });
        mine.or_else(|| self.gates.iter().find(|g| g.run_id == d.run.id))
    }

    /// Opens the approve (or reject) dialog of gate `env` of run `run`, and asks git
    /// for the commits it lets through when the service's repository is local.
    pub fn open_decision(
        &mut self,
        run: i64,
        env: String,
        a: super::action::Action,
    ) -> Option<Effect> {
        self.dialog = Some(super::views::decide(run, env.clone(), a));
        self.gate_commits = None;
        let r = self
            .runs
            .iter()
            .find(|r| r.id == run)
            .or_else(|| self.detail.as_ref().map(|d| &d.run).filter(|r| r.id == run))?;
        if r.kind != crate::domain::RunKind::Service || r.commit_sha.is_empty() {
            return None;
        }
        let repo = self.repos.get(&r.service)?.clone();
        let current = self.queue(&r.service, &env).and_then(|q| {
            q.entries
                .iter()
                .find(|e| e.state == crate::domain::QueueState::Current)
                .map(|e| e.commit_sha.clone())
        });
        Some(Effect::LoadCommits {
            run,
            env,
            repo,
            current,
            commit: r.commit_sha.clone(),
        })
    }

    pub fn info(&mut self, text: impl Into<String>) {
        self.message = Some((false, text.into()));
    }

    pub fn error(&mut self, text: impl Into<String>) {
        self.message = Some((true, text.into()));
    }

    /// The deploy queue of `service` to `env`, if known.
    pub fn queue(&self, service: &str, env: &str) -> Option<&EnvQueue> {
        let key = QueueKey {
            service: service.to_string(),
            env: env.to_string(),
        };
        self.queues.iter().find(|q| q.key == key)
    }

    /// Reads the runs and waiting gates again (at start, and after missed events).
    pub fn reload(&mut self) -> Effect {
        self.reloading = true;
        self.replay.clear();
        Effect::Reload {
            detail: self.detail.as_ref().map(|d| d.run.id),
        }
    }

    /// Asks for run `id`'s detail; replies for any other run are dropped from now on.
    pub fn open_detail(&mut self, id: i64) -> Effect {
        self.wanted_detail = Some(id);
        Effect::LoadDetail(id)
    }

    /// Applies an engine event; may ask for more (log lines).
    pub fn apply_event(&mut self, e: Event) -> Option<Effect> {
        if !matches!(e, Event::Log { .. }) {
            self.detail_generation += 1;
        }
        if self.reloading {
            self.replay.push(e.clone());
        }
        match e {
            Event::Run { run } => {
                self.runs_generation += 1;
                // The state view's jobs (a list ended: read it; a change ended: list).
                let state = self.state_run_changed(&run);
                if let Some(d) = &mut self.detail
                    && d.run.id == run.id
                {
                    d.run = run.clone();
                }
                match self.runs.iter_mut().find(|r| r.id == run.id) {
                    Some(r) => *r = run,
                    None => {
                        let pos = self
                            .runs
                            .iter()
                            .position(|r| r.id < run.id)
                            .unwrap_or(self.runs.len());
                        self.runs.insert(pos, run);
                        // Keep the selection on the same run when a new one arrives on top.
                        if pos <= self.runs_sel
                            && self.sort == SortKey::Newest
                            && self.filter.is_empty()
                            && !self.runs.is_empty()
                            && self.runs.len() > 1
                        {
                            self.runs_sel += 1;
                        }
                        // A new run: a trigger may have fired.
                        if self.view == View::Triggers {
                            return Some(Effect::LoadTriggers);
                        }
                    }
                }
                state
            }
            Event::Step { step } => {
                // A deploy row moved: some environment's queue did.
                let queues = (step.stage == Stage::Deploy).then_some(Effect::LoadQueues);
                if let Some(d) = &mut self.detail
                    && d.run.id == step.run_id
                {
                    match d.steps.iter_mut().find(|s| s.id == step.id) {
                        Some(s) => *s = step,
                        None => {
                            d.steps.push(step);
                            d.steps.sort_by_key(|s| s.position);
                        }
                    }
                }
                queues
            }
            Event::Gate { gate } => {
                self.gates.retain(|g| g.id != gate.id);
                if gate.status == GateStatus::Waiting {
                    self.gates.push(gate.clone());
                    self.gates.sort_by_key(|g| (g.opened_at, g.id));
                }
                self.gate_sel = self.gate_sel.min(self.gates.len().saturating_sub(1));
                if let Some(d) = &mut self.detail
                    && d.run.id == gate.run_id
                {
                    match d.gates.iter_mut().find(|g| g.id == gate.id) {
                        Some(g) => *g = gate,
                        None => d.gates.push(gate),
                    }
                }
                None
            }
            Event::Log {
                run_id,
                step_id,
                total_lines,
            } => {
                let d = self.detail.as_ref()?;
                if d.run.id != run_id || self.log.step != Some(step_id) {
                    return None;
                }
                self.log.total = self.log.total.max(total_lines);
                self.more_logs()
            }
            Event::Release { release } => {
                self.deploys.upsert(release);
                self.release_views_open()
                    .then(|| self.load_releases())
                    .flatten()
            }
            Event::Drift { report } => {
                self.drift.apply(&report);
                None
            }
            Event::Station {
                name,
                current,
                pending,
                pinned,
                error,
            } => {
                self.station_changed(&name, current, pending, pinned, error);
                self.release_views_open()
                    .then(|| self.load_releases())
                    .flatten()
            }
        }
    }

    pub fn apply_reply(&mut self, r: Reply) -> Option<Effect> {
        match r {
            Reply::Detail(d) if self.wanted_detail.is_some_and(|w| w != d.run.id) => {
                tracing::debug!(run = d.run.id, "dropped the detail of a run no longer open");
                None
            }
            Reply::Detail(d) => {
                let same = self
                    .detail
                    .as_ref()
                    .is_some_and(|old| old.run.id == d.run.id);
                self.detail = Some(*d);
                self.detail_generation += 1;
                if !same {
                    self.tree = RunTree::default();
                    if let Some(id) = self.default_step() {
                        return self.select_step_id(id);
                    }
                }
                self.select_step()
            }
            Reply::Logs { step, from, lines } => self.apply_logs(step, from, lines),
            Reply::Found { step, needle, line } => self.apply_found(step, needle, line),
            Reply::Started(run, msg) => {
                let id = run.id;
                if !self.runs.iter().any(|r| r.id == id) {
                    self.apply_event(Event::Run { run: *run });
                }
                if let Some(pos) = self.visible_position(id) {
                    self.runs_sel = pos;
                }
                self.info(msg);
                None
            }
            Reply::StateStarted(run) => self.state_started(*run),
            Reply::StateListed(d) => {
                self.state_listed(*d);
                None
            }
            Reply::Reloaded { runs, gates } => {
                self.reloading = false;
                if let Some(runs) = runs {
                    self.runs = runs;
                    self.runs_generation += 1;
                }
                if let Some(gates) = gates {
                    self.gates = gates;
                    self.gate_sel = self.gate_sel.min(self.gates.len().saturating_sub(1));
                }
                // Events that arrived meanwhile may be newer than the snapshot.
                let mut effect = Some(Effect::LoadQueues);
                for e in std::mem::take(&mut self.replay) {
                    effect = self.apply_event(e).or(effect);
                }
                effect
            }
            Reply::Drift(records) => {
                self.drift.load(records);
                None
            }
            Reply::Catalog(c) => {
                // The engine's project is the one runs start in.
                if !c.services.is_empty() {
                    self.services = c.services;
                }
                self.infra = c.infra;
                self.resources = c.resources;
                self.gate_rules = c.gates;
                None
            }
            Reply::Audit(entries) => {
                // Opened at the newest entry.
                self.audit_sel = entries.len().saturating_sub(1);
                self.audit = entries;
                None
            }
            Reply::Status(st) => {
                self.engine_status = Some(*st);
                None
            }
            Reply::Triggers(t) => {
                self.trigger_sel = self.trigger_sel.min(t.len().saturating_sub(1));
                self.triggers = t;
                None
            }
            Reply::Releases { releases, stations } => {
                self.deploys.replace(releases, stations);
                self.releases_loaded()
            }
            Reply::ReleasesFailed => self.releases_loaded(),
            Reply::ReleaseDone(m) => {
                self.info(m);
                self.load_releases()
            }
            Reply::Commits(c) => {
                self.gate_commits = Some(c);
                None
            }
            Reply::Identity(id) => {
                self.identity = Some(id);
                None
            }
            Reply::Queues(q) => {
                self.queues = q;
                self.detail_generation += 1;
                None
            }
            Reply::Older { run, why } => {
                self.dialog = Some(Dialog::Confirm {
                    text: format!(
                        "{why}. Roll back on purpose? A new attempt of run {run} deploys its older \
                         commit, recorded as a deliberate rollback."
                    ),
                    effect: Effect::RerunOlder(run),
                });
                None
            }
            Reply::Info(m) => {
                self.info(m);
                None
            }
            Reply::Error(m) => {
                self.error(m);
                None
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
