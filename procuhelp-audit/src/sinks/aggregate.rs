//! Aggregation of unauthenticated refusals, so that anyone on the network cannot grow the
//! append-only trail without bound.
//!
//! A throttled sign-in, a sign-in to an unknown account or an SSO refusal before any
//! identity is established is recorded by whoever asks, as often as they ask — and the
//! trail can never shrink. [`RefusalAggregator`] wraps the durable sink: per key
//! (organisation, action, source address — IPv6 by /64 —, reason) and window (default
//! one hour) the first refusal is recorded in full; the following ones are counted in
//! memory, and when the window is over one `audit.refusals_aggregated` event records
//! how many there were, from when to when. So each source adds at most two rows per key
//! per window. Put it *inside* [`AlertingSink`](crate::AlertingSink): the detectors
//! still see every single refusal.
//!
//! What is aggregated (see [`RefusalAggregator::is_aggregated`]): events whose actor is
//! [`Actor::System`] (no identity was established), whose outcome is not success, whose
//! action is one of [`AggregationConfig::actions`] (default [`Action::LoginFailed`]) and
//! whose reason is not one of [`AggregationConfig::full_reasons`] (default `invalid
//! credentials`: a password check is recorded in full whether or not the account exists,
//! so the two take equally long — see there). So: throttled sign-ins and SSO refusals.
//! A failed password for a *known* account names the user as actor and is always
//! recorded in full: the throttle and the account lock bound those. Successes and every
//! authenticated action are never touched.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use async_trait::async_trait;
use procuhelp_core::OrgId;
use time::OffsetDateTime;

use crate::{Action, Actor, AuditEvent, AuditSink, Outcome, Receipt, Result};

/// Longest reason kept in a key; longer (or missing) reasons are keyed as `other`.
const MAX_REASON_BYTES: usize = 64;

/// How refusals are aggregated.
#[derive(Debug, Clone)]
pub struct AggregationConfig {
    /// The window: one full event, then one summary, per key per window.
    pub window: time::Duration,
    /// Keys counted at once (memory bound). Beyond it, new keys of an organisation are
    /// counted under one `overflow` key per (organisation, action).
    pub max_keys: usize,
    /// Which actions are aggregated (with actor `System` and outcome failure/denied).
    pub actions: Vec<Action>,
    /// Refusals with one of these `context.reason`s are always recorded in full. Default
    /// `invalid credentials`: a password checked against an account that may or may not
    /// exist must take the same path either way — counting only the unknown accounts'
    /// failures in memory would answer them faster than a known account's (whose actor
    /// is the user and which are recorded in full), a timing oracle for which accounts
    /// exist. The throttle bounds these (a few checks per account and address, then
    /// `throttled`, which is aggregated).
    pub full_reasons: Vec<String>,
}

impl Default for AggregationConfig {
    fn default() -> Self {
        Self {
            window: time::Duration::hours(1),
            max_keys: 10_000,
            actions: vec![Action::LoginFailed],
            full_reasons: vec!["invalid credentials".to_owned()],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    org: Option<OrgId>,
    action: Action,
    /// The source, IPv6 cut to its /64; `None` for the overflow key.
    source: Option<IpAddr>,
    reason: String,
}

#[derive(Debug, Clone)]
struct Entry {
    window_start: OffsetDateTime,
    first_at: OffsetDateTime,
    last_at: OffsetDateTime,
    /// Refusals counted and not recorded in full.
    suppressed: u64,
    /// The first event's address (personal data: it goes into the summary's sealed part).
    address: Option<IpAddr>,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<Key, Entry>,
    /// Entries that are not overflow keys (those are bounded by organisations × actions).
    regular: usize,
    last_sweep: Option<OffsetDateTime>,
}

/// Wraps a sink and aggregates repeated unauthenticated refusals (see the module docs).
///
/// A counted refusal returns `Ok` with an unnumbered receipt at once: the refusal itself
/// happens whatever the trail says, and its count becomes durable with the summary. A
/// crash loses the counts of the current window (the first refusal of each key is
/// durable); call [`flush_all`](Self::flush_all) on shutdown and
/// [`flush_expired`](Self::flush_expired) periodically, or rely on the next refusal
/// after a window's end (which also sweeps every expired key, at most once a minute).
#[derive(Debug)]
pub struct RefusalAggregator<S> {
    inner: S,
    config: AggregationConfig,
    state: Mutex<State>,
}

fn mask(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

fn reason_of(event: &AuditEvent) -> String {
    let part = |name: &str| {
        event
            .context
            .get(name)
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= MAX_REASON_BYTES)
    };
    match (part("method"), part("reason")) {
        (Some(m), Some(r)) => format!("{m}:{r}"),
        (None, Some(r)) => r.to_owned(),
        (Some(m), None) => format!("{m}:other"),
        (None, None) => "other".to_owned(),
    }
}

impl<S: AuditSink> RefusalAggregator<S> {
    /// Aggregates for `inner` with the default configuration (one hour, 10,000 keys,
    /// `auth.login_failed`).
    pub fn new(inner: S) -> Self {
        Self::with_config(inner, AggregationConfig::default())
    }

    /// Aggregates for `inner` with `config` (a window of at least one second, at least
    /// one key).
    pub fn with_config(inner: S, mut config: AggregationConfig) -> Self {
        config.window = config.window.max(time::Duration::SECOND);
        config.max_keys = config.max_keys.max(1);
        Self {
            inner,
            config,
            state: Mutex::new(State::default()),
        }
    }

    /// The wrapped sink.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Whether `event` is an unauthenticated refusal this aggregator counts.
    pub fn is_aggregated(&self, event: &AuditEvent) -> bool {
        let full_reason = event
            .context
            .get("reason")
            .and_then(serde_json::Value::as_str)
            .is_some_and(|r| self.config.full_reasons.iter().any(|f| f == r));
        matches!(event.actor, Actor::System)
            && event.outcome != Outcome::Success
            && self.config.actions.contains(&event.action)
            && !full_reason
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Nothing panics while holding it; recover the counts if a panic elsewhere did.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn expired(&self, entry: &Entry, now: OffsetDateTime) -> bool {
        now >= entry.window_start + self.config.window
    }

    fn summary(&self, key: &Key, entry: &Entry) -> AuditEvent {
        let prefix = match key.source {
            Some(IpAddr::V6(_)) => Some(64),
            Some(IpAddr::V4(_)) => Some(32),
            None => None,
        };
        AuditEvent::new(
            key.org,
            Actor::System,
            Action::RefusalsAggregated,
            Outcome::Denied,
        )
        .at(entry.last_at)
        .target(key.action.as_str())
        .context(serde_json::json!({
            "action": key.action.as_str(),
            "reason": key.reason,
            "suppressed": entry.suppressed,
            "first_at": entry.first_at.unix_timestamp(),
            "last_at": entry.last_at.unix_timestamp(),
            "window_start": entry.window_start.unix_timestamp(),
            "window_secs": self.config.window.whole_seconds(),
            "source_prefix_len": prefix,
            "overflow": key.source.is_none(),
        }))
        .source(entry.address, None)
    }

    /// Takes every expired entry out; the ones with counts come back as summaries.
    fn take_expired(&self, state: &mut State, now: OffsetDateTime) -> Vec<(Key, Entry)> {
        state.last_sweep = Some(now);
        let expired: Vec<Key> = state
            .entries
            .iter()
            .filter(|(_, e)| self.expired(e, now))
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::new();
        for key in expired {
            if let Some(entry) = state.entries.remove(&key) {
                if key.source.is_some() {
                    state.regular -= 1;
                }
                if entry.suppressed > 0 {
                    out.push((key, entry));
                }
            }
        }
        out
    }

    /// Records the summaries; one that fails goes back (its count merged into whatever
    /// the key has now) and the first error is returned.
    async fn write(&self, summaries: Vec<(Key, Entry)>) -> Result<usize> {
        let mut written = 0;
        let mut first_error = None;
        for (key, entry) in summaries {
            match self.inner.record(self.summary(&key, &entry)).await {
                Ok(_) => written += 1,
                Err(e) => {
                    tracing::error!(error = %e, "could not record a refusal summary; kept for later");
                    let mut state = self.lock();
                    let is_regular = key.source.is_some();
                    match state.entries.get_mut(&key) {
                        Some(now) => {
                            now.suppressed += entry.suppressed;
                            now.first_at = now.first_at.min(entry.first_at);
                        }
                        None => {
                            state.entries.insert(key, entry);
                            if is_regular {
                                state.regular += 1;
                            }
                        }
                    }
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(written), Err)
    }

    /// Records a summary for every key whose window ended before `now`; returns how many.
    pub async fn flush_expired(&self, now: OffsetDateTime) -> Result<usize> {
        let summaries = {
            let mut state = self.lock();
            self.take_expired(&mut state, now)
        };
        self.write(summaries).await
    }

    /// Records a summary for every key with counts (on shutdown); returns how many.
    pub async fn flush_all(&self) -> Result<usize> {
        let summaries = {
            let mut state = self.lock();
            state.regular = 0;
            state
                .entries
                .drain()
                .filter(|(_, e)| e.suppressed > 0)
                .collect()
        };
        self.write(summaries).await
    }

    /// Under the lock: the summaries due (a sweep at most once a minute, never more often:
    /// a full map is no reason to scan it again per event, which a client rotating
    /// sources could force), and whether this refusal was counted (`false`: record it in
    /// full). A full map moves `key` to its organisation's overflow key.
    fn plan(&self, key: &mut Key, now: OffsetDateTime) -> (Vec<(Key, Entry)>, bool) {
        let mut state = self.lock();
        let mut summaries = Vec::new();
        if state
            .last_sweep
            .is_none_or(|at| now >= at + time::Duration::MINUTE)
        {
            summaries = self.take_expired(&mut state, now);
        }
        if !state.entries.contains_key(key) && state.regular >= self.config.max_keys {
            key.source = None;
            key.reason = "overflow".to_owned();
        }
        let expired = match state.entries.get_mut(key) {
            Some(entry) if !self.expired(entry, now) => {
                entry.suppressed += 1;
                entry.last_at = entry.last_at.max(now);
                return (summaries, true);
            }
            Some(_) => true,
            None => false,
        };
        if expired && let Some(old) = state.entries.remove(key) {
            // This key's window is over: summarise it; this refusal starts the next one.
            if key.source.is_some() {
                state.regular -= 1;
            }
            if old.suppressed > 0 {
                summaries.push((key.clone(), old));
            }
        }
        (summaries, false)
    }

    /// The summaries of ended windows, if the last sweep is a minute old.
    fn sweep_if_due(&self, now: OffsetDateTime) -> Vec<(Key, Entry)> {
        let mut state = self.lock();
        if state.entries.is_empty()
            || state
                .last_sweep
                .is_some_and(|at| now < at + time::Duration::MINUTE)
        {
            return Vec::new();
        }
        self.take_expired(&mut state, now)
    }

    /// Opens `key`'s window after its first refusal was recorded (unless a concurrent
    /// first refusal already did).
    fn start_window(&self, key: Key, now: OffsetDateTime, address: Option<IpAddr>) {
        let mut state = self.lock();
        if state.entries.contains_key(&key) {
            return;
        }
        if key.source.is_some() {
            state.regular += 1;
        }
        state.entries.insert(
            key,
            Entry {
                window_start: now,
                first_at: now,
                last_at: now,
                suppressed: 0,
                address,
            },
        );
    }

    /// Refusals counted and not yet in a summary.
    pub fn pending(&self) -> u64 {
        self.lock().entries.values().map(|e| e.suppressed).sum()
    }
}

#[async_trait]
impl<S: AuditSink> AuditSink for RefusalAggregator<S> {
    async fn record(&self, event: AuditEvent) -> Result<Receipt> {
        if !self.is_aggregated(&event) {
            // Any traffic closes ended windows (at most once a minute). A summary that
            // cannot be written is kept and logged by `write`; it must not fail this
            // unrelated event, which is recorded (or refused) on its own.
            let due = self.sweep_if_due(event.at);
            if !due.is_empty() {
                let _ = self.write(due).await;
            }
            return self.inner.record(event).await;
        }
        let now = event.at;
        let address = event.personal.context.source;
        let mut key = Key {
            org: event.org,
            action: event.action,
            source: Some(address.map_or(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), mask)),
            reason: reason_of(&event),
        };
        let (summaries, counted) = self.plan(&mut key, now);
        // Summaries of other keys that cannot be written are kept and logged by `write`;
        // they must not fail this refusal (as for unaggregated events above).
        let _ = self.write(summaries).await;
        if counted {
            return Ok(Receipt::unnumbered(event.org));
        }
        // The first of its key in this window: recorded in full, fail closed as usual.
        let receipt = self.inner.record(event).await?;
        self.start_window(key, now, address);
        Ok(receipt)
    }
}
