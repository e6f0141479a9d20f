//! The detectors: sliding windows over failed sign-ins, lockouts, and per-minute spikes
//! against an exponentially weighted moving average.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;

use procuhelp_core::OrgId;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::{Alert, AlertKey, AlertKind};
use crate::{Action, Actor, AuditError, AuditEvent, Outcome, Result};

/// "`threshold` events within `window`" — a sliding-window rule. A threshold of 0
/// switches the rule off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowRule {
    /// Events that raise the alert.
    pub threshold: u32,
    /// The window they must fall in.
    pub window: Duration,
}

impl WindowRule {
    /// A rule; `threshold` 0 switches it off.
    pub const fn new(threshold: u32, window: Duration) -> Self {
        Self { threshold, window }
    }

    /// A rule that never fires.
    pub const fn off() -> Self {
        Self::new(0, Duration::ZERO)
    }
}

/// "This minute's count is at least `factor` × max(baseline, `min_baseline`)", where the
/// baseline is the exponentially weighted moving average of earlier minutes' counts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpikeRule {
    /// Whether the rule runs.
    pub enabled: bool,
    /// How far above the baseline a minute must be (> 1).
    pub factor: f64,
    /// The floor of the baseline, in events per minute: a quiet organisation does not
    /// alert on a handful of events (> 0).
    pub min_baseline: f64,
    /// Weight of the newest minute in the moving average, in (0, 1]: 0.1 remembers
    /// roughly the last ten minutes.
    pub smoothing: f64,
    /// Completed minutes observed before the rule may fire (the baseline is learned
    /// first; the failed sign-in rules cover that time).
    pub warmup_minutes: u32,
}

/// Detector thresholds. [`Default`] gives the documented defaults (see `docs/audit.md`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlertConfig {
    /// Failed sign-ins per account. Default: 5 in 5 minutes.
    pub per_account: WindowRule,
    /// Failed sign-ins per source address. Default: 20 in 5 minutes.
    pub per_source: WindowRule,
    /// Failed sign-ins per organisation. Default: 50 in 5 minutes.
    pub per_org: WindowRule,
    /// Alert at once on [`Action::AccountLocked`]. Default: on.
    pub lockouts: bool,
    /// All events per organisation and minute. Default: factor 5, floor 60/min,
    /// smoothing 0.1, warm-up 3 minutes.
    pub traffic: SpikeRule,
    /// Failed or denied events per organisation and minute. Default: factor 5, floor
    /// 10/min, smoothing 0.1, warm-up 3 minutes.
    pub errors: SpikeRule,
    /// HTTP requests per minute, per organisation (verified) and per client address
    /// ([`Detectors::observe_http`]). Default: factor 5, floor 300/min, smoothing 0.1,
    /// warm-up 3 minutes.
    pub http_traffic: SpikeRule,
    /// HTTP 5xx responses per minute, deployment-wide. Default: factor 5, floor 5/min,
    /// smoothing 0.1, warm-up 3 minutes.
    pub http_errors: SpikeRule,
    /// Keys tracked by each detector (accounts, addresses, organisations); beyond it the
    /// least recently seen key is forgotten. Default: 10,000.
    pub max_tracked_keys: usize,
}

impl Default for AlertConfig {
    fn default() -> Self {
        Self {
            per_account: WindowRule::new(5, Duration::minutes(5)),
            per_source: WindowRule::new(20, Duration::minutes(5)),
            per_org: WindowRule::new(50, Duration::minutes(5)),
            lockouts: true,
            traffic: SpikeRule {
                enabled: true,
                factor: 5.0,
                min_baseline: 60.0,
                smoothing: 0.1,
                warmup_minutes: 3,
            },
            errors: SpikeRule {
                enabled: true,
                factor: 5.0,
                min_baseline: 10.0,
                smoothing: 0.1,
                warmup_minutes: 3,
            },
            http_traffic: SpikeRule {
                enabled: true,
                factor: 5.0,
                min_baseline: 300.0,
                smoothing: 0.1,
                warmup_minutes: 3,
            },
            http_errors: SpikeRule {
                enabled: true,
                factor: 5.0,
                min_baseline: 5.0,
                smoothing: 0.1,
                warmup_minutes: 3,
            },
            max_tracked_keys: 10_000,
        }
    }
}

/// The most timestamps one sliding-window detector may hold (keys × threshold), about
/// 160 MB.
const MAX_WINDOW_ENTRIES: u64 = 10_000_000;

impl AlertConfig {
    /// Checks the values: positive windows for enabled rules, factor > 1, floor > 0,
    /// smoothing in (0, 1], at least one tracked key, and at most 10,000,000 remembered
    /// timestamps per window detector (`max_tracked_keys` × the largest threshold).
    pub fn validate(&self) -> Result<()> {
        let invalid = |field, reason| Err(AuditError::Invalid { field, reason });
        for (field, rule) in [
            ("per_account", self.per_account),
            ("per_source", self.per_source),
            ("per_org", self.per_org),
        ] {
            if rule.threshold > 0 && !rule.window.is_positive() {
                return invalid(field, "window must be positive");
            }
        }
        for (field, rule) in [
            ("traffic", self.traffic),
            ("errors", self.errors),
            ("http_traffic", self.http_traffic),
            ("http_errors", self.http_errors),
        ] {
            if !rule.enabled {
                continue;
            }
            if !(rule.factor.is_finite() && rule.factor > 1.0) {
                return invalid(field, "factor must be finite and above 1");
            }
            if !(rule.min_baseline.is_finite() && rule.min_baseline > 0.0) {
                return invalid(field, "min_baseline must be finite and positive");
            }
            if !(rule.smoothing > 0.0 && rule.smoothing <= 1.0) {
                return invalid(field, "smoothing must be in (0, 1]");
            }
        }
        if self.max_tracked_keys == 0 {
            return invalid("max_tracked_keys", "must be at least 1");
        }
        // A window keeps up to `threshold` timestamps per key: bound the product so that a
        // configuration cannot ask for gigabytes (the defaults use 200,000 entries).
        let threshold = [self.per_account, self.per_source, self.per_org]
            .iter()
            .map(|r| u64::from(r.threshold))
            .max()
            .unwrap_or(0);
        if threshold.saturating_mul(self.max_tracked_keys as u64) > MAX_WINDOW_ENTRIES {
            return invalid(
                "max_tracked_keys",
                "max_tracked_keys × the largest threshold must not exceed 10,000,000",
            );
        }
        Ok(())
    }
}

/// All detectors, fed one event at a time. Pure: no clock, no I/O; time is `event.at`.
///
/// ```
/// use procuhelp_audit::{Action, Actor, AlertConfig, AlertKind, AuditEvent, Detectors, Outcome};
/// use procuhelp_core::{OrgId, UserId};
///
/// let mut detectors = Detectors::new(AlertConfig::default())?;
/// let (org, user) = (OrgId::new(), UserId::new());
/// let t0 = time::macros::datetime!(2026-01-01 09:00 UTC);
/// let mut alerts = Vec::new();
/// for i in 0..5 {
///     let failed = AuditEvent::new(Some(org), Actor::System, Action::LoginFailed, Outcome::Failure)
///         .person(user, None, None)
///         .at(t0 + time::Duration::seconds(10 * i));
///     alerts.extend(detectors.observe(&failed));
/// }
/// assert_eq!(alerts.len(), 1);
/// assert_eq!(alerts[0].kind, AlertKind::FailedLoginsPerAccount);
/// # Ok::<(), procuhelp_audit::AuditError>(())
/// ```
#[derive(Debug)]
pub struct Detectors {
    config: AlertConfig,
    per_account: Lru<(Option<OrgId>, String), Window>,
    per_source: Lru<IpAddr, Window>,
    per_org: Lru<Option<OrgId>, Window>,
    traffic: Lru<Option<OrgId>, Spike>,
    errors: Lru<Option<OrgId>, Spike>,
    http_by_org: Lru<OrgId, Spike>,
    http_by_source: Lru<IpAddr, Spike>,
    http_errors: Spike,
}

/// One HTTP response, as the HTTP-fed detectors see it ([`Detectors::observe_http`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpResponse {
    /// When it was answered.
    pub at: OffsetDateTime,
    /// Its status code.
    pub status: u16,
    /// The organisation, once the request's credential was verified (never a claim).
    pub org: Option<OrgId>,
    /// The client address (after the trusted-proxy rules).
    pub source: Option<IpAddr>,
}

impl Detectors {
    /// Detectors with `config` (checked with [`AlertConfig::validate`]).
    pub fn new(config: AlertConfig) -> Result<Self> {
        config.validate()?;
        let cap = config.max_tracked_keys;
        Ok(Self {
            config,
            per_account: Lru::new(cap),
            per_source: Lru::new(cap),
            per_org: Lru::new(cap),
            traffic: Lru::new(cap),
            errors: Lru::new(cap),
            http_by_org: Lru::new(cap),
            http_by_source: Lru::new(cap),
            http_errors: Spike::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &AlertConfig {
        &self.config
    }

    /// Keys currently tracked, summed over all detectors (bounded by five times
    /// [`AlertConfig::max_tracked_keys`]).
    pub fn tracked_keys(&self) -> usize {
        self.per_account.len()
            + self.per_source.len()
            + self.per_org.len()
            + self.traffic.len()
            + self.errors.len()
            + self.http_by_org.len()
            + self.http_by_source.len()
    }

    /// Feeds one HTTP response; returns the alerts it raises (usually none): a request
    /// rate far above its baseline for one organisation or one client address
    /// ([`AlertKind::HttpTrafficSpike`]), or a 5xx rate far above its baseline across the
    /// deployment ([`AlertKind::HttpErrorSpike`]).
    pub fn observe_http(&mut self, r: &HttpResponse) -> Vec<Alert> {
        let mut alerts = Vec::new();
        let c = self.config;
        if c.http_traffic.enabled {
            if let Some(org) = r.org
                && let Some(a) = self.http_by_org.entry(org).hit(c.http_traffic, r.at)
            {
                alerts.push(a.into_alert(AlertKind::HttpTrafficSpike, Some(org)));
            }
            // An address is new when it floods: its first minutes are held to the floor
            // (× factor) instead of waiting out a warm-up that would learn the flood.
            // IPv6 clients are keyed by their /64, which one client can rotate within.
            let address = r.source.map(|ip| match ip {
                IpAddr::V6(v6) => {
                    let bits = u128::from(v6) & !((1u128 << 64) - 1);
                    IpAddr::V6(std::net::Ipv6Addr::from(bits))
                }
                v4 => v4,
            });
            let from_first_minute = SpikeRule {
                warmup_minutes: 0,
                ..c.http_traffic
            };
            if let Some(address) = address
                && let Some(a) = self
                    .http_by_source
                    .entry(address)
                    .hit(from_first_minute, r.at)
            {
                let mut alert = a.into_alert(AlertKind::HttpTrafficSpike, r.org);
                alert.key = AlertKey::Source { address };
                alerts.push(alert);
            }
        }
        if c.http_errors.enabled {
            if r.status >= 500 {
                if let Some(a) = self.http_errors.hit(c.http_errors, r.at) {
                    alerts.push(a.into_alert(AlertKind::HttpErrorSpike, None));
                }
            } else {
                self.http_errors.roll(c.http_errors, r.at);
            }
        }
        alerts
    }

    /// Feeds one event; returns the alerts it raises (usually none).
    pub fn observe(&mut self, event: &AuditEvent) -> Vec<Alert> {
        self.observe_signal(&Signal::of(event))
    }

    pub(super) fn observe_signal(&mut self, s: &Signal) -> Vec<Alert> {
        let mut alerts = Vec::new();
        let c = self.config;
        if s.failed_login {
            if let Some(subject) = &s.account {
                let key = (s.org, subject.clone());
                if let Some(a) = self.per_account.entry(key).hit(c.per_account, s.at) {
                    alerts.push(a.into_alert(
                        AlertKind::FailedLoginsPerAccount,
                        s.org,
                        AlertKey::Account {
                            subject: subject.clone(),
                        },
                        c.per_account,
                    ));
                }
            }
            if let Some(address) = s.source
                && let Some(a) = self.per_source.entry(address).hit(c.per_source, s.at)
            {
                alerts.push(a.into_alert(
                    AlertKind::FailedLoginsPerSource,
                    s.org,
                    AlertKey::Source { address },
                    c.per_source,
                ));
            }
            if let Some(a) = self.per_org.entry(s.org).hit(c.per_org, s.at) {
                alerts.push(a.into_alert(
                    AlertKind::FailedLoginsPerOrg,
                    s.org,
                    AlertKey::Org,
                    c.per_org,
                ));
            }
        }
        if s.locked && c.lockouts {
            let key = match (&s.account, s.source) {
                (Some(subject), _) => AlertKey::Account {
                    subject: subject.clone(),
                },
                (None, Some(address)) => AlertKey::Source { address },
                (None, None) => AlertKey::Org,
            };
            alerts.push(immediate(AlertKind::AccountLocked, s, key));
        }
        if s.backup_problem {
            alerts.push(immediate(AlertKind::BackupProblem, s, AlertKey::Org));
        }
        if s.operator_access {
            alerts.push(immediate(AlertKind::OperatorAccess, s, AlertKey::Org));
        }
        if c.traffic.enabled
            && let Some(a) = self.traffic.entry(s.org).hit(c.traffic, s.at)
        {
            alerts.push(a.into_alert(AlertKind::TrafficSpike, s.org));
        }
        if s.error
            && c.errors.enabled
            && let Some(a) = self.errors.entry(s.org).hit(c.errors, s.at)
        {
            alerts.push(a.into_alert(AlertKind::ErrorSpike, s.org));
        }
        alerts
    }
}

/// An alert raised by one event on its own (no window, no baseline).
fn immediate(kind: AlertKind, s: &Signal, key: AlertKey) -> Alert {
    Alert {
        id: Uuid::now_v7(),
        kind,
        org: s.org,
        key,
        window_secs: 0,
        count: 1,
        threshold: 1,
        baseline: None,
        first_at: s.at,
        last_at: s.at,
    }
}

/// What the detectors need from an event (small, so a wrapper sink can take it before
/// handing the event itself to the inner sink).
#[derive(Debug, Clone)]
pub(super) struct Signal {
    org: Option<OrgId>,
    at: OffsetDateTime,
    account: Option<String>,
    source: Option<IpAddr>,
    failed_login: bool,
    locked: bool,
    error: bool,
    backup_problem: bool,
    operator_access: bool,
}

impl Signal {
    pub(super) fn of(e: &AuditEvent) -> Self {
        let failed = matches!(e.outcome, Outcome::Failure | Outcome::Denied);
        let wants_account = matches!(e.action, Action::LoginFailed | Action::AccountLocked);
        Self {
            org: e.org,
            at: e.at,
            // The pseudonymous subject, else the acting user; never the e-mail address.
            account: wants_account
                .then(|| match (&e.personal.subject, e.actor) {
                    (Some(s), _) => Some(s.as_str().to_owned()),
                    (None, Actor::User { id }) => Some(format!("user:{id}")),
                    (None, _) => None,
                })
                .flatten(),
            source: e.personal.context.source,
            failed_login: e.action.is_auth_failure() && failed,
            locked: e.action == Action::AccountLocked,
            error: failed,
            operator_access: matches!(
                e.action,
                Action::OperatorAccessGranted
                    | Action::OperatorAccessRequested
                    | Action::OperatorAccessApproved
            ),
            backup_problem: e.action == Action::BackupOverdue
                || (failed
                    && matches!(
                        e.action,
                        Action::BackupTaken | Action::BackupDrilled | Action::BackupRestored
                    )),
        }
    }
}

/// Sliding window state of one key: the times of the most recent events (at most the
/// threshold), and when it last alerted.
#[derive(Debug, Default)]
struct Window {
    times: VecDeque<OffsetDateTime>,
    latest: Option<OffsetDateTime>,
    quiet_until: Option<OffsetDateTime>,
}

/// A window that reached its threshold.
struct Fired {
    count: u64,
    first_at: OffsetDateTime,
    last_at: OffsetDateTime,
}

impl Fired {
    fn into_alert(
        self,
        kind: AlertKind,
        org: Option<OrgId>,
        key: AlertKey,
        rule: WindowRule,
    ) -> Alert {
        Alert {
            id: Uuid::now_v7(),
            kind,
            org,
            key,
            window_secs: u64::try_from(rule.window.whole_seconds()).unwrap_or(0),
            count: self.count,
            threshold: u64::from(rule.threshold),
            baseline: None,
            first_at: self.first_at,
            last_at: self.last_at,
        }
    }
}

impl Window {
    /// Counts an event at `at`. Fires once when `threshold` events fall within `window`,
    /// then stays quiet for one window (and counts afresh).
    fn hit(&mut self, rule: WindowRule, at: OffsetDateTime) -> Option<Fired> {
        if rule.threshold == 0 {
            return None;
        }
        // Events may arrive slightly out of order: the window ends at the latest time seen.
        let now = self.latest.map_or(at, |l| l.max(at));
        self.latest = Some(now);
        let start = now - rule.window;
        while self.times.front().is_some_and(|t| *t <= start) {
            self.times.pop_front();
        }
        if at > start {
            self.times.push_back(at);
        }
        let cap = rule.threshold as usize;
        while self.times.len() > cap {
            self.times.pop_front();
        }
        if self.quiet_until.is_some_and(|q| now < q) || self.times.len() < cap {
            return None;
        }
        let first_at = self.times.iter().copied().min().unwrap_or(at);
        let count = self.times.len() as u64;
        self.times.clear();
        self.quiet_until = Some(now + rule.window);
        Some(Fired {
            count,
            first_at,
            last_at: now,
        })
    }
}

/// Per-minute counter with an exponentially weighted moving baseline.
#[derive(Debug, Default)]
struct Spike {
    /// The current minute (whole minutes since the Unix epoch).
    minute: Option<i64>,
    count: u64,
    first_at: Option<OffsetDateTime>,
    baseline: Option<f64>,
    minutes_seen: u64,
    alerted: bool,
}

struct SpikeFired {
    count: u64,
    threshold: u64,
    baseline: f64,
    first_at: OffsetDateTime,
    last_at: OffsetDateTime,
}

impl SpikeFired {
    fn into_alert(self, kind: AlertKind, org: Option<OrgId>) -> Alert {
        Alert {
            id: Uuid::now_v7(),
            kind,
            org,
            key: AlertKey::Org,
            window_secs: 60,
            count: self.count,
            threshold: self.threshold,
            baseline: Some(self.baseline),
            first_at: self.first_at,
            last_at: self.last_at,
        }
    }
}

impl Spike {
    fn hit(&mut self, rule: SpikeRule, at: OffsetDateTime) -> Option<SpikeFired> {
        self.roll(rule, at);
        if self.count == 0 {
            self.first_at = Some(at);
        }
        self.count += 1;
        if self.alerted || self.minutes_seen < u64::from(rule.warmup_minutes) {
            return None;
        }
        let baseline = self.baseline.unwrap_or(0.0);
        let threshold = (baseline.max(rule.min_baseline) * rule.factor).ceil();
        if (self.count as f64) < threshold {
            return None;
        }
        self.alerted = true;
        Some(SpikeFired {
            count: self.count,
            // A finite, positive f64 below 2^64 here for any sane config; saturates otherwise.
            threshold: threshold as u64,
            baseline,
            first_at: self.first_at.unwrap_or(at),
            last_at: at,
        })
    }

    /// Moves the clock to `at` without counting: minutes without a counted event (no 5xx
    /// among the responses) are learned as zeros, so the first burst after quiet minutes
    /// is measured against them.
    fn roll(&mut self, rule: SpikeRule, at: OffsetDateTime) {
        let minute = at.unix_timestamp().div_euclid(60);
        match self.minute {
            None => self.start(minute, at),
            Some(current) if minute > current => {
                // Close the finished minute, then decay over empty minutes in between.
                let finished = self.count as f64;
                let a = rule.smoothing;
                let mut b = match self.baseline {
                    None => finished,
                    Some(b) => a * finished + (1.0 - a) * b,
                };
                let gap = minute - current - 1;
                if gap > 0 {
                    b *= (1.0 - a).powi(i32::try_from(gap).unwrap_or(i32::MAX));
                }
                self.baseline = Some(b);
                self.minutes_seen = self
                    .minutes_seen
                    .saturating_add(u64::try_from(minute - current).unwrap_or(u64::MAX));
                self.start(minute, at);
            }
            // Same minute, or a late event of an earlier one: counted in the current one.
            Some(_) => {}
        }
    }

    fn start(&mut self, minute: i64, at: OffsetDateTime) {
        self.minute = Some(minute);
        self.count = 0;
        self.first_at = Some(at);
        self.alerted = false;
    }
}

/// A map that keeps at most `cap` keys, forgetting the least recently used.
#[derive(Debug)]
struct Lru<K, V> {
    cap: usize,
    tick: u64,
    map: HashMap<K, (u64, V)>,
    order: BTreeMap<u64, K>,
}

impl<K: Hash + Eq + Clone, V: Default> Lru<K, V> {
    fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            tick: 0,
            map: HashMap::new(),
            order: BTreeMap::new(),
        }
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    /// The value of `key` (created empty if new), marked as most recently used.
    fn entry(&mut self, key: K) -> &mut V {
        self.tick += 1;
        let tick = self.tick;
        if let Some((old, _)) = self.map.get(&key) {
            self.order.remove(old);
        } else {
            while self.map.len() >= self.cap {
                match self.order.pop_first() {
                    Some((_, oldest)) => {
                        self.map.remove(&oldest);
                    }
                    None => break,
                }
            }
        }
        self.order.insert(tick, key.clone());
        let slot = self.map.entry(key).or_insert_with(|| (tick, V::default()));
        slot.0 = tick;
        &mut slot.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lru_keeps_the_most_recent_keys() {
        let mut lru: Lru<u32, u32> = Lru::new(3);
        for k in 0..3 {
            *lru.entry(k) += 1;
        }
        *lru.entry(0) += 1; // 0 is now the most recent; 1 the least
        *lru.entry(9) += 1;
        assert_eq!(lru.len(), 3);
        assert!(lru.map.contains_key(&0) && !lru.map.contains_key(&1));
        assert_eq!(lru.map.get(&0).map(|v| v.1), Some(2));
        assert_eq!(lru.order.len(), 3);
    }

    #[test]
    fn window_fires_once_then_counts_afresh_after_a_quiet_window() {
        let rule = WindowRule::new(3, Duration::minutes(1));
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let mut w = Window::default();
        assert!(w.hit(rule, t0).is_none());
        assert!(w.hit(rule, t0 + Duration::seconds(61)).is_none()); // t0 fell out
        assert!(w.hit(rule, t0 + Duration::seconds(70)).is_none());
        let fired = w.hit(rule, t0 + Duration::seconds(80));
        assert!(fired.is_some_and(|f| f.count == 3 && f.first_at == t0 + Duration::seconds(61)));
        for s in 81..100 {
            assert!(w.hit(rule, t0 + Duration::seconds(s)).is_none(), "{s}");
        }
        assert!(w.hit(rule, t0 + Duration::seconds(141)).is_some());
    }

    #[test]
    fn backup_failures_and_overdue_backups_alert_at_once_and_successes_do_not() {
        let mut d = Detectors::new(AlertConfig::default()).unwrap();
        let at = OffsetDateTime::UNIX_EPOCH;
        let event = |action, outcome| AuditEvent::new(None, Actor::System, action, outcome).at(at);
        for (action, outcome, alerts) in [
            (Action::BackupTaken, Outcome::Success, false),
            (Action::BackupDrilled, Outcome::Success, false),
            (Action::BackupExpired, Outcome::Success, false),
            (Action::BackupTaken, Outcome::Failure, true),
            (Action::BackupDrilled, Outcome::Failure, true),
            (Action::BackupRestored, Outcome::Failure, true),
            (Action::BackupOverdue, Outcome::Failure, true),
        ] {
            let raised = d.observe(&event(action, outcome));
            let backup: Vec<_> = raised
                .iter()
                .filter(|a| a.kind == AlertKind::BackupProblem)
                .collect();
            assert_eq!(backup.len(), usize::from(alerts), "{action:?} {outcome:?}");
        }
    }

    #[test]
    fn operator_access_alerts_at_once_when_asked_granted_or_approved() {
        let mut d = Detectors::new(AlertConfig::default()).unwrap();
        let at = OffsetDateTime::UNIX_EPOCH;
        let org = Some(OrgId::new());
        for (action, alerts) in [
            (Action::OperatorAccessGranted, true),
            (Action::OperatorAccessRequested, true),
            (Action::OperatorAccessApproved, true),
            (Action::OperatorAccessRevoked, false),
            (Action::OperatorAccessRefused, false),
        ] {
            let event = AuditEvent::new(org, Actor::System, action, Outcome::Success).at(at);
            let raised = d.observe(&event);
            let n = raised
                .iter()
                .filter(|a| a.kind == AlertKind::OperatorAccess)
                .count();
            assert_eq!(n, usize::from(alerts), "{action:?}");
        }
    }

    #[test]
    fn bad_configs_are_refused() {
        let mut c = AlertConfig::default();
        c.traffic.factor = f64::NAN;
        assert!(Detectors::new(c).is_err());
        let mut c = AlertConfig::default();
        c.errors.smoothing = 0.0;
        assert!(Detectors::new(c).is_err());
        let mut c = AlertConfig::default();
        c.per_source.window = Duration::ZERO;
        assert!(Detectors::new(c).is_err());
        let c = AlertConfig {
            per_source: WindowRule::off(),
            max_tracked_keys: 1,
            ..AlertConfig::default()
        };
        assert!(Detectors::new(c).is_ok());
    }
}
