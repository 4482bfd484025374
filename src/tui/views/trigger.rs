//! The trigger dialog: a row per field of the kind chosen (a service run, an infra
//! pipeline, a stack job), the cursor's row marked.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;

use super::accent;
use super::dialogs::popup;
use crate::tui::app::{AppState, TriggerField, TriggerForm, TriggerKind};

pub fn render(f: &mut Frame, s: &AppState, form: &TriggerForm, area: Rect) {
    let (l, r) = if s.ascii { ("<", ">") } else { ("◀", "▶") };
    let mark = |x: TriggerField| {
        if x == form.field {
            if s.ascii { "> " } else { "▶ " }
        } else {
            "  "
        }
    };
    let targets = s.targets(form.kind);
    let target = match targets.get(form.target) {
        Some(t) => format!("{l} {t} {r}  ({} of {})", form.target + 1, targets.len()),
        None => format!("(the project defines no {})", form.kind.target_name()),
    };
    let or = |v: &str, default: &str| {
        if v.is_empty() {
            default.to_string()
        } else {
            v.to_string()
        }
    };
    let mut lines = vec![
        Line::from(format!(
            "{}kind:      {l} {} {r}",
            mark(TriggerField::Kind),
            form.kind.name()
        )),
        Line::from(format!(
            "{}{:<10} {target}",
            mark(TriggerField::Target),
            format!("{}:", form.kind.target_name())
        )),
    ];
    match form.kind {
        TriggerKind::Service => {
            lines.push(Line::from(format!(
                "{}branch:    {}",
                mark(TriggerField::Branch),
                or(&form.branch, "(the service's default branch)")
            )));
            lines.push(Line::from(format!(
                "{}commit:    {}",
                mark(TriggerField::Commit),
                or(&form.commit, "(the head of the branch)")
            )));
        }
        TriggerKind::Infra => lines.push(Line::from(format!(
            "{}action:    {l} {} {r}",
            mark(TriggerField::Action),
            if form.undeploy {
                "undeploy (destroys every resource)"
            } else {
                "deploy"
            }
        ))),
        TriggerKind::StackJob => {
            let op = form.op();
            let what = match op.job_verb() {
                "update" => "update (init, refresh, preview, apply)",
                "destroy" => "destroy (init, refresh, preview, destroy)",
                "preview" => "preview (plan only)",
                _ => "refresh (state only)",
            };
            lines.push(Line::from(format!(
                "{}operation: {l} {what} {r}",
                mark(TriggerField::Action)
            )));
        }
    }
    lines.push(Line::from(""));
    lines.push(Line::styled(
        "tab/↑↓: field  ←/→: choose  enter: trigger  esc: cancel",
        accent(s),
    ));
    let h = lines.len() as u16 + 2;
    popup(f, s, area, "trigger a run", lines, h);
}
