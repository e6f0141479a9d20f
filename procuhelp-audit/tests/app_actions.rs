#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The embedding application's own actions (`Action::app`): a bad name is a typed error
//! (never a panic, never an SDK action), and a good one round-trips through the
//! PostgreSQL chain, its read filter, a sealed export with pinned verification, and an
//! import — stored and exported as `app.<name>`.

mod common;

use common::Fixture;
use procuhelp_audit::{
    Action, Actor, AppAction, AppActionError, AuditEvent, AuditSink, EventQuery, ExportFormat,
    ExportRange, JsonLinesFileSink, Outcome, verify_export,
};
use procuhelp_core::{OrgId, UserId};
use proptest::prelude::*;

const CLAIM_CREATED: Action = procuhelp_audit::app_action!("claim.created");

/// The documented shape, written independently of the crate's parser.
fn well_formed(name: &str) -> bool {
    let segment_ok = |s: &str| {
        let mut bytes = s.bytes();
        bytes.next().is_some_and(|b| b.is_ascii_lowercase())
            && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    name.len() <= AppAction::MAX_NAME_BYTES
        && name.split('.').count() >= 2
        && name.split('.').all(segment_ok)
}

/// Names near the edge: mostly the allowed bytes, some not, lengths around the limit.
fn names() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9_.]{0,60}",
        "[a-z][a-z0-9_]{0,20}(\\.[a-z][a-z0-9_]{0,20}){1,3}",
        "[a-zA-Z0-9_. \\-/:\u{e9}\\x00]{0,56}",
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Accepted exactly when well formed; refused with a typed error otherwise; an
    /// accepted name is stored as `app.<name>` and parses back to itself.
    #[test]
    fn names_are_accepted_exactly_when_well_formed(name in names()) {
        match Action::app(&name) {
            Ok(action) => {
                prop_assert!(well_formed(&name), "{name:?} accepted");
                let stored = format!("app.{name}");
                prop_assert_eq!(action.as_str(), stored.as_str());
                prop_assert_eq!(stored.parse::<Action>(), Ok(action));
                prop_assert!(!Action::ALL.contains(&action));
                prop_assert!(matches!(action, Action::App(a) if a.name() == name));
            }
            Err(e) => prop_assert!(!well_formed(&name), "{name:?} refused: {e}"),
        }
    }

    /// Any stored string parses to an SDK action, an application action (only under
    /// `app.`), or a typed error carrying the length only.
    #[test]
    fn stored_strings_never_panic_and_app_needs_its_prefix(s in prop_oneof![
        names(),
        names().prop_map(|n| format!("app.{n}")),
    ]) {
        match s.parse::<Action>() {
            Ok(Action::App(app)) => {
                prop_assert!(s.starts_with("app."));
                prop_assert_eq!(app.as_str(), s.as_str());
            }
            Ok(sdk) => prop_assert!(Action::ALL.contains(&sdk) && !s.starts_with("app.")),
            Err(e) => prop_assert_eq!(e.len, s.len()),
        }
    }
}

#[test]
fn sdk_names_cannot_be_impersonated() {
    for sdk in Action::ALL {
        // An application may pick an SDK action's name; it is recorded apart from it.
        let app = Action::app(sdk.as_str()).unwrap();
        assert_ne!(app, *sdk);
        assert_eq!(app.as_str(), format!("app.{sdk}"));
        assert_eq!(sdk.as_str().parse::<Action>(), Ok(*sdk));
    }
    assert_eq!(
        Action::app("app"),
        Err(AppActionError::NoArea),
        "one segment"
    );
    assert_eq!(
        Action::app(&"a.b".repeat(17)),
        Err(AppActionError::TooLong { len: 51 })
    );
}

fn claim(org: OrgId, user: UserId, n: u64) -> AuditEvent {
    AuditEvent::new(
        Some(org),
        Actor::User { id: user },
        CLAIM_CREATED,
        Outcome::Success,
    )
    .target(format!("expense_claim:{n}"))
    .context(serde_json::json!({ "amount_cents": n * 100 }))
}

/// Application events are chained, filtered, exported (sealed, verified against the
/// pinned key) and imported as `app.claim.created`, next to SDK events.
#[tokio::test]
async fn app_actions_round_trip_through_the_chain_export_verify_and_import() {
    let f = Fixture::new().await;
    let sink = f.sink();
    let user = UserId::new();
    let approved = Action::app("claim.approved").unwrap();
    sink.record(claim(f.a, user, 1)).await.unwrap();
    sink.record(common::event(f.a, 2)).await.unwrap();
    sink.record(
        AuditEvent::new(
            Some(f.a),
            Actor::User { id: user },
            approved,
            Outcome::Denied,
        )
        .target("expense_claim:1"),
    )
    .await
    .unwrap();
    // In the caller's transaction too (the way a handler records before its commit).
    let mut tx = f.db.begin(f.a).await.unwrap();
    sink.append_in_tx(&mut tx, &claim(f.a, user, 4))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // Read back, filtered by the application action.
    let access = |action| {
        AuditEvent::new(
            Some(f.a),
            Actor::User { id: user },
            action,
            Outcome::Success,
        )
    };
    let query = EventQuery {
        action: Some(CLAIM_CREATED),
        limit: 100,
        ..Default::default()
    };
    let read = sink
        .read_events(access(Action::AuditRead), &query)
        .await
        .unwrap();
    let seqs: Vec<(u64, Action)> = read.iter().map(|s| (s.event.seq, s.event.action)).collect();
    assert_eq!(seqs, [(1, CLAIM_CREATED), (4, CLAIM_CREATED)]);

    // The live chain verifies.
    let trust = common::pinned(&sink).await;
    let live = sink.verify_live(f.a, &trust).await.unwrap();
    assert!(live.is_intact(), "{live:?}");

    // A sealed export holds the stored strings and verifies against the pinned key.
    let mut out = Vec::new();
    sink.export(
        access(Action::AuditExported),
        ExportRange::default(),
        ExportFormat::JsonLines,
        &mut out,
    )
    .await
    .unwrap();
    let file = String::from_utf8(out).unwrap();
    let report = verify_export(file.as_bytes(), &common::pinned(&sink).await).unwrap();
    assert!(report.is_intact(), "{report:?}");
    let actions: Vec<String> = file
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["action"].as_str().map(str::to_owned))
        .collect();
    for expected in [
        "app.claim.created",
        "app.claim.approved",
        "supplier.updated",
    ] {
        assert!(
            actions.iter().any(|a| a == expected),
            "{expected} in {actions:?}"
        );
    }
    // An application action edited into an invalid one is bad input, as any unknown
    // action is (the line is named, nothing is echoed).
    let tampered = file.replacen("app.claim.approved", "app.Claim.approved", 1);
    match verify_export(tampered.as_bytes(), &trust) {
        Err(procuhelp_audit::AuditError::BadInput { reason, .. }) => {
            assert_eq!(reason, "unknown action")
        }
        other => panic!("expected bad input, got {other:?}"),
    }
    // Edited into another valid application action: the chain breaks at that event.
    let swapped = file.replacen("app.claim.approved", "app.claim.approvec", 1);
    let report = verify_export(swapped.as_bytes(), &trust).unwrap();
    assert_eq!(report.problem.map(|p| p.seq), Some(3));

    // A JSON-lines copy (the file sink) imports into the chain; it still verifies.
    let dir = std::env::temp_dir().join(format!("ph-app-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("copy.jsonl");
    let copy = JsonLinesFileSink::open(&path).unwrap();
    copy.record(claim(f.a, user, 10)).await.unwrap();
    copy.record(claim(f.a, user, 11)).await.unwrap();
    let imported = sink
        .import_file(f.a, &std::fs::read(&path).unwrap(), Actor::System, "test")
        .await
        .unwrap();
    assert_eq!(imported.events, 2);
    let read = sink
        .read_events(access(Action::AuditRead), &query)
        .await
        .unwrap();
    let targets: Vec<Option<&str>> = read.iter().map(|s| s.event.target.as_deref()).collect();
    assert_eq!(
        targets,
        [
            Some("expense_claim:1"),
            Some("expense_claim:4"),
            Some("expense_claim:10"),
            Some("expense_claim:11")
        ]
    );
    let live = sink.verify_live(f.a, &trust).await.unwrap();
    assert!(live.is_intact(), "{live:?}");

    std::fs::remove_dir_all(&dir).ok();
    f.teardown().await;
}
