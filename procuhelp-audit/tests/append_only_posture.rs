//! The posture check guards the audit trail's append-only triggers (the audit tables are
//! this crate's; the check is procuhelp-tenancy's): a disabled, replica-only or dropped
//! guard is reported. (Moved from procuhelp-tenancy's posture tests when each crate took
//! its own migrations.)
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use procuhelp_tenancy::migrate::Schema;
use procuhelp_tenancy::posture::{self, Problem};
use procuhelp_tenancy::testkit::ScratchDb;
use procuhelp_tenancy::{Error, PostureFinding};

/// Migrates tenancy + audit in a scratch database, applies `sabotage` as the superuser
/// and returns what the posture check finds as the runtime role.
async fn findings_after(sabotage: &str) -> Vec<PostureFinding> {
    let scratch = ScratchDb::migrated_with(&Schema::new().with(procuhelp_audit::MIGRATIONS))
        .await
        .unwrap();
    let admin = scratch.admin_pool(1).await.unwrap();
    sqlx::raw_sql(sabotage).execute(&admin).await.unwrap();
    let runtime = scratch.runtime_pool(1).await.unwrap();
    let result = posture::check(&runtime).await;
    runtime.close().await;
    admin.close().await;
    scratch.drop_all().await.unwrap();
    match result {
        Ok(()) => Vec::new(),
        Err(Error::Posture(e)) => e.findings,
        Err(other) => panic!("posture check errored instead of reporting: {other}"),
    }
}

fn has(findings: &[PostureFinding], object: &str, problem: Problem) -> bool {
    findings
        .iter()
        .any(|f| f.object == object && f.problem == problem)
}

#[tokio::test]
async fn disabled_audit_trigger_is_reported() {
    // The table owner may DISABLE the append-only triggers without dropping anything.
    let f = findings_after("ALTER TABLE app.audit_events DISABLE TRIGGER audit_events_append_only")
        .await;
    assert_eq!(
        f,
        vec![
            PostureFinding {
                object: "trigger audit_events_append_only on app.audit_events".into(),
                problem: Problem::TriggerDisabled
            },
            // The only UPDATE/DELETE guard is off, so the table is unguarded too.
            PostureFinding {
                object: "table app.audit_events".into(),
                problem: Problem::AppendOnlyGuardMissing
            }
        ]
    );
    // REPLICA triggers fire only in replication sessions: as good as disabled.
    let f = findings_after(
        "ALTER TABLE app.audit_checkpoints ENABLE REPLICA TRIGGER audit_checkpoints_no_truncate",
    )
    .await;
    assert!(
        has(
            &f,
            "trigger audit_checkpoints_no_truncate on app.audit_checkpoints",
            Problem::TriggerDisabled
        ),
        "{f:?}"
    );
    // Dropped rather than disabled: the append-only guard is missing.
    let f = findings_after("DROP TRIGGER audit_events_no_truncate ON app.audit_events").await;
    assert!(
        has(
            &f,
            "table app.audit_events",
            Problem::AppendOnlyGuardMissing
        ),
        "{f:?}"
    );
}
