//! The log pane's part of the read model: a window of lines held in memory, loaded
//! from the store (through effects) as the pane follows or scrolls.

use std::collections::VecDeque;

use super::{AppState, FOLLOW_CATCH_UP, LOG_WINDOW, TAIL};
use crate::domain::{RunStatus, StepInfo};
use crate::store::LogLine;
use crate::tui::action::Effect;

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
    /// Not wrapping: the first column shown of every line (scrolled sideways).
    pub col: u16,
    pub timestamps: bool,
    pub streams: bool,
    pub search: Option<String>,
    /// The engine is searching the stored log for this text.
    pub searching: Option<String>,
    /// A load is in flight (so events don't ask again).
    pub loading: bool,
}

impl AppState {
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

    /// Lines read for the log pane: appended to the window, or a new window.
    pub(super) fn apply_logs(
        &mut self,
        step: i64,
        from: u64,
        lines: Vec<LogLine>,
    ) -> Option<Effect> {
        // Lines of a step no longer shown are stale (and another load may be
        // in flight for the one shown).
        if self.log.step != Some(step) {
            return None;
        }
        self.log.loading = false;
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

    /// The step to show first: a running one, a failed one, a waiting gate, else the last.
    pub(super) fn default_step(&self) -> Option<i64> {
        let d = self.detail.as_ref()?;
        let pick = |f: &dyn Fn(&StepInfo) -> bool| d.steps.iter().find(|s| f(s));
        pick(&|s| s.status == crate::domain::StepStatus::Running)
            .or_else(|| pick(&|s| s.status == crate::domain::StepStatus::Failed))
            .or_else(|| pick(&|s| s.status == crate::domain::StepStatus::AwaitingApproval))
            // A stack job's saved plan: its preview's log.
            .or_else(|| {
                (d.run.kind == crate::domain::RunKind::StackJob)
                    .then(|| pick(&|s| s.name.ends_with(".preview") && s.started_at.is_some()))
                    .flatten()
            })
            .or_else(|| {
                if d.run.status == RunStatus::Succeeded {
                    d.steps.first()
                } else {
                    d.steps.last()
                }
            })
            .map(|s| s.id)
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
