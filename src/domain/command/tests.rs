use super::*;
use crate::domain::RunStatus;

/// One value of every arm (a new arm that is not added here fails to compile
/// in `every_arm_is_listed`).
fn every_request() -> Vec<Request> {
    vec![
        Request::Trigger(TriggerRequest {
            service: "web".into(),
            branch: Some("main".into()),
            commit: None,
            allow_older: true,
        }),
        Request::TriggerInfra {
            project: "net".into(),
            undeploy: true,
        },
        Request::TriggerStackJob {
            resource: "db".into(),
            infra: Some("net".into()),
            operation: "preview".into(),
            targets: vec!["terraform_data.a".into()],
        },
        Request::StateJob {
            resource: "db".into(),
            infra: None,
            op: crate::domain::state_op::StateOp::Mv {
                from: crate::domain::state_op::Address::parse("terraform_data.a").unwrap(),
                to: crate::domain::state_op::Address::parse("module.m.terraform_data.a").unwrap(),
            },
        },
        Request::Cancel { run_id: 3 },
        Request::Rerun {
            run_id: 4,
            allow_older: false,
        },
        Request::Decide {
            run_id: 5,
            env: "staging/db".into(),
            decision: Decision::Reject,
            comment: Some("not today".into()),
        },
        Request::ListRuns {
            filter: RunFilter {
                id: None,
                service: Some("web".into()),
                status: Some(RunStatus::AwaitingApproval),
                limit: Some(10),
            },
        },
        Request::Detail { run_id: 6 },
        Request::WaitingGates,
        Request::Audit { run_id: 7 },
        Request::AuditLog { limit: 12 },
        Request::Queues {
            service: Some("web".into()),
        },
        Request::Logs {
            run_id: 8,
            step_id: 9,
            from: 10,
            limit: 11,
        },
        Request::LogCount {
            run_id: 8,
            step_id: 9,
        },
        Request::SearchLog {
            run_id: 8,
            step_id: 9,
            from: 12,
            needle: "error".into(),
            backward: true,
        },
        Request::Preflight {
            resource: "db".into(),
            infra: None,
        },
        Request::InfraDrift {
            project: "net".into(),
        },
        Request::Catalog,
        Request::Reload,
        Request::ConfigStatus,
        Request::Gc { dry_run: true },
        Request::Triggers,
        Request::ListReleases {
            service: Some("web".into()),
            limit: Some(5),
        },
        Request::ShowRelease { release: 3 },
        Request::ListStations,
        Request::PinRelease {
            release: 3,
            stations: vec!["edge-1".into()],
        },
        Request::UnpinStations {
            stations: vec!["edge-1".into()],
        },
        Request::PromoteRelease { release: 4 },
        Request::Rollback {
            service: "web".into(),
        },
        Request::DeleteRelease { release: 5 },
        Request::StationExec {
            station: "edge-1".into(),
            argv: vec!["cat".into(), "VERSION".into()],
        },
        Request::Whoami,
        Request::DriftResults {
            project: Some("net".into()),
        },
    ]
}

#[test]
fn every_arm_is_listed() {
    for r in every_request() {
        // Exhaustive on purpose: a new arm must be added to `every_request`.
        match r {
            Request::Trigger(_)
            | Request::TriggerInfra { .. }
            | Request::TriggerStackJob { .. }
            | Request::StateJob { .. }
            | Request::Cancel { .. }
            | Request::Rerun { .. }
            | Request::Decide { .. }
            | Request::ListRuns { .. }
            | Request::Detail { .. }
            | Request::WaitingGates
            | Request::Audit { .. }
            | Request::AuditLog { .. }
            | Request::Queues { .. }
            | Request::Logs { .. }
            | Request::LogCount { .. }
            | Request::SearchLog { .. }
            | Request::Preflight { .. }
            | Request::InfraDrift { .. }
            | Request::DriftResults { .. }
            | Request::Catalog
            | Request::Reload
            | Request::ConfigStatus
            | Request::Gc { .. }
            | Request::Triggers
            | Request::ListReleases { .. }
            | Request::ShowRelease { .. }
            | Request::ListStations
            | Request::PinRelease { .. }
            | Request::UnpinStations { .. }
            | Request::PromoteRelease { .. }
            | Request::Rollback { .. }
            | Request::DeleteRelease { .. }
            | Request::StationExec { .. }
            | Request::Whoami => {}
        }
    }
    assert_eq!(every_request().len(), 34);
}

#[test]
fn every_request_round_trips_through_json() {
    for r in every_request() {
        let json = serde_json::to_string(&r).unwrap();
        let back: Request = serde_json::from_str(&json).unwrap();
        assert_eq!(format!("{back:?}"), format!("{r:?}"), "{json}");
    }
}

#[test]
fn a_request_cannot_name_its_actor() {
    for body in [
        r#"{"request":"cancel","run_id":1,"by":"mallory"}"#,
        r#"{"request":"decide","run_id":1,"env":"prod","decision":"approve","by":"mallory"}"#,
        r#"{"request":"trigger","service":"web","triggered_by":"mallory"}"#,
        r#"{"request":"trigger_infra","project":"net","by":"mallory"}"#,
    ] {
        let err = serde_json::from_str::<Request>(body).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{body}: {err}");
    }
    // Optional fields may be left out.
    let r: Request = serde_json::from_str(r#"{"request":"trigger","service":"web"}"#).unwrap();
    assert!(matches!(r, Request::Trigger(t) if t.branch.is_none() && t.commit.is_none()));
}

#[test]
fn responses_round_trip_and_unwrap_to_their_type() {
    let r = Response::LogCount(42);
    let json = serde_json::to_string(&r).unwrap();
    assert_eq!(json, r#"{"response":"log_count","value":42}"#);
    let back: Response = serde_json::from_str(&json).unwrap();
    assert_eq!(u64::try_from(back.clone()), Ok(42));
    assert_eq!(
        Vec::<GateInfo>::try_from(back),
        Err(UnexpectedResponse {
            want: "gates",
            got: "log_count"
        })
    );
    let p = Response::Preflight(PreflightReport {
        project: "net".into(),
        resource: "db".into(),
        driver: "command".into(),
        checks: vec![Check {
            name: "state".into(),
            ok: true,
            detail: "ok".into(),
        }],
    });
    let back: Response = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
    assert_eq!(back, p);
}
