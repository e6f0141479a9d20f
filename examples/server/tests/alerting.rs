//! `serve --alerts FILE`: thresholds from the file reach the detectors, alerts reach the
//! webhook whose URL is in the vault, and every misconfiguration stops the start-up.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use procuhelp_audit::{
    Action, Actor, Alert, AlertKind, AlertingSink, AuditEvent, AuditSink as _, MemorySink, Outcome,
};
use procuhelp_core::vault::{FileVault, SecretName, SecretProvider};
use procuhelp_core::{OrgId, OutboundPolicy, SecretBytes, UserId};
use procuhelp_server::alerting::AlertsFile;

/// The production outbound policy, and the operator's test door (the receiver below runs
/// on loopback: `serve --dangerous-allow-loopback-fetch`).
const PUBLIC: OutboundPolicy = OutboundPolicy::public_only();
const LOOPBACK: OutboundPolicy = OutboundPolicy::dangerous_allow_loopback_for_tests();

struct Scratch {
    dir: std::path::PathBuf,
    vault: FileVault,
}

impl Scratch {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("ph-alerts-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let vault = FileVault::open_or_create(&dir.join("vault")).unwrap();
        Self { dir, vault }
    }

    fn file(&self, json: &str) -> anyhow::Result<AlertsFile> {
        let path = self.dir.join("alerts.json");
        std::fs::write(&path, json).unwrap();
        AlertsFile::read(&path)
    }

    async fn secret(&self, name: &str, value: &str) {
        self.vault
            .put(
                &SecretName::new(name).unwrap(),
                SecretBytes::new(value.as_bytes().to_vec()),
            )
            .await
            .unwrap();
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn failed_sign_in(org: OrgId, n: u8) -> AuditEvent {
    let user = UserId::new();
    AuditEvent::new(
        Some(org),
        Actor::User { id: user },
        Action::LoginFailed,
        Outcome::Failure,
    )
    .source(Some([203, 0, 113, 9].into()), Some("spray/1.0"))
    .person(user, Some(&format!("victim{n}@example.com")), None)
}

#[tokio::test]
async fn thresholds_from_the_file_fire_and_the_webhook_from_the_vault_receives_the_alert() {
    let received: Arc<Mutex<Vec<Alert>>> = Arc::default();
    let app = axum::Router::new()
        .route(
            "/hook/s3cr3t-token",
            axum::routing::post(
                |axum::extract::State(rx): axum::extract::State<Arc<Mutex<Vec<Alert>>>>,
                 axum::Json(alert): axum::Json<Alert>| async move {
                    rx.lock().unwrap().push(alert);
                    axum::http::StatusCode::NO_CONTENT
                },
            ),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let s = Scratch::new();
    s.secret(
        "alerts/webhook-url",
        &format!("http://{addr}/hook/s3cr3t-token"),
    )
    .await;
    let file = s
        .file(
            r#"{
                "failed_sign_ins_per_source": { "threshold": 3, "window_secs": 60 },
                "failed_sign_ins_per_account": { "threshold": 0, "window_secs": 0 },
                "traffic_spike": { "enabled": false },
                "webhook": { "url_secret": "alerts/webhook-url" }
            }"#,
        )
        .unwrap();
    let config = file.config();
    assert_eq!(config.per_source.threshold, 3);
    assert_eq!(config.per_source.window, time::Duration::seconds(60));
    assert_eq!(config.per_account.threshold, 0);
    assert!(!config.traffic.enabled);
    // Untouched settings keep the documented defaults.
    assert_eq!(config.per_org.threshold, 50);
    assert!(config.errors.enabled);

    assert_eq!(file.webhook_secret(), Some("alerts/webhook-url"));
    let alerting = file.build(&s.vault, LOOPBACK, &outbox()).await.unwrap();
    assert!(!format!("{alerting:?}").contains("s3cr3t"));
    let sink = AlertingSink::new(MemorySink::new(), alerting.detectors, alerting.sink, 16);
    let org = OrgId::new();
    // Two failures from the address: under the file's threshold (the default is 20).
    for n in 0..2 {
        sink.record(failed_sign_in(org, n)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(received.lock().unwrap().is_empty());
    sink.record(failed_sign_in(org, 2)).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while received.lock().unwrap().is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let alerts = received.lock().unwrap().clone();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].kind, AlertKind::FailedLoginsPerSource);
    assert_eq!((alerts[0].count, alerts[0].threshold), (3, 3));
    assert_eq!(alerts[0].org, Some(org));
    let body = serde_json::to_string(&alerts[0]).unwrap();
    assert!(
        !body.contains("victim"),
        "no personal data in alerts: {body}"
    );
    server.abort();
}

#[tokio::test]
async fn every_misconfiguration_stops_the_start_up() {
    let s = Scratch::new();
    // A misspelt threshold is an error naming it, not a silent default.
    let err = s
        .file(r#"{ "failed_sign_ins_per_adress": { "threshold": 3, "window_secs": 60 } }"#)
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("failed_sign_ins_per_adress"),
        "{err:#}"
    );
    let err = s
        .file(r#"{ "traffic_spike": { "factr": 2.0 } }"#)
        .unwrap_err();
    assert!(format!("{err:#}").contains("factr"), "{err:#}");
    assert!(s.file("not json").is_err());
    // A value in the wrong place is reported by position, never quoted (it could be a
    // pasted URL with its token).
    let err = s
        .file(r#"{ "failed_sign_ins_per_org": { "threshold": "https://x.example/?t=s3cr3t", "window_secs": 1 } }"#)
        .unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("invalid value at line 1"), "{text}");
    assert!(!text.contains("s3cr3t"), "{text}");
    assert!(
        s.file(&format!("{{\"lockouts\": true{}}}", " ".repeat(70_000)))
            .is_err()
    );
    // Values the detectors refuse.
    for bad in [
        r#"{ "traffic_spike": { "factor": 0.5 } }"#,
        r#"{ "error_spike": { "smoothing": 0 } }"#,
        r#"{ "failed_sign_ins_per_org": { "threshold": 5, "window_secs": 0 } }"#,
        r#"{ "max_tracked_keys": 10000000, "failed_sign_ins_per_org": { "threshold": 100, "window_secs": 60 } }"#,
    ] {
        let file = s.file(bad).unwrap();
        assert!(
            file.build(&s.vault, PUBLIC, &outbox()).await.is_err(),
            "{bad} was accepted"
        );
    }
    // Webhooks: a missing secret, a URL that is not one, plain http off loopback, https
    // without the receiver's CA. None of the errors quotes the URL.
    let webhook = r#"{ "webhook": { "url_secret": "alerts/hook" } }"#;
    let err = s
        .file(webhook)
        .unwrap()
        .build(&s.vault, PUBLIC, &outbox())
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("alerts/hook"), "{err:#}");
    for (url, why) in [
        ("not a url s3cr3t", "is not a URL"),
        ("http://alerts.example/hook?t=s3cr3t", "must be https"),
        ("ftp://127.0.0.1/s3cr3t", "must be https"),
        ("https://alerts.example/hook?t=s3cr3t", "needs ca_file"),
    ] {
        s.secret("alerts/hook", url).await;
        let err = s
            .file(webhook)
            .unwrap()
            .build(&s.vault, PUBLIC, &outbox())
            .await
            .unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains(why), "{url}: {text}");
        assert!(!text.contains("s3cr3t"), "{text}");
    }
    s.secret("alerts/hook", "https://alerts.example/hook").await;
    let no_cert = s.dir.join("empty.pem");
    std::fs::write(&no_cert, "").unwrap();
    let with_ca = format!(
        r#"{{ "webhook": {{ "url_secret": "alerts/hook", "ca_file": "{}" }} }}"#,
        no_cert.display()
    );
    let err = s
        .file(&with_ca)
        .unwrap()
        .build(&s.vault, PUBLIC, &outbox())
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("holds no certificate"),
        "{err:#}"
    );
}

/// Issue #11: the webhook is held to the same outbound policy as every fetch the server
/// makes — no loopback, private, link-local or metadata address (nor an IPv4-mapped
/// spelling of one), unless the operator passed the loopback flag (tests only). The
/// error names the rule, never the URL.
#[tokio::test]
async fn a_webhook_on_an_internal_address_is_refused_without_the_operator_flag() {
    let s = Scratch::new();
    let webhook = r#"{ "webhook": { "url_secret": "alerts/hook" } }"#;
    for url in [
        "http://127.0.0.1:9/hook?t=s3cr3t",
        "http://localhost:9/hook?t=s3cr3t",
        "http://[::ffff:127.0.0.1]:9/hook?t=s3cr3t",
        "https://169.254.169.254/hook?t=s3cr3t",
        "https://10.0.0.8/hook?t=s3cr3t",
        "https://[::ffff:10.0.0.8]/hook?t=s3cr3t",
    ] {
        s.secret("alerts/hook", url).await;
        let err = s
            .file(webhook)
            .unwrap()
            .build(&s.vault, PUBLIC, &outbox())
            .await
            .unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("destination not allowed"), "{url}: {text}");
        assert!(!text.contains("s3cr3t"), "{text}");
    }
}

/// A fresh directory for the webhook's persisted queue.
fn outbox() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("ph-outbox-{}", uuid::Uuid::new_v4().simple()))
}
