//! A group's row (a resource above its operations) summarises its units.

use crate::domain::{StepInfo, StepStatus};

/// What decides a group's row apart from its units' rows.
#[derive(Debug, Clone, Default)]
pub(super) struct GroupState {
    /// Set when the group ended on its own account: its preparation failed, or the
    /// gate after it said no.
    pub verdict: Option<(StepStatus, String)>,
    /// The gate after one of its units is waiting.
    pub gate_waiting: bool,
    /// [`super::Executor::finish_group`] has run.
    pub finished: bool,
}

/// The group's status and reason, from its units' rows (first rule that applies).
pub(super) fn status(members: &[&StepInfo], g: &GroupState) -> (StepStatus, Option<String>) {
    use StepStatus::*;
    if let Some((s, why)) = &g.verdict {
        return (*s, Some(why.clone()));
    }
    let find = |f: &dyn Fn(StepStatus) -> bool| members.iter().find(|m| f(m.status));
    if let Some(m) = find(&|s| matches!(s, Failed | Interrupted)) {
        let why = m.reason.as_deref().unwrap_or("failed");
        return (Failed, Some(format!("{} {why}", m.name)));
    }
    if let Some(m) = find(&|s| s == Rejected) {
        return (Rejected, m.reason.clone());
    }
    if let Some(m) = find(&|s| s == AwaitingApproval) {
        return (AwaitingApproval, m.reason.clone());
    }
    if g.gate_waiting {
        return (AwaitingApproval, None);
    }
    if find(&|s| matches!(s, Running | Queued)).is_some() {
        return (Running, None);
    }
    if members.iter().all(|m| m.status.is_terminal()) {
        if let Some(m) = find(&|s| s == Cancelled) {
            return (Cancelled, m.reason.clone());
        }
        if let Some(first) = members.first()
            && members.iter().all(|m| m.status == Skipped)
        {
            return (Skipped, first.reason.clone());
        }
        return (Succeeded, None);
    }
    if members.iter().any(|m| m.status.is_terminal()) {
        (Running, None)
    } else {
        (Pending, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Stage;

    fn step(name: &str, status: StepStatus, reason: Option<&str>) -> StepInfo {
        StepInfo {
            stage: Stage::Operation,
            name: name.into(),
            reason: reason.map(str::to_string),
            ..StepInfo::sample(0, 1, status)
        }
    }

    #[test]
    fn a_group_reads_its_units() {
        use StepStatus::*;
        let g = GroupState::default();
        let st = |ms: &[StepInfo]| status(&ms.iter().collect::<Vec<_>>(), &g);
        assert_eq!(st(&[step("a.init", Pending, None)]), (Pending, None));
        let failed = [
            step("a.init", Succeeded, None),
            step("a.apply", Failed, Some("exited with code 2")),
        ];
        assert_eq!(
            st(&failed),
            (Failed, Some("a.apply exited with code 2".into()))
        );
        let paused = [
            step("a.preview", Succeeded, None),
            step("a.apply", AwaitingApproval, Some("plan: 1 to add")),
        ];
        assert_eq!(
            st(&paused),
            (AwaitingApproval, Some("plan: 1 to add".into()))
        );
        let waived = [
            step("a.refresh", Skipped, Some("policy")),
            step("a.apply", Succeeded, None),
        ];
        assert_eq!(st(&waived), (Succeeded, None));
        let skipped = [
            step("a.init", Skipped, Some("upstream failed: resource/b")),
            step("a.apply", Skipped, Some("upstream failed: resource/b")),
        ];
        assert_eq!(
            st(&skipped),
            (Skipped, Some("upstream failed: resource/b".into()))
        );
        let half = [
            step("a.init", Succeeded, None),
            step("a.apply", Pending, None),
        ];
        assert_eq!(st(&half), (Running, None));
        let verdict = GroupState {
            verdict: Some((Rejected, "node gate rejected by bob".into())),
            ..Default::default()
        };
        assert_eq!(
            status(&[&step("a.apply", Succeeded, None)], &verdict).0,
            Rejected
        );
    }
}
