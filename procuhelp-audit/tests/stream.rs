#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The audit stream on a real NATS JetStream server (Debian's `nats-server -js`, started
//! here on a free loopback port with its own store): every event reaches a durable
//! consumer exactly once, in chain order, across a NATS restart during which audit
//! writes go on.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{AckPolicy, pull};
use common::{Fixture, event, personal_event};
use futures_util::StreamExt as _;
use procuhelp_audit::{
    AuditSink, NatsAuditStream, NatsStreamConfig, STREAM_SCHEMA, StreamEvent, system_chain_org,
};

struct Nats {
    child: Child,
    port: u16,
    store: std::path::PathBuf,
}

impl Nats {
    fn start(port: u16, store: &std::path::Path) -> Self {
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server (Debian package nats-server; scripts/setup.sh installs it)");
        let nats = Self {
            child,
            port,
            store: store.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        nats
    }

    fn kill(mut self) -> (u16, std::path::PathBuf) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        (self.port, self.store.clone())
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Pulls from the durable consumer (at least once) until `want` events arrived in all (or
/// 30 s), acknowledging each; adds the events and their stream sequence numbers to `got`.
async fn pull_until(url: &str, want: usize, got: &mut Vec<(u64, StreamEvent)>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut fetched_once = false;
    while got.len() < want || !fetched_once {
        assert!(
            Instant::now() < deadline,
            "only {} of {want} events arrived",
            got.len()
        );
        let Ok(client) = async_nats::connect(url).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let js = async_nats::jetstream::new(client);
        let Ok(stream) = js.get_stream("PROCUHELP_AUDIT").await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let consumer: async_nats::jetstream::consumer::Consumer<pull::Config> = stream
            .get_or_create_consumer(
                "audit-test",
                pull::Config {
                    durable_name: Some("audit-test".into()),
                    ack_policy: AckPolicy::Explicit,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let mut batch = consumer
            .fetch()
            .max_messages(100)
            .expires(Duration::from_millis(500))
            .messages()
            .await
            .unwrap();
        while let Some(message) = batch.next().await {
            let message = message.unwrap();
            let stream_seq = message.info().unwrap().stream_sequence;
            // The consumer's side of exactly once: a redelivery (an acknowledgement lost
            // when the server went down) has a stream sequence already processed.
            if got.last().is_none_or(|(last, _)| stream_seq > *last) {
                let event: StreamEvent = serde_json::from_slice(&message.payload).unwrap();
                got.push((stream_seq, event));
            }
            let _ = message.ack().await;
        }
        fetched_once = true;
    }
}

#[tokio::test]
async fn every_event_reaches_the_consumer_once_in_order_across_a_nats_restart() {
    let f = Fixture::new().await;
    let store = tempdir();
    let nats = Nats::start(free_port(), &store);
    let url = format!("nats://127.0.0.1:{}", nats.port);
    let relay = relay_to(&url, &f);
    let stats = relay.stats();
    let sink = relay.nudge().wrap(Arc::new(f.sink()));
    let task = tokio::spawn(relay.run());

    // Two organisations and the system chain.
    for n in 0..20 {
        let org = if n % 2 == 0 { f.a } else { f.b };
        let e = if n % 5 == 0 {
            personal_event(org, procuhelp_core::UserId::new(), n)
        } else {
            event(org, n)
        };
        sink.record(e).await.unwrap();
    }
    sink.record(procuhelp_audit::AuditEvent::new(
        None,
        procuhelp_audit::Actor::System,
        procuhelp_audit::Action::AdminCommand,
        procuhelp_audit::Outcome::Success,
    ))
    .await
    .unwrap();
    let mut got = Vec::new();
    pull_until(&url, 21, &mut got).await;

    // NATS goes away: audit writes go on, acknowledged by the database alone.
    let (port, store) = nats.kill();
    for n in 20..50 {
        tokio::time::timeout(
            Duration::from_secs(5),
            sink.record(event(if n % 2 == 0 { f.a } else { f.b }, n)),
        )
        .await
        .expect("an audit write waited for NATS")
        .unwrap();
    }
    // The relay notices (a publish times out or the connection is refused) and waits.
    let deadline = Instant::now() + Duration::from_secs(20);
    while stats.failures.load(std::sync::atomic::Ordering::Relaxed) == 0 {
        assert!(
            Instant::now() < deadline,
            "the relay never noticed NATS was gone"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Back, with its store: the stream catches up and the consumer resumes.
    let _nats = Nats::start(port, &store);
    pull_until(&url, 51, &mut got).await;
    // Nothing more arrives (no duplicates trailing behind).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut extra = Vec::new();
    pull_until(&url, 0, &mut extra).await;
    assert!(extra.is_empty());
    task.abort();
    // The stream itself holds each event once: the relay never published one twice.
    let js = async_nats::jetstream::new(async_nats::connect(&url).await.unwrap());
    let mut stream = js.get_stream("PROCUHELP_AUDIT").await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 51);

    // Exactly once: 51 distinct (chain, seq), stream sequence 1..=51 without gaps.
    assert_eq!(got.len(), 51);
    let stream_seqs: Vec<u64> = got.iter().map(|(s, _)| *s).collect();
    assert_eq!(stream_seqs, (1..=51).collect::<Vec<_>>());
    let distinct: HashSet<(uuid::Uuid, u64)> = got.iter().map(|(_, e)| (e.org_id, e.seq)).collect();
    assert_eq!(distinct.len(), 51);
    // In chain order, linked by hash, as the database holds them.
    let mut chains: BTreeMap<uuid::Uuid, Vec<&StreamEvent>> = BTreeMap::new();
    for (_, e) in &got {
        assert_eq!(e.schema, STREAM_SCHEMA);
        chains.entry(e.org_id).or_default().push(e);
    }
    assert_eq!(chains.len(), 3);
    assert_eq!(chains[&f.a.as_uuid()].len(), 25);
    assert_eq!(chains[&system_chain_org().as_uuid()].len(), 1);
    for events in chains.values() {
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e.seq, i as u64 + 1);
            if i > 0 {
                assert_eq!(e.prev_hash, events[i - 1].hash);
            }
        }
    }
    // Personal data stays sealed: the events' e-mail addresses are not in the stream.
    assert_eq!(got.iter().filter(|(_, e)| e.personal).count(), 4);
    let all = serde_json::to_string(&got.iter().map(|(_, e)| e).collect::<Vec<_>>()).unwrap();
    assert!(
        !all.contains("ada@example.com")
            && !all.contains("Lovelace")
            && !all.contains("192.0.2.44")
    );

    // A message someone else published on a chain's subject does not move that chain's
    // cursor: the chain stops (loudly) instead of skipping events, the others go on.
    js.publish(
        format!("procuhelp.audit.{}", f.a),
        br#"{"seq": 999999}"#.as_ref().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let relay = relay_to(&url, &f);
    let sink = relay.nudge().wrap(Arc::new(f.sink()));
    let task = tokio::spawn(relay.run());
    sink.record(event(f.a, 100)).await.unwrap();
    sink.record(event(f.b, 101)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while stream.info().await.unwrap().state.messages < 53 {
        assert!(
            Instant::now() < deadline,
            "org B's new event was not shipped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        stream.info().await.unwrap().state.messages,
        53,
        "org A's chain moved on past a forged cursor"
    );
    let last_b = stream
        .get_last_raw_message_by_subject(&format!("procuhelp.audit.{}", f.b))
        .await
        .unwrap();
    let last_b: StreamEvent = serde_json::from_slice(&last_b.payload).unwrap();
    assert_eq!(last_b.seq, 26);
    task.abort();

    let _ = std::fs::remove_dir_all(&store);
    f.teardown().await;
}

/// A relay that sweeps every second and retries quickly.
fn relay_to(url: &str, f: &Fixture) -> NatsAuditStream {
    NatsAuditStream::new(
        NatsStreamConfig {
            url: url.to_owned(),
            sweep_every: Duration::from_secs(1),
            max_backoff: Duration::from_millis(500),
            ..NatsStreamConfig::default()
        },
        f.sink(),
        f.owner.clone(),
    )
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("procuhelp-nats-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
