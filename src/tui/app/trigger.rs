//! The trigger dialog's form: every run kind the CLI starts, from the keyboard. A
//! service run (branch, commit), an infra project's deploy or undeploy, a stack job
//! (resource, operation). Destructive choices (undeploy, destroy) go through a
//! confirmation that says what will happen.

use crossterm::event::KeyCode;

use super::{AppState, Dialog};
use crate::domain::Operation;
use crate::tui::action::Effect;

/// What kind of run the dialog starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerKind {
    Service,
    Infra,
    StackJob,
}

impl TriggerKind {
    pub const ALL: [TriggerKind; 3] = [Self::Service, Self::Infra, Self::StackJob];

    pub fn name(self) -> &'static str {
        match self {
            Self::Service => "service run",
            Self::Infra => "infra pipeline",
            Self::StackJob => "stack job",
        }
    }

    /// What the target row lists.
    pub fn target_name(self) -> &'static str {
        match self {
            Self::Service => "service",
            Self::Infra => "project",
            Self::StackJob => "resource",
        }
    }
}

/// The row the cursor is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerField {
    Kind,
    Target,
    Branch,
    Commit,
    /// Infra: deploy or undeploy; stack job: the operation.
    Action,
}

/// The stack-job operations, by their CLI verbs (`update` ends in apply).
pub const STACK_JOB_OPS: [Operation; 4] = [
    Operation::Preview,
    Operation::Apply,
    Operation::Refresh,
    Operation::Destroy,
];

/// The trigger dialog's state.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerForm {
    pub kind: TriggerKind,
    /// Index into the services, infra projects or resources.
    pub target: usize,
    pub branch: String,
    pub commit: String,
    pub undeploy: bool,
    /// Index into [`STACK_JOB_OPS`].
    pub operation: usize,
    pub field: TriggerField,
}

impl TriggerForm {
    pub fn new(kind: TriggerKind, target: usize) -> Self {
        Self {
            kind,
            target,
            branch: String::new(),
            commit: String::new(),
            undeploy: false,
            operation: 0,
            field: TriggerField::Target,
        }
    }

    /// The rows this kind shows, in order.
    pub fn fields(&self) -> &'static [TriggerField] {
        use TriggerField::*;
        match self.kind {
            TriggerKind::Service => &[Kind, Target, Branch, Commit],
            TriggerKind::Infra | TriggerKind::StackJob => &[Kind, Target, Action],
        }
    }

    pub fn op(&self) -> Operation {
        STACK_JOB_OPS[self.operation % STACK_JOB_OPS.len()]
    }
}

fn cycle(i: usize, n: usize, forward: bool) -> usize {
    match (n, forward) {
        (0, _) => 0,
        (_, true) => (i + 1) % n,
        (_, false) => (i + n - 1) % n,
    }
}

impl AppState {
    /// The names the target row cycles through for `kind`.
    pub fn targets(&self, kind: TriggerKind) -> &[String] {
        match kind {
            TriggerKind::Service => &self.services,
            TriggerKind::Infra => &self.infra,
            TriggerKind::StackJob => &self.resources,
        }
    }

    /// `t`: opens the dialog on the selected run's service, or the first kind the
    /// project has anything of.
    pub fn open_trigger(&mut self) {
        let selected = self.selected_run().map(|r| r.service.clone());
        let kind = TriggerKind::ALL
            .into_iter()
            .find(|&k| !self.targets(k).is_empty());
        let Some(kind) = kind else {
            self.error("the project defines no services, infra projects or resources");
            return;
        };
        let target = selected
            .and_then(|name| self.targets(kind).iter().position(|n| *n == name))
            .unwrap_or(0);
        self.dialog = Some(Dialog::Trigger(TriggerForm::new(kind, target)));
    }

    /// A key while the trigger dialog is open.
    pub fn trigger_key(&mut self, mut f: TriggerForm, code: KeyCode) -> Option<Effect> {
        use TriggerField::*;
        let fields = f.fields();
        let at = fields.iter().position(|x| *x == f.field).unwrap_or(0);
        match (code, f.field) {
            (KeyCode::Esc, _) => return None,
            (KeyCode::Enter, _) => return self.submit(f),
            (KeyCode::Tab | KeyCode::Down, _) => f.field = fields[cycle(at, fields.len(), true)],
            (KeyCode::BackTab | KeyCode::Up, _) => f.field = fields[cycle(at, fields.len(), false)],
            (KeyCode::Left | KeyCode::Right | KeyCode::Char(' '), field) => {
                let fwd = code != KeyCode::Left;
                match field {
                    Kind => {
                        let k = TriggerKind::ALL.iter().position(|k| *k == f.kind);
                        let k = TriggerKind::ALL[cycle(k.unwrap_or(0), 3, fwd)];
                        f = TriggerForm {
                            field: Kind,
                            ..TriggerForm::new(k, 0)
                        };
                    }
                    Target => f.target = cycle(f.target, self.targets(f.kind).len(), fwd),
                    Action if f.kind == TriggerKind::Infra => f.undeploy = !f.undeploy,
                    Action => f.operation = cycle(f.operation, STACK_JOB_OPS.len(), fwd),
                    Branch => crate::tui::views::text_input(&mut f.branch, code),
                    Commit => crate::tui::views::text_input(&mut f.commit, code),
                }
            }
            (code, Branch) => crate::tui::views::text_input(&mut f.branch, code),
            (code, Commit) => crate::tui::views::text_input(&mut f.commit, code),
            _ => {}
        }
        self.dialog = Some(Dialog::Trigger(f));
        None
    }

    /// Enter: the run, or for undeploy and destroy the confirmation first.
    fn submit(&mut self, f: TriggerForm) -> Option<Effect> {
        let Some(name) = self.targets(f.kind).get(f.target).cloned() else {
            self.error(format!("no {} to run", f.kind.target_name()));
            return None;
        };
        let text = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
        match f.kind {
            TriggerKind::Service => Some(Effect::Trigger {
                service: name,
                branch: text(&f.branch),
                commit: text(&f.commit),
            }),
            TriggerKind::Infra if f.undeploy => {
                self.dialog = Some(Dialog::Confirm {
                    text: format!(
                        "Undeploy {name}? Every resource of the project is destroyed, \
                         dependents before what they depend on."
                    ),
                    effect: Effect::TriggerInfra {
                        project: name,
                        undeploy: true,
                    },
                });
                None
            }
            TriggerKind::Infra => Some(Effect::TriggerInfra {
                project: name,
                undeploy: false,
            }),
            TriggerKind::StackJob => {
                let effect = Effect::TriggerStackJob {
                    resource: name.clone(),
                    operation: f.op(),
                };
                if f.op() == Operation::Destroy {
                    self.dialog = Some(Dialog::Confirm {
                        text: format!(
                            "Destroy {name}? Its stack job plans the destruction, then \
                             destroys the resource."
                        ),
                        effect,
                    });
                    return None;
                }
                Some(effect)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> AppState {
        let mut s = AppState::new(vec!["web".into()], false, "/d".into());
        s.infra = vec!["net".into()];
        s.resources = vec!["vpc".into(), "db".into()];
        s
    }

    fn keys(s: &mut AppState, codes: &[KeyCode]) -> Option<Effect> {
        let mut last = None;
        for &c in codes {
            let Some(Dialog::Trigger(f)) = s.dialog.take() else {
                panic!("the dialog closed before {c:?}");
            };
            last = s.trigger_key(f, c);
        }
        last
    }

    #[test]
    fn every_run_kind_can_be_started() {
        use KeyCode::*;
        let mut s = state();
        s.open_trigger();
        // Up to the kind row, right: infra; enter deploys.
        assert_eq!(
            keys(&mut s, &[Up, Right, Enter]),
            Some(Effect::TriggerInfra {
                project: "net".into(),
                undeploy: false
            })
        );
        // Undeploy asks first.
        s.open_trigger();
        assert_eq!(keys(&mut s, &[Up, Right, Down, Down, Right, Enter]), None);
        assert!(matches!(
            &s.dialog,
            Some(Dialog::Confirm {
                effect: Effect::TriggerInfra { undeploy: true, .. },
                ..
            })
        ));
        // A stack job: the second resource, the second operation (update).
        s.open_trigger();
        assert_eq!(
            keys(&mut s, &[Up, Left, Down, Right, Down, Right, Enter]),
            Some(Effect::TriggerStackJob {
                resource: "db".into(),
                operation: Operation::Apply
            })
        );
        // Destroy asks first.
        s.open_trigger();
        assert_eq!(keys(&mut s, &[Up, Left, Down, Down, Left, Enter]), None);
        assert!(
            matches!(&s.dialog, Some(Dialog::Confirm { text, .. }) if text.starts_with("Destroy vpc?"))
        );
    }

    #[test]
    fn a_project_without_anything_to_run_says_so() {
        let mut s = AppState::new(vec![], false, "/d".into());
        s.open_trigger();
        assert!(s.dialog.is_none());
        assert!(s.message.as_ref().is_some_and(|m| m.0));
    }
}
