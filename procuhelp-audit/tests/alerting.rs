#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Alerting on synthetic event streams, the wrapper sink, and webhook delivery with retries.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use procuhelp_audit::{
    Action, Actor, Alert, AlertConfig, AlertKey, AlertKind, AlertSink, AlertingSink, AuditEvent,
    AuditSink, Detectors, LogAlertSink, MemorySink, Outcome, WebhookAlertSink, WebhookConfig,
};
use procuhelp_core::{OrgId, UserId};
use time::{Duration, OffsetDateTime};

fn t0() -> OffsetDateTime {
    time::macros::datetime!(2026-03-02 09:00 UTC)
}

fn ip(n: u8) -> IpAddr {
    IpAddr::from([198, 51, 100, n])
}

fn failed(org: OrgId, user: Option<UserId>, from: IpAddr, at: OffsetDateTime) -> AuditEvent {
    let actor = user.map_or(Actor::System, |id| Actor::User { id });
    let mut e = AuditEvent::new(Some(org), actor, Action::LoginFailed, Outcome::Failure)
        .source(Some(from), Some("curl/8"))
        .at(at);
    if let Some(u) = user {
        e = e.person(u, Some("someone@example.com"), None);
    }
    e
}

fn ok(org: OrgId, user: UserId, from: IpAddr, at: OffsetDateTime) -> AuditEvent {
    AuditEvent::new(
        Some(org),
        Actor::User { id: user },
        Action::LoginSucceeded,
        Outcome::Success,
    )
    .source(Some(from), None)
    .person(user, None, None)
    .at(at)
}

fn run(d: &mut Detectors, events: &[AuditEvent]) -> Vec<Alert> {
    events.iter().flat_map(|e| d.observe(e)).collect()
}

fn kinds(alerts: &[Alert]) -> Vec<AlertKind> {
    alerts.iter().map(|a| a.kind).collect()
}

#[test]
fn password_spraying_burst_triggers_the_per_address_alert() {
    let mut d = Detectors::new(AlertConfig::default()).unwrap();
    let org = OrgId::new();
    let attacker = ip(66);
    // 40 different accounts, one attempt each, from one address within 40 seconds.
    let events: Vec<_> = (0..40)
        .map(|i| {
            failed(
                org,
                Some(UserId::new()),
                attacker,
                t0() + Duration::seconds(i),
            )
        })
        .collect();
    let alerts = run(&mut d, &events);
    let per_source: Vec<_> = alerts
        .iter()
        .filter(|a| a.kind == AlertKind::FailedLoginsPerSource)
        .collect();
    assert_eq!(per_source.len(), 1, "{alerts:#?}");
    let a = per_source[0];
    assert_eq!(a.key, AlertKey::Source { address: attacker });
    assert_eq!(a.org, Some(org));
    assert_eq!((a.count, a.threshold, a.window_secs), (20, 20, 300));
    assert_eq!(a.first_at, t0());
    assert_eq!(a.last_at, t0() + Duration::seconds(19));
    // One attempt per account: no per-account alert; no e-mail address in any alert.
    assert!(!kinds(&alerts).contains(&AlertKind::FailedLoginsPerAccount));
    for a in &alerts {
        let json = serde_json::to_string(a).unwrap();
        assert!(!json.contains("example.com"), "{json}");
    }
}

#[test]
fn brute_force_on_one_account_triggers_the_per_account_alert() {
    let mut d = Detectors::new(AlertConfig::default()).unwrap();
    let (org, victim) = (OrgId::new(), UserId::new());
    // Five guesses from five addresses (a botnet) within two minutes.
    let events: Vec<_> = (0..5u8)
        .map(|i| {
            failed(
                org,
                Some(victim),
                ip(i),
                t0() + Duration::seconds(25 * i64::from(i)),
            )
        })
        .collect();
    let alerts = run(&mut d, &events);
    assert_eq!(
        kinds(&alerts),
        vec![AlertKind::FailedLoginsPerAccount],
        "{alerts:#?}"
    );
    assert_eq!(
        alerts[0].key,
        AlertKey::Account {
            subject: victim.to_string()
        }
    );
    assert_eq!(alerts[0].count, 5);
}

#[test]
fn normal_traffic_triggers_nothing() {
    let mut d = Detectors::new(AlertConfig::default()).unwrap();
    let org = OrgId::new();
    let users: Vec<UserId> = (0..50).map(|_| UserId::new()).collect();
    let mut events = Vec::new();
    // Two hours: 30 events a minute (sign-ins and ordinary work), and a mistyped
    // password every ten minutes or so, twice in a row for some users.
    for minute in 0..120i64 {
        for k in 0..30i64 {
            let user = users[((minute * 30 + k) % 50) as usize];
            let at = t0() + Duration::minutes(minute) + Duration::seconds(2 * k);
            let addr = ip(((minute * 30 + k) % 50) as u8);
            events.push(if k % 3 == 0 {
                ok(org, user, addr, at)
            } else {
                AuditEvent::new(
                    Some(org),
                    Actor::User { id: user },
                    Action::SupplierUpdated,
                    Outcome::Success,
                )
                .at(at)
            });
        }
        if minute % 10 == 3 {
            let user = users[(minute % 50) as usize];
            let at = t0() + Duration::minutes(minute) + Duration::seconds(30);
            events.push(failed(org, Some(user), ip(7), at));
            events.push(failed(org, Some(user), ip(7), at + Duration::seconds(20)));
        }
        if minute % 10 == 8 {
            // An unknown account (typo in the e-mail): no subject, address only.
            let at = t0() + Duration::minutes(minute) + Duration::seconds(45);
            events.push(failed(org, None, ip(9), at));
        }
    }
    events.sort_by_key(|e| e.at);
    let alerts = run(&mut d, &events);
    assert!(alerts.is_empty(), "{alerts:#?}");
}

#[test]
fn a_lockout_alerts_at_once() {
    let mut d = Detectors::new(AlertConfig::default()).unwrap();
    let (org, user) = (OrgId::new(), UserId::new());
    let locked = AuditEvent::new(
        Some(org),
        Actor::User { id: user },
        Action::AccountLocked,
        Outcome::Success,
    )
    .source(Some(ip(1)), None)
    .person(user, Some("ada@example.com"), None)
    .at(t0());
    let alerts = d.observe(&locked);
    assert_eq!(kinds(&alerts), vec![AlertKind::AccountLocked]);
    assert_eq!(
        alerts[0].key,
        AlertKey::Account {
            subject: user.to_string()
        }
    );
    assert_eq!((alerts[0].first_at, alerts[0].last_at), (t0(), t0()));
    // Switched off, it does not.
    let config = AlertConfig {
        lockouts: false,
        ..AlertConfig::default()
    };
    let mut quiet = Detectors::new(config).unwrap();
    assert!(quiet.observe(&locked).is_empty());
}

fn busy(org: OrgId, at: OffsetDateTime, outcome: Outcome) -> AuditEvent {
    AuditEvent::new(
        Some(org),
        Actor::User { id: UserId::new() },
        Action::RequestCreated,
        outcome,
    )
    .at(at)
}

/// `per_minute[m]` events in minute `m`, spread evenly.
fn traffic(org: OrgId, per_minute: &[u32], outcome: Outcome) -> Vec<AuditEvent> {
    let mut out = Vec::new();
    for (m, &n) in per_minute.iter().enumerate() {
        for k in 0..n {
            let at = t0()
                + Duration::minutes(m as i64)
                + Duration::microseconds(i64::from(k) * 60_000_000 / i64::from(n.max(1)));
            out.push(busy(org, at, outcome));
        }
    }
    out
}

#[test]
fn a_traffic_spike_against_the_baseline_alerts_and_steady_traffic_does_not() {
    let org = OrgId::new();
    // Steady: 200 events a minute for 30 minutes, with ±25 % wobble.
    let steady: Vec<u32> = (0..30).map(|m| 200 + (m % 5) * 25 - 50).collect();
    let mut d = Detectors::new(AlertConfig::default()).unwrap();
    let alerts = run(&mut d, &traffic(org, &steady, Outcome::Success));
    assert!(alerts.is_empty(), "{alerts:#?}");

    // Then one minute at 10x: the spike alerts once, during that minute.
    let mut spiky = steady.clone();
    spiky.push(2_000);
    spiky.push(200);
    let mut d = Detectors::new(AlertConfig::default()).unwrap();
    let alerts = run(&mut d, &traffic(org, &spiky, Outcome::Success));
    assert_eq!(kinds(&alerts), vec![AlertKind::TrafficSpike], "{alerts:#?}");
    let a = &alerts[0];
    let baseline = a.baseline.unwrap();
    assert!((150.0..250.0).contains(&baseline), "{baseline}");
    assert_eq!(a.threshold, (baseline * 5.0).ceil() as u64);
    assert_eq!(a.count, a.threshold);
    assert!(a.first_at >= t0() + Duration::minutes(30));
    assert!(a.last_at < t0() + Duration::minutes(31));
}

#[test]
fn an_error_spike_alerts_and_a_quiet_org_needs_the_floor() {
    let org = OrgId::new();
    let mut d = Detectors::new(AlertConfig::default()).unwrap();
    // 2 failures a minute for 20 minutes (below the floor of 10/min), then 60 in a minute.
    let mut events = traffic(org, &[2; 20], Outcome::Failure);
    let mut spike = traffic(
        org,
        &[0; 20].iter().chain(&[60]).copied().collect::<Vec<_>>(),
        Outcome::Denied,
    );
    events.append(&mut spike);
    events.sort_by_key(|e| e.at);
    let alerts = run(&mut d, &events);
    // The error spike (threshold floor 10 x 5 = 50); total traffic 60 stays under the
    // traffic floor (60 x 5).
    assert_eq!(kinds(&alerts), vec![AlertKind::ErrorSpike], "{alerts:#?}");
    assert_eq!(alerts[0].threshold, 50);
}

#[test]
fn memory_stays_bounded_under_address_churn() {
    let config = AlertConfig {
        max_tracked_keys: 100,
        ..AlertConfig::default()
    };
    let mut d = Detectors::new(config).unwrap();
    let org = OrgId::new();
    for i in 0..10_000u32 {
        let addr = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
        let e = failed(
            org,
            Some(UserId::new()),
            addr,
            t0() + Duration::milliseconds(i64::from(i)),
        );
        d.observe(&e);
    }
    assert!(d.tracked_keys() <= 5 * 100, "{}", d.tracked_keys());
}

#[derive(Debug, Default)]
struct Collect(Mutex<Vec<Alert>>);

#[async_trait::async_trait]
impl AlertSink for Collect {
    async fn send(&self, alert: Alert) -> procuhelp_audit::Result<()> {
        self.0.lock().unwrap().push(alert);
        Ok(())
    }
}

#[tokio::test]
async fn the_wrapper_records_first_and_alerts_without_failing_the_record() {
    let collected = Arc::new(Collect::default());
    let sink = AlertingSink::new(
        MemorySink::new(),
        Detectors::new(AlertConfig::default()).unwrap(),
        collected.clone(),
        16,
    );
    let (org, user) = (OrgId::new(), UserId::new());
    for i in 0..5 {
        let r = sink
            .record(failed(org, Some(user), ip(3), t0() + Duration::seconds(i)))
            .await
            .unwrap();
        assert_eq!(r.seq, Some(i as u64 + 1));
    }
    assert_eq!(sink.inner().events().len(), 5);
    // A failed record is an error and raises nothing (the event did not happen).
    sink.inner().set_failing(true);
    for i in 5..20 {
        assert!(
            sink.record(failed(org, Some(user), ip(3), t0() + Duration::seconds(i)))
                .await
                .is_err()
        );
    }
    for _ in 0..100 {
        if !collected.0.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }
    let got = collected.0.lock().unwrap().clone();
    assert_eq!(
        kinds(&got),
        vec![AlertKind::FailedLoginsPerAccount],
        "{got:#?}"
    );
    assert_eq!(sink.dropped_alerts(), 0);
    // The log sink accepts anything.
    LogAlertSink.send(got[0].clone()).await.unwrap();
}

#[tokio::test]
async fn webhook_retries_until_accepted_and_delivers_at_least_once() {
    use axum::http::{HeaderMap, StatusCode};

    #[derive(Clone, Default)]
    struct Receiver {
        requests: Arc<AtomicUsize>,
        accepted: Arc<Mutex<Vec<(String, Alert)>>>,
    }
    let rx = Receiver::default();
    let app = axum::Router::new()
        .route(
            "/hook/secret-token",
            axum::routing::post(
                |axum::extract::State(rx): axum::extract::State<Receiver>,
                 headers: HeaderMap,
                 axum::Json(alert): axum::Json<Alert>| async move {
                    // The first two requests fail: the receiver is "down".
                    if rx.requests.fetch_add(1, Ordering::SeqCst) < 2 {
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    let key = headers
                        .get("idempotency-key")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    rx.accepted.lock().unwrap().push((key, alert));
                    StatusCode::NO_CONTENT
                },
            ),
        )
        .with_state(rx.clone());
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let mut config = WebhookConfig::new(format!("http://{addr}/hook/secret-token"));
    config.initial_backoff = StdDuration::from_millis(20);
    config.max_backoff = StdDuration::from_millis(100);
    // Plain http is refused unless allowed.
    assert!(WebhookAlertSink::new(config.clone()).is_err());
    config.outbound = procuhelp_core::OutboundPolicy::dangerous_allow_loopback_for_tests();
    assert!(!format!("{config:?}").contains("secret-token"));
    let webhook = WebhookAlertSink::new(config).unwrap();

    let mut d = Detectors::new(AlertConfig::default()).unwrap();
    let user = UserId::new();
    let locked = AuditEvent::new(
        None,
        Actor::User { id: user },
        Action::AccountLocked,
        Outcome::Success,
    )
    .person(user, None, None)
    .at(t0());
    let alert = d.observe(&locked).pop().unwrap();
    webhook.send(alert.clone()).await.unwrap();
    assert!(webhook.flush(StdDuration::from_secs(10)).await);

    let accepted = rx.accepted.lock().unwrap().clone();
    assert!(!accepted.is_empty());
    assert!(
        accepted
            .iter()
            .all(|(key, a)| a == &alert && *key == alert.id.to_string())
    );
    assert!(rx.requests.load(Ordering::SeqCst) >= 3);
    let stats = webhook.stats();
    assert_eq!(stats.delivered, 1);
    assert_eq!(stats.failed_attempts, 2);
    assert_eq!(stats.attempts, 3);
    assert_eq!((stats.queued, stats.dropped), (0, 0));
    server.abort();
}

#[tokio::test]
async fn webhook_queue_is_bounded() {
    // Nothing listens on this port: every attempt fails, alerts pile up.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut config = WebhookConfig::new(format!("http://{addr}/"));
    config.outbound = procuhelp_core::OutboundPolicy::dangerous_allow_loopback_for_tests();
    config.queue = 4;
    config.initial_backoff = StdDuration::from_millis(50);
    let webhook = WebhookAlertSink::new(config).unwrap();
    let mut d = Detectors::new(AlertConfig::default()).unwrap();
    for i in 0..10 {
        let user = UserId::new();
        let e = AuditEvent::new(
            None,
            Actor::User { id: user },
            Action::AccountLocked,
            Outcome::Success,
        )
        .at(t0() + Duration::seconds(i));
        for a in d.observe(&e) {
            webhook.send(a).await.unwrap();
        }
    }
    let stats = webhook.stats();
    assert_eq!((stats.queued, stats.dropped), (4, 6));
    assert!(!webhook.flush(StdDuration::from_millis(100)).await);
}

#[tokio::test]
async fn webhook_alerts_survive_an_outage_across_a_restart_through_the_outbox() {
    use axum::http::StatusCode;
    let outbox = std::env::temp_dir().join(format!("ph-outbox-{}", uuid::Uuid::new_v4().simple()));
    // The receiver is down (nothing listens): alerts wait, persisted.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let config = || {
        let mut c = WebhookConfig::new(format!("http://{addr}/hook"));
        c.outbound = procuhelp_core::OutboundPolicy::dangerous_allow_loopback_for_tests();
        c.initial_backoff = StdDuration::from_millis(20);
        c.max_backoff = StdDuration::from_millis(100);
        c.outbox = Some(outbox.clone());
        c
    };
    let mut d = Detectors::new(AlertConfig::default()).unwrap();
    let mut sent = Vec::new();
    {
        let webhook = WebhookAlertSink::new(config()).unwrap();
        for i in 0..3 {
            let user = UserId::new();
            let e = AuditEvent::new(
                None,
                Actor::User { id: user },
                Action::AccountLocked,
                Outcome::Success,
            )
            .at(t0() + Duration::seconds(i));
            for a in d.observe(&e) {
                sent.push(a.clone());
                webhook.send(a).await.unwrap();
            }
        }
        tokio::time::sleep(StdDuration::from_millis(100)).await;
        assert!(webhook.stats().failed_attempts > 0);
        // The process stops with the receiver still down.
    }
    let files = std::fs::read_dir(&outbox).unwrap().count();
    assert_eq!(files, 3, "each undelivered alert is on disk");
    use std::os::unix::fs::PermissionsExt as _;
    for f in std::fs::read_dir(&outbox).unwrap() {
        assert_eq!(
            f.unwrap().metadata().unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    // The receiver comes back on that address; a new sink on the same outbox delivers
    // everything left, oldest first, and empties the outbox.
    let accepted: Arc<Mutex<Vec<Alert>>> = Arc::default();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post({
            let accepted = accepted.clone();
            move |axum::Json(alert): axum::Json<Alert>| async move {
                accepted.lock().unwrap().push(alert);
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let webhook = WebhookAlertSink::new(config()).unwrap();
    assert!(webhook.flush(StdDuration::from_secs(10)).await);
    assert_eq!(*accepted.lock().unwrap(), sent);
    assert_eq!(std::fs::read_dir(&outbox).unwrap().count(), 0);
    server.abort();
    let _ = std::fs::remove_dir_all(&outbox);
}

#[test]
fn http_responses_feed_traffic_and_error_spikes() {
    use procuhelp_audit::HttpResponse;
    let mut d = Detectors::new(AlertConfig::default()).unwrap();
    let org = procuhelp_core::OrgId::new();
    let source: std::net::IpAddr = "198.51.100.7".parse().unwrap();
    let calm: std::net::IpAddr = "198.51.100.8".parse().unwrap();
    let mut alerts = Vec::new();
    // Five calm minutes: 10 requests a minute from each address, no errors.
    for minute in 0..5 {
        for i in 0..10 {
            for s in [source, calm] {
                alerts.extend(d.observe_http(&HttpResponse {
                    at: t0() + Duration::minutes(minute) + Duration::seconds(i),
                    status: 200,
                    org: Some(org),
                    source: Some(s),
                }));
            }
        }
    }
    assert!(alerts.is_empty(), "{alerts:?}");
    // Minute six: one address floods (floor 300 × factor 5 = 1,500 requests) and the
    // server answers 5xx (floor 5 × 5 = 25).
    for i in 0..1500 {
        alerts.extend(d.observe_http(&HttpResponse {
            at: t0() + Duration::minutes(5) + Duration::milliseconds(i),
            status: if i < 30 { 503 } else { 200 },
            org: None,
            source: Some(source),
        }));
    }
    let kinds: Vec<(AlertKind, AlertKey)> =
        alerts.iter().map(|a| (a.kind, a.key.clone())).collect();
    assert_eq!(
        kinds,
        vec![
            (AlertKind::HttpErrorSpike, AlertKey::Org),
            (
                AlertKind::HttpTrafficSpike,
                AlertKey::Source { address: source }
            ),
        ],
        "{alerts:?}"
    );
    assert_eq!(alerts[1].count, 1500);
}
