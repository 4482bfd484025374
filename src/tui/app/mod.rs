//! The dashboard's read model: built from engine events and replies, drawn by views.

use std::collections::VecDeque;

use crate::domain::{
    Decision, Event, GateInfo, GateStatus, Millis, RunDetail, RunInfo, RunStatus, StepInfo,
};
use crate::store::LogLine;

use super::action::{Effect, Reply};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum View {
    Runs,
    Detail,
    Approvals,
    /// An infra run's DAG.
    Graph,
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

/// The log pane of the run detail.
#[derive(Debug, Clone, Default)]
pub struct LogView {
    pub step: Option<i64>,
    /// Lines held in memory: `lines[0]` is line number `first`.
    pub lines: VecDeque<LogLine>,
    pub first: u64,
    /// Lines the store holds (from the latest event).
    pub total: u64,
    /// Following: the pane shows the newest lines as they arrive.
    pub follow: bool,
    /// When not following: the line number at the top of the pane.
    pub top: u64,
    pub wrap: bool,
    pub timestamps: bool,
    pub streams: bool,
    pub search: Option<String>,
    /// A load is in flight (so events don't ask again).
    pub loading: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TriggerField {
    Service,
    Branch,
    Commit,
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
    Trigger {
        service: usize,
        branch: String,
        commit: String,
        field: TriggerField,
    },
    /// `:` jump to a view.
    CommandLine(String),
    /// `q` while this process hosts an engine with active runs.
    Quit { active: usize },
}

#[derive(Debug, Clone)]
pub struct AppState {
    pub view: View,
    pub runs: Vec<RunInfo>,
    pub runs_sel: usize,
    pub filter: String,
    pub filter_editing: bool,
    pub sort: SortKey,
    pub detail: Option<RunDetail>,
    pub detail_sel: usize,
    pub log: LogView,
    pub gates: Vec<GateInfo>,
    pub gate_sel: usize,
    /// The selected node of the DAG view (index into the run's graph).
    pub graph_sel: usize,
    pub dialog: Option<Dialog>,
    pub help: bool,
    pub message: Option<(bool, String)>,
    pub services: Vec<String>,
    pub now: Millis,
    /// This process hosts the engine (versus attached to one another process hosts).
    pub hosting: bool,
    pub data_dir: String,
    pub ascii: bool,
    pub color: bool,
    pub quit: bool,
    /// The terminal's height at the last draw, for paging.
    pub screen_height: u16,
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
            detail_sel: 0,
            log: LogView {
                follow: true,
                ..Default::default()
            },
            gates: Vec::new(),
            gate_sel: 0,
            graph_sel: 0,
            dialog: None,
            help: false,
            message: None,
            services,
            now: 0,
            hosting,
            data_dir,
            ascii: false,
            color: true,
            quit: false,
            screen_height: 24,
        }
    }

    /// Runs after the filter and sort, as the table shows them.
    pub fn visible_runs(&self) -> Vec<&RunInfo> {
        let needle = self.filter.to_lowercase();
        let mut v: Vec<&RunInfo> = self
            .runs
            .iter()
            .filter(|r| {
                needle.is_empty()
                    || [
                        r.service.as_str(),
                        r.branch.as_str(),
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
            .collect();
        match self.sort {
            SortKey::Newest => {}
            SortKey::Status => {
                v.sort_by_key(|r| (r.status.is_terminal(), r.status.as_str(), -r.id))
            }
            SortKey::Service => v.sort_by(|a, b| a.service.cmp(&b.service).then(b.id.cmp(&a.id))),
            SortKey::Duration => {
                v.sort_by_key(|r| std::cmp::Reverse(r.duration_ms(self.now).unwrap_or(0)))
            }
        }
        v
    }

    pub fn selected_run(&self) -> Option<&RunInfo> {
        self.visible_runs().get(self.runs_sel).copied()
    }

    pub fn selected_step(&self) -> Option<&StepInfo> {
        self.detail.as_ref()?.steps.get(self.detail_sel)
    }

    /// Rows of the log pane (title and status bars, run header, borders aside).
    pub fn log_rows(&self) -> u16 {
        self.screen_height.saturating_sub(7).max(1)
    }

    /// Rows of the runs table (bars, borders and header aside).
    pub fn table_rows(&self) -> u16 {
        self.screen_height.saturating_sub(5).max(1)
    }

    /// Runs still going, for the quit question.
    pub fn active_runs(&self) -> usize {
        self.runs.iter().filter(|r| !r.status.is_terminal()).count()
    }

    /// The gate waiting in the open run, if any.
    /// The gate waiting in the open run: the selected resource's own (its pause
    /// before apply, or its node gate) when it has one, else any.
    pub fn waiting_gate_in_detail(&self) -> Option<&GateInfo> {
        let d = self.detail.as_ref()?;
        let sel = self.selected_step()?;
        // An operation's resource is its parent.
        let resource = match sel.parent_id {
            Some(p) => d.steps.iter().find(|s| s.id == p).map(|s| s.name.as_str()),
            None => Some(sel.name.as_str()),
        };
        let mine = resource.and_then(|r| {
            self.gates.iter().find(|g| {
                g.run_id == d.run.id
                    && (g.env.ends_with(&format!("/{r}")) || g.env.contains(&format!("/{r}/")))
            })
        });
        mine.or_else(|| self.gates.iter().find(|g| g.run_id == d.run.id))
    }

    pub fn info(&mut self, text: impl Into<String>) {
        self.message = Some((false, text.into()));
    }

    pub fn error(&mut self, text: impl Into<String>) {
        self.message = Some((true, text.into()));
    }

    /// Applies an engine event; may ask for more (log lines).
    pub fn apply_event(&mut self, e: Event) -> Option<Effect> {
        match e {
            Event::Run { run } => {
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
                    }
                }
                None
            }
            Event::Step { step } => {
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
                None
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
        }
    }

    /// When following and lines exist beyond what we hold, loads them.
    pub fn more_logs(&mut self) -> Option<Effect> {
        let run = self.detail.as_ref()?.run.id;
        let step = self.log.step?;
        let have = self.log.first + self.log.lines.len() as u64;
        if !self.log.follow || self.log.loading || have >= self.log.total {
            return None;
        }
        // Far behind (a step printing flat out): skip to the newest lines; the ones
        // skipped stay in the store for scroll-back.
        let from = if self.log.total > have + FOLLOW_CATCH_UP {
            self.log.total - FOLLOW_CATCH_UP
        } else {
            have
        };
        self.log.loading = true;
        Some(Effect::LoadLogs {
            run,
            step,
            from,
            limit: LOG_WINDOW,
        })
    }

    pub fn apply_reply(&mut self, r: Reply) -> Option<Effect> {
        match r {
            Reply::Detail(d) => {
                let same = self
                    .detail
                    .as_ref()
                    .is_some_and(|old| old.run.id == d.run.id);
                self.detail = Some(*d);
                if !same {
                    self.detail_sel = self.default_step();
                }
                self.select_step()
            }
            Reply::Logs { step, from, lines } => {
                self.log.loading = false;
                if self.log.step != Some(step) {
                    return None;
                }
                let have = self.log.first + self.log.lines.len() as u64;
                if from == have && !self.log.lines.is_empty() {
                    self.log.lines.extend(lines);
                } else {
                    // A jump (scroll-back or a fresh pane): replace the window.
                    self.log.first = from;
                    self.log.lines = lines.into();
                }
                let end = self.log.first + self.log.lines.len() as u64;
                self.log.total = self.log.total.max(end);
                while self.log.lines.len() > LOG_WINDOW {
                    if self.log.follow {
                        self.log.lines.pop_front();
                        self.log.first += 1;
                    } else {
                        self.log.lines.pop_back();
                    }
                }
                self.more_logs()
            }
            Reply::Started(run, msg) => {
                let id = run.id;
                if !self.runs.iter().any(|r| r.id == id) {
                    self.apply_event(Event::Run { run: *run });
                }
                if let Some(pos) = self.visible_runs().iter().position(|r| r.id == id) {
                    self.runs_sel = pos;
                }
                self.info(msg);
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

    /// The step to show first: a running one, a failed one, a waiting gate, else the last.
    fn default_step(&self) -> usize {
        let Some(d) = &self.detail else { return 0 };
        let pick = |f: &dyn Fn(&StepInfo) -> bool| d.steps.iter().position(f);
        pick(&|s| s.status == crate::domain::StepStatus::Running)
            .or_else(|| pick(&|s| s.status == crate::domain::StepStatus::Failed))
            .or_else(|| pick(&|s| s.status == crate::domain::StepStatus::AwaitingApproval))
            .unwrap_or_else(|| {
                if d.run.status == RunStatus::Succeeded {
                    0
                } else {
                    d.steps.len().saturating_sub(1)
                }
            })
    }

    /// Points the log pane at the selected step (a fresh window, following).
    pub fn select_step(&mut self) -> Option<Effect> {
        let step = self.selected_step()?.clone();
        if self.log.step == Some(step.id) {
            return None;
        }
        let keep = (self.log.wrap, self.log.timestamps, self.log.streams);
        self.log = LogView {
            step: Some(step.id),
            follow: true,
            wrap: keep.0,
            timestamps: keep.1,
            streams: keep.2,
            loading: true,
            ..Default::default()
        };
        Some(Effect::LoadLogs {
            run: step.run_id,
            step: step.id,
            from: TAIL,
            limit: LOG_WINDOW,
        })
    }
}
