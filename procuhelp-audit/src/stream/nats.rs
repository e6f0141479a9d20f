//! The audit stream on NATS JetStream: the database is the outbox.
//!
//! Each chain is one subject (`<prefix>.<org id>`); its events are published in sequence
//! order, each only after the previous one's acknowledgement, with
//! * `Nats-Msg-Id: <org id>:<seq>` — a publish retried after a lost acknowledgement is
//!   recognised as a duplicate within the stream's duplicate window;
//! * `Nats-Expected-Last-Subject-Sequence` — JetStream refuses a publish when the
//!   subject's last message is not the one this relay last saw, so two relays (two
//!   server processes) never interleave or repeat a chain: the loser re-reads where the
//!   chain's subject stands and carries on from there.
//!
//! Where a chain stands is read from the stream itself (its subject's last message), so
//! there is no cursor to keep in step, and a relay that restarts, or a NATS server that
//! restarts with its file store, resumes exactly after the last acknowledged event. When
//! NATS is down, audit writes are untouched (the relay only reads the database) and the
//! stream catches up once it is back.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::context::{Context, PublishErrorKind};
use async_nats::jetstream::stream::{Config, LastRawMessageErrorKind, StorageType, Stream};
use procuhelp_core::OrgId;
use sqlx::PgPool;
use tokio::sync::Notify;

use crate::{AuditError, AuditEvent, AuditSink, PgAuditSink, Receipt, Result};

/// Chains remembered as having new events before a full sweep is asked for instead.
const MAX_NUDGED: usize = 4096;
/// The first wait after a failure.
const MIN_BACKOFF: Duration = Duration::from_millis(250);

/// Where and how the relay publishes.
#[derive(Debug, Clone)]
pub struct NatsStreamConfig {
    /// The NATS server (`nats://host:port`, or `tls://host:port` with `ca_file`).
    pub url: String,
    /// The CA that signed the NATS server's certificate (turns TLS on and requires it).
    pub ca_file: Option<std::path::PathBuf>,
    /// A file holding the NATS authentication token (read at each connection; never in
    /// the URL, the arguments or the environment).
    pub token_file: Option<std::path::PathBuf>,
    /// The JetStream stream, created (file storage) if missing.
    pub stream: String,
    /// Subjects are `<subject_prefix>.<org id>`.
    pub subject_prefix: String,
    /// Events read from a chain per database round trip.
    pub page: u32,
    /// How often every chain is looked at, besides those nudged
    /// ([`StreamNudge::nudge`]): events appended by other processes are shipped within it.
    pub sweep_every: Duration,
    /// The longest wait between attempts while NATS is unreachable.
    pub max_backoff: Duration,
    /// The stream's duplicate window (retries within it are recognised by message id).
    pub duplicate_window: Duration,
}

impl Default for NatsStreamConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".to_owned(),
            ca_file: None,
            token_file: None,
            stream: "PROCUHELP_AUDIT".to_owned(),
            subject_prefix: "procuhelp.audit".to_owned(),
            page: 500,
            sweep_every: Duration::from_secs(30),
            max_backoff: Duration::from_secs(30),
            duplicate_window: Duration::from_secs(600),
        }
    }
}

/// Tells the relay which chains have new events, so they ship without waiting for the
/// sweep. Cheap and never blocking; memory is bounded (beyond 4,096 chains it
/// asks for a sweep instead).
#[derive(Debug, Clone, Default)]
pub struct StreamNudge {
    inner: Arc<NudgeState>,
}

#[derive(Debug, Default)]
struct NudgeState {
    dirty: Mutex<Nudged>,
    notify: Notify,
}

#[derive(Debug, Default)]
struct Nudged {
    orgs: HashSet<OrgId>,
    sweep: bool,
}

impl StreamNudge {
    /// `org`'s chain has new events.
    pub fn nudge(&self, org: OrgId) {
        if let Ok(mut dirty) = self.inner.dirty.lock() {
            if dirty.orgs.len() < MAX_NUDGED {
                dirty.orgs.insert(org);
            } else {
                dirty.sweep = true;
            }
        }
        self.inner.notify.notify_one();
    }

    /// `sink`, nudging the relay after each event it records (events appended inside a
    /// caller's transaction do not pass here: the sweep brings those).
    pub fn wrap(&self, sink: Arc<dyn AuditSink>) -> Arc<dyn AuditSink> {
        Arc::new(NudgingSink {
            inner: sink,
            nudge: self.clone(),
        })
    }

    fn take(&self) -> Nudged {
        self.inner
            .dirty
            .lock()
            .map(|mut d| std::mem::take(&mut *d))
            .unwrap_or(Nudged {
                orgs: HashSet::new(),
                sweep: true,
            })
    }
}

/// An [`AuditSink`] that nudges the relay after each event its inner sink recorded.
#[derive(Debug)]
struct NudgingSink {
    inner: Arc<dyn AuditSink>,
    nudge: StreamNudge,
}

#[async_trait::async_trait]
impl AuditSink for NudgingSink {
    async fn record(&self, event: AuditEvent) -> Result<Receipt> {
        let receipt = self.inner.record(event).await?;
        self.nudge
            .nudge(receipt.org.unwrap_or_else(crate::system_chain_org));
        Ok(receipt)
    }
}

/// What the relay has done (for metrics and tests).
#[derive(Debug, Default)]
pub struct StreamStats {
    /// Events acknowledged by JetStream.
    pub published: AtomicU64,
    /// Publishes JetStream recognised as already stored (a retry, or another relay).
    pub duplicates: AtomicU64,
    /// Failed attempts (NATS unreachable, timed out, refused).
    pub failures: AtomicU64,
}

/// The relay from the audit chains to NATS JetStream.
///
/// ```no_run
/// # async fn demo(audit: procuhelp_audit::PgAuditSink, owner: sqlx::PgPool) {
/// use procuhelp_audit::{NatsAuditStream, NatsStreamConfig};
/// let stream = NatsAuditStream::new(NatsStreamConfig::default(), audit, owner);
/// let nudge = stream.nudge(); // call nudge.nudge(org) after appending to org's chain
/// tokio::spawn(stream.run());
/// # }
/// ```
#[derive(Debug)]
pub struct NatsAuditStream {
    config: NatsStreamConfig,
    audit: PgAuditSink,
    owner: PgPool,
    nudge: StreamNudge,
    stats: Arc<StreamStats>,
}

/// Where a chain's subject stands: the last audit sequence number published and the
/// stream sequence of that message (0, 0 for none).
#[derive(Debug, Clone, Copy, Default)]
struct Cursor {
    seq: u64,
    stream_seq: u64,
}

/// Why a pass (or one chain) stopped.
#[derive(Debug)]
enum Stop {
    /// This chain's subject does not continue the chain in the database (a message that
    /// is not ours, another chain's, a hash that differs, a sequence beyond the chain's
    /// head after a restore): the chain is not shipped until someone looks; the others
    /// go on.
    Diverged(String),
    /// NATS is unreachable or refused: back off and retry the same chains.
    Nats(String),
    /// The database failed: back off and retry.
    Db(AuditError),
}

impl NatsAuditStream {
    /// A relay publishing `audit`'s chains as `config` says. `owner` lists the
    /// organisations (the schema owner's pool: only its policy sees every one).
    pub fn new(config: NatsStreamConfig, audit: PgAuditSink, owner: PgPool) -> Self {
        Self {
            config,
            audit,
            owner,
            nudge: StreamNudge::default(),
            stats: Arc::new(StreamStats::default()),
        }
    }

    /// The handle that tells this relay which chains have new events.
    pub fn nudge(&self) -> StreamNudge {
        self.nudge.clone()
    }

    /// Its counters.
    pub fn stats(&self) -> Arc<StreamStats> {
        self.stats.clone()
    }

    /// Runs until the task is dropped or aborted (safe at any point: nothing is
    /// acknowledged to anyone by the relay, and the next run resumes from the stream).
    pub async fn run(self) {
        let mut backoff = MIN_BACKOFF;
        let mut failing = false;
        loop {
            let stop = match self.serve(&mut failing, &mut backoff).await {
                Ok(()) => return,
                Err(stop) => stop,
            };
            self.stats.failures.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("procuhelp_audit_stream_failures_total").increment(1);
            // Once per outage at WARN; the counter tells the rest.
            if !failing {
                failing = true;
                match &stop {
                    Stop::Nats(why) => tracing::warn!(
                        error = %why,
                        "audit stream: NATS unavailable; events wait in the database"
                    ),
                    Stop::Db(e) => {
                        tracing::warn!(error = %e, "audit stream: reading the audit log failed")
                    }
                    Stop::Diverged(why) => tracing::error!(%why, "audit stream: a chain diverged"),
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.config.max_backoff);
        }
    }

    /// Connects and ships until a failure.
    async fn serve(
        &self,
        failing: &mut bool,
        backoff: &mut Duration,
    ) -> std::result::Result<(), Stop> {
        let (js, stream) = self.connect().await?;
        let mut cursors: HashMap<OrgId, Cursor> = HashMap::new();
        let mut diverged: HashSet<OrgId> = HashSet::new();
        let mut sweep = true;
        loop {
            let nudged = self.nudge.take();
            let orgs: Vec<OrgId> = if sweep || nudged.sweep {
                let mut all = procuhelp_tenancy::organisation_ids(&self.owner)
                    .await
                    .map_err(|e| Stop::Db(AuditError::Unavailable(e.to_string())))?;
                all.push(crate::system_chain_org());
                all
            } else {
                nudged.orgs.into_iter().collect()
            };
            for (i, org) in orgs.iter().enumerate() {
                if diverged.contains(org) {
                    continue;
                }
                match self.ship(&js, &stream, &mut cursors, *org).await {
                    Ok(()) => {}
                    Err(Stop::Diverged(why)) => {
                        // Loud, once per connection; the other chains go on.
                        metrics::counter!("procuhelp_audit_stream_diverged_total").increment(1);
                        tracing::error!(%org, %why, "audit stream: this chain's subject does not continue the chain; not shipping it");
                        diverged.insert(*org);
                    }
                    Err(stop) => {
                        // The chains not shipped yet are looked at first next time.
                        for org in &orgs[i..] {
                            self.nudge.nudge(*org);
                        }
                        return Err(stop);
                    }
                }
            }
            if *failing {
                *failing = false;
                *backoff = MIN_BACKOFF;
                tracing::info!("audit stream: caught up after an outage");
            }
            sweep = tokio::select! {
                () = self.nudge.inner.notify.notified() => false,
                () = tokio::time::sleep(self.config.sweep_every) => true,
            };
        }
    }

    async fn connect(&self) -> std::result::Result<(Context, Stream), Stop> {
        let mut options = async_nats::ConnectOptions::new()
            .name("procuhelp-audit-stream")
            // Only the configured server: a cluster's gossip must not move us to an
            // address (perhaps not loopback, perhaps not TLS) nobody configured.
            .ignore_discovered_servers()
            .connection_timeout(Duration::from_secs(5));
        if let Some(ca) = &self.config.ca_file {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let Some(file) = &self.config.token_file {
            let token = read_token_file(file)?;
            options = options.token(token.trim().to_owned());
        }
        // The URL is not repeated in errors: it may name credentials.
        let client = options
            .connect(self.config.url.as_str())
            .await
            .map_err(|e| Stop::Nats(format!("connecting: {}", e.kind())))?;
        let js = async_nats::jetstream::new(client);
        let stream = js
            .get_or_create_stream(Config {
                name: self.config.stream.clone(),
                subjects: vec![format!("{}.*", self.config.subject_prefix)],
                storage: StorageType::File,
                duplicate_window: self.config.duplicate_window,
                ..Config::default()
            })
            .await
            .map_err(|e| Stop::Nats(format!("the stream: {e}")))?;
        Ok((js, stream))
    }

    fn subject(&self, org: OrgId) -> String {
        format!("{}.{}", self.config.subject_prefix, org)
    }

    /// Where `org`'s subject stands, from the stream — only if its last message is the
    /// database's event at that sequence number (same chain, same hash): a message
    /// published by someone else cannot move the cursor.
    async fn cursor(&self, stream: &Stream, org: OrgId) -> std::result::Result<Cursor, Stop> {
        match stream
            .get_last_raw_message_by_subject(&self.subject(org))
            .await
        {
            Ok(last) => {
                let Ok(shipped) = serde_json::from_slice::<ShippedPosition>(&last.payload) else {
                    return Err(Stop::Diverged(
                        "its last message is not an audit event".into(),
                    ));
                };
                if shipped.org_id != org.as_uuid() || shipped.seq == 0 {
                    return Err(Stop::Diverged("its last message is another chain's".into()));
                }
                let stored = self
                    .audit
                    .stream_page(org, shipped.seq - 1, 1)
                    .await
                    .map_err(Stop::Db)?;
                match stored.first() {
                    Some(e) if e.seq == shipped.seq && e.hash == shipped.hash => Ok(Cursor {
                        seq: shipped.seq,
                        stream_seq: last.sequence,
                    }),
                    Some(_) => Err(Stop::Diverged(format!(
                        "event {} in the stream differs from the database's",
                        shipped.seq
                    ))),
                    None => Err(Stop::Diverged(format!(
                        "the stream is ahead of the database (event {}; restored from a backup?)",
                        shipped.seq
                    ))),
                }
            }
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(Cursor::default()),
            Err(e) => Err(Stop::Nats(format!("reading the stream: {e}"))),
        }
    }

    /// Publishes `org`'s events after its cursor, page by page, each after the previous
    /// one's acknowledgement.
    async fn ship(
        &self,
        js: &Context,
        stream: &Stream,
        cursors: &mut HashMap<OrgId, Cursor>,
        org: OrgId,
    ) -> std::result::Result<(), Stop> {
        let mut cursor = match cursors.get(&org) {
            Some(c) => *c,
            None => self.cursor(stream, org).await?,
        };
        cursors.insert(org, cursor);
        let subject = self.subject(org);
        loop {
            let page = self
                .audit
                .stream_page(org, cursor.seq, self.config.page)
                .await
                .map_err(Stop::Db)?;
            if page.is_empty() {
                return Ok(());
            }
            let full = page.len() >= self.config.page as usize;
            for event in page {
                let payload = serde_json::to_vec(&event)
                    .map_err(|_| Stop::Db(AuditError::Unavailable("serialising".into())))?;
                let publish = async_nats::jetstream::message::PublishMessage::build()
                    .payload(payload.into())
                    .message_id(format!("{org}:{}", event.seq))
                    .expected_last_subject_sequence(cursor.stream_seq);
                let acked = match js.send_publish(subject.clone(), publish).await {
                    Ok(future) => future.await,
                    Err(e) => Err(e),
                };
                match acked {
                    Ok(ack) => {
                        if ack.duplicate {
                            self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                        } else {
                            self.stats.published.fetch_add(1, Ordering::Relaxed);
                            metrics::counter!("procuhelp_audit_stream_published_total")
                                .increment(1);
                        }
                        cursor = Cursor {
                            seq: event.seq,
                            stream_seq: ack.sequence,
                        };
                        cursors.insert(org, cursor);
                    }
                    Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                        // Another relay moved this subject on: carry on from where it is.
                        cursors.remove(&org);
                        cursor = self.cursor(stream, org).await?;
                        cursors.insert(org, cursor);
                        break;
                    }
                    Err(e) => {
                        // The acknowledgement may have been lost with the message stored:
                        // the cursor is read from the stream again before the retry.
                        cursors.remove(&org);
                        return Err(Stop::Nats(format!("publishing: {}", e.kind())));
                    }
                }
            }
            if !full {
                // A short page may still have been followed by a racing append; the
                // nudge for that append brings it.
                return Ok(());
            }
        }
    }
}

/// What the cursor needs of the stream's last message: a message of a newer schema (more
/// fields) still places the cursor, and nothing else of it is parsed.
#[derive(serde::Deserialize)]
struct ShippedPosition {
    org_id: uuid::Uuid,
    seq: u64,
    hash: String,
}

/// The token, from a file only its owner can read (as every credential file here).
fn read_token_file(
    path: &std::path::Path,
) -> std::result::Result<zeroize::Zeroizing<String>, Stop> {
    use std::os::unix::fs::PermissionsExt;
    let meta =
        std::fs::metadata(path).map_err(|_| Stop::Nats("reading the token file".to_owned()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(Stop::Nats(
            "the token file is readable by others (chmod 0600)".to_owned(),
        ));
    }
    let token = zeroize::Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|_| Stop::Nats("reading the token file".to_owned()))?,
    );
    if token.trim().is_empty() {
        return Err(Stop::Nats("the token file is empty".to_owned()));
    }
    Ok(token)
}
