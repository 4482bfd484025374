//! Log search over the whole log: a match in the lines held in memory is jumped to at
//! once; otherwise the engine searches the stored log ([`Effect::SearchLog`], in
//! bounded memory) while the pane says "searching…", and the reply jumps to the line.

use super::{AppState, LOG_WINDOW};
use crate::tui::action::Effect;

/// Where a search starts, relative to the line at the top of the pane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchFrom {
    /// The top line itself or below (a new search, `enter`).
    Here,
    /// Below it (`n`).
    After,
    /// Above it (`N`).
    Before,
}

impl AppState {
    /// The line at the top of the log pane right now.
    pub fn log_top(&self) -> u64 {
        if self.log.follow {
            let end = self.log.first + self.log.lines.len() as u64;
            end.saturating_sub(self.log_rows() as u64)
        } else {
            self.log.top
        }
    }

    /// Stops following and shows line `top` at the top, loading from the store when
    /// it is outside the window held in memory.
    pub fn scroll_log_to(&mut self, top: u64) -> Option<Effect> {
        self.log.follow = false;
        self.log.top = top;
        let end = self.log.first + self.log.lines.len() as u64;
        let h = self.log_rows() as u64;
        let inside = top >= self.log.first && (top + h <= end || end >= self.log.total);
        if inside {
            return None;
        }
        let run = self.detail.as_ref()?.run.id;
        let step = self.log.step?;
        let from = top.saturating_sub((LOG_WINDOW / 2) as u64);
        self.log.loading = true;
        Some(Effect::LoadLogs {
            run,
            step,
            from,
            limit: LOG_WINDOW,
        })
    }

    /// Finds the search text from the top line in direction `from`: in the window
    /// held when it is there, else through the engine.
    pub fn log_search(&mut self, from: SearchFrom) -> Option<Effect> {
        let needle = self.log.search.clone().filter(|n| !n.is_empty())?;
        // One search at a time: a second reply for the same text could not be told
        // from the first.
        if let Some(busy) = &self.log.searching {
            self.info(format!(
                "still searching for `{busy}`: n/N once it is done (esc stops)"
            ));
            return None;
        }
        let top = self.log_top();
        let wanted = |n: u64| match from {
            SearchFrom::Here => n >= top,
            SearchFrom::After => n > top,
            SearchFrom::Before => n < top,
        };
        let hits = self
            .log
            .lines
            .iter()
            .filter(|l| wanted(l.n) && l.text.contains(&needle))
            .map(|l| l.n);
        let hit = if from == SearchFrom::Before {
            hits.max()
        } else {
            hits.min()
        };
        if let Some(n) = hit {
            return self.scroll_log_to(n);
        }
        // Not in the window: search the store beyond it.
        let end = self.log.first + self.log.lines.len() as u64;
        let (start, backward) = match from {
            SearchFrom::Here => (top.max(end), false),
            SearchFrom::After => ((top + 1).max(end), false),
            SearchFrom::Before => (top.min(self.log.first), true),
        };
        if backward && start == 0 {
            self.info(format!("no more matches for `{needle}`"));
            return None;
        }
        let run = self.detail.as_ref()?.run.id;
        let step = self.log.step?;
        self.log.searching = Some(needle.clone());
        Some(Effect::SearchLog {
            run,
            step,
            from: start,
            needle,
            backward,
        })
    }

    /// The engine's answer to a search: jump to the line, or say there is none.
    pub(super) fn apply_found(
        &mut self,
        step: i64,
        needle: String,
        line: Option<u64>,
    ) -> Option<Effect> {
        // A search of a step no longer shown, or for text since changed, is stale.
        if self.log.step != Some(step) || self.log.searching.as_deref() != Some(&needle) {
            return None;
        }
        self.log.searching = None;
        match line {
            Some(n) => {
                self.info(format!("`{needle}` at line {}", n + 1));
                self.scroll_log_to(n)
            }
            None => {
                self.info(format!("no more matches for `{needle}`"));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{RunDetail, RunStatus, Stage, StepInfo, StepStatus};
    use crate::store::LogLine;
    use crate::tui::action::Reply;
    use crate::tui::app::tests::run;

    /// Run 1's step 5 shows lines 900..1000 of a 1,000-line log, following.
    fn state() -> AppState {
        let mut s = AppState::new(vec![], false, "/d".into());
        s.wanted_detail = Some(1);
        let step = StepInfo {
            id: 5,
            run_id: 1,
            stage: Stage::Build,
            name: "big".into(),
            position: 0,
            status: StepStatus::Running,
            reason: None,
            exit_code: None,
            started_at: Some(0),
            ended_at: None,
            parent_id: None,
            outputs: None,
            superseded_by: None,
            slurm_job: None,
        };
        s.apply_reply(Reply::Detail(Box::new(RunDetail {
            run: run(1, RunStatus::Running),
            steps: vec![step],
            gates: vec![],
            graph: vec![],
            chain: Default::default(),
        })));
        let lines = (900..1000)
            .map(|n| LogLine {
                n,
                ts: 0,
                stream: 'o',
                text: if n == 950 {
                    "here".into()
                } else {
                    format!("{n}")
                },
            })
            .collect();
        s.apply_reply(Reply::Logs {
            step: 5,
            from: 900,
            lines,
        });
        s.log.total = 1000;
        s
    }

    #[test]
    fn a_match_held_in_memory_is_jumped_to_at_once() {
        let mut s = state();
        s.log.search = Some("here".into());
        s.scroll_log_to(900);
        assert_eq!(s.log_search(SearchFrom::Here), None);
        assert_eq!(s.log.top, 950);
    }

    #[test]
    fn the_rest_of_the_log_is_searched_by_the_engine() {
        let mut s = state();
        s.log.search = Some("start".into());
        s.scroll_log_to(920);
        // Nothing above in the window: the engine searches lines before 900.
        assert_eq!(
            s.log_search(SearchFrom::Before),
            Some(Effect::SearchLog {
                run: 1,
                step: 5,
                from: 900,
                needle: "start".into(),
                backward: true
            })
        );
        assert_eq!(s.log.searching.as_deref(), Some("start"));
        // A stale answer (other text) is dropped; the real one jumps and loads there.
        assert_eq!(s.apply_found(5, "other".into(), Some(1)), None);
        let e = s.apply_found(5, "start".into(), Some(3));
        assert!(matches!(e, Some(Effect::LoadLogs { from: 0, .. })), "{e:?}");
        assert_eq!((s.log.top, s.log.searching.clone()), (3, None));
        // Forward past the window: from its end.
        s.scroll_log_to(950);
        s.log.lines.clear();
        s.log.first = 0;
        assert!(matches!(
            s.log_search(SearchFrom::After),
            Some(Effect::SearchLog {
                from: 951,
                backward: false,
                ..
            })
        ));
        assert_eq!(s.apply_found(5, "start".into(), None), None);
        assert!(
            s.message
                .as_ref()
                .is_some_and(|m| m.1.contains("no more matches"))
        );
    }
}
