//! Sign-in throttling: attempts are counted per account, per second factor of a user and
//! per source address; past a free allowance each attempt doubles the wait before the
//! next one is even considered, an account or second factor that keeps failing is locked
//! for a while, and a second factor also has a hard cap per day.
//!
//! An attempt is **reserved before it is verified** ([`LoginThrottle::reserve`]): one
//! short transaction locks the key's row, refuses if a back-off or lock is in force, and
//! otherwise counts the attempt and sets the back-off the *next* attempt will meet. N
//! parallel guesses therefore queue on the row lock and see each other's counts; at most
//! the free allowance plus one pass before the back-off refuses the rest. A success gives
//! its reservation back ([`LoginThrottle::succeeded`]) in the caller's transaction, so it
//! takes effect only if the sign-in does.
//!
//! Counters live in `app.login_throttle` (shared by every server instance), keyed by a
//! SHA-256 of the key — never the email or address itself. An account key is made from
//! the organisation and the normalised email whether or not such a user exists, so a
//! lock tells an attacker nothing about which accounts exist. The table is not
//! tenant-scoped (it is consulted before anyone is authenticated), so the runtime role
//! reaches it from any connection, including a tenant transaction's.

use std::net::IpAddr;

use procuhelp_core::{OrgId, UserId};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use time::{Duration, OffsetDateTime};

use crate::directory::Email;
use crate::{AuthError, AuthResult};

/// What is throttled.
#[derive(Debug, Clone, Copy)]
pub enum ThrottleKey<'a> {
    /// One account's password: organisation and normalised email.
    Account(OrgId, &'a Email),
    /// One user's second factor (TOTP and recovery codes). A correct password never
    /// resets it.
    SecondFactor(OrgId, UserId),
    /// One client address.
    Address(IpAddr),
}

impl ThrottleKey<'_> {
    fn hash(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        match self {
            ThrottleKey::Account(org, email) => {
                h.update(b"procuhelp/throttle/account/v1\0");
                h.update(org.as_uuid().as_bytes());
                h.update(email.as_str().as_bytes());
            }
            ThrottleKey::SecondFactor(org, user) => {
                h.update(b"procuhelp/throttle/second-factor/v1\0");
                h.update(org.as_uuid().as_bytes());
                h.update(user.as_uuid().as_bytes());
            }
            ThrottleKey::Address(ip) => {
                h.update(b"procuhelp/throttle/address/v1\0");
                h.update(ip.to_string().as_bytes());
            }
        }
        h.finalize().into()
    }
}

/// Limits. Defaults: an account gets 3 free attempts, then 1 s, 2 s, 4 s … of back-off
/// (at most 15 min), and is locked for 15 min at 10 failures; a second factor the same,
/// and in addition at most 30 failures a day (then locked until the day is over); an
/// address gets 20 free failures (offices share addresses), then the same back-off.
/// Counters restart after 15 min without attempts.
#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    /// Failures per account before back-off starts.
    pub account_free: i32,
    /// Failures per account that lock it.
    pub account_lock_after: i32,
    /// How long a lock lasts.
    pub lock_for: Duration,
    /// Failures per address before back-off starts.
    pub address_free: i32,
    /// Second-factor failures per user before back-off starts.
    pub second_factor_free: i32,
    /// Consecutive second-factor failures that lock it (for `lock_for`).
    pub second_factor_lock_after: i32,
    /// Second-factor failures per day that lock it until the day is over.
    pub second_factor_daily_cap: i32,
    /// The length of the daily cap's day (counted from its first failure).
    pub day: Duration,
    /// First back-off step.
    pub base_delay: Duration,
    /// Longest back-off step.
    pub max_delay: Duration,
    /// Failures older than this (with no block in force) are forgotten.
    pub window: Duration,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        Self {
            account_free: 3,
            account_lock_after: 10,
            lock_for: Duration::minutes(15),
            address_free: 20,
            second_factor_free: 3,
            second_factor_lock_after: 10,
            second_factor_daily_cap: 30,
            day: Duration::days(1),
            base_delay: Duration::seconds(1),
            max_delay: Duration::minutes(15),
            window: Duration::minutes(15),
        }
    }
}

/// The limits of one kind of key.
#[derive(Debug, Clone, Copy)]
struct Rules {
    free: i32,
    lock_after: Option<i32>,
    daily_cap: Option<i32>,
}

impl ThrottlePolicy {
    fn delay_after(&self, failures: i32, free: i32) -> Option<Duration> {
        let over = failures - free;
        if over <= 0 {
            return None;
        }
        let factor = 1i32.checked_shl(u32::try_from(over - 1).unwrap_or(31).min(30));
        let delay = factor
            .and_then(|f| self.base_delay.checked_mul(f))
            .unwrap_or(self.max_delay);
        Some(delay.min(self.max_delay))
    }

    fn rules(&self, key: &ThrottleKey<'_>) -> Rules {
        match key {
            ThrottleKey::Account(..) => Rules {
                free: self.account_free,
                lock_after: Some(self.account_lock_after),
                daily_cap: None,
            },
            ThrottleKey::SecondFactor(..) => Rules {
                free: self.second_factor_free,
                lock_after: Some(self.second_factor_lock_after),
                daily_cap: Some(self.second_factor_daily_cap),
            },
            ThrottleKey::Address(_) => Rules {
                free: self.address_free,
                lock_after: None,
                daily_cap: None,
            },
        }
    }

    /// The next state of a key's counters if an attempt is made at `now`, or how long
    /// until one is considered. Pure, so every rule is tested without a database.
    fn reserve(
        &self,
        rules: Rules,
        mut c: Counters,
        now: OffsetDateTime,
    ) -> Result<(Counters, Reserved), Duration> {
        if let Some(until) = c.blocked_until.filter(|u| *u > now) {
            return Err(until - now);
        }
        let mut lock_lifted = false;
        if c.locked {
            // The lock ran out: lift it, and count afresh.
            lock_lifted = true;
            c.locked = false;
            c.failures = 0;
        } else if c.last_failure < now - self.window {
            c.failures = 0;
        }
        let day_started = match c.day_started {
            Some(start) if start > now - self.day => start,
            _ => {
                c.day_failures = 0;
                now
            }
        };
        c.day_started = Some(day_started);
        c.failures = c.failures.saturating_add(1);
        c.day_failures = c.day_failures.saturating_add(1);
        c.last_failure = now;
        c.blocked_until = self.delay_after(c.failures, rules.free).map(|d| now + d);
        if rules.lock_after.is_some_and(|n| c.failures >= n) {
            c.locked = true;
            c.blocked_until = Some(now + self.lock_for);
        }
        if rules.daily_cap.is_some_and(|n| c.day_failures >= n) {
            c.locked = true;
            let end = day_started + self.day;
            c.blocked_until = Some(c.blocked_until.map_or(end, |b| b.max(end)));
        }
        let reserved = Reserved {
            failures: c.failures,
            day_failures: c.day_failures,
            lock_lifted,
            locks_if_failed: c.locked,
        };
        Ok((c, reserved))
    }
}

/// A key's row in `app.login_throttle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counters {
    failures: i32,
    last_failure: OffsetDateTime,
    blocked_until: Option<OffsetDateTime>,
    locked: bool,
    day_started: Option<OffsetDateTime>,
    day_failures: i32,
}

/// An attempt that may go ahead, as counted for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reserved {
    /// Attempts counted for the key since its last success, this one included.
    pub failures: i32,
    /// Attempts counted for the key today (second factors' daily cap).
    pub day_failures: i32,
    /// A lock on the key had run out and was lifted by this reservation (the caller
    /// records the unlock).
    pub lock_lifted: bool,
    /// Should this attempt fail, the key is now locked (the caller records the lock).
    pub locks_if_failed: bool,
}

/// An attempt the throttle refused without counting it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// How long until the next attempt is considered (the longest wait of the keys).
    pub retry_after: Duration,
    /// A key was locked (repeated failures or the daily cap), not only backing off.
    pub locked: bool,
}

type Row = (
    Vec<u8>,
    i32,
    OffsetDateTime,
    Option<OffsetDateTime>,
    bool,
    Option<OffsetDateTime>,
    i32,
);

/// The throttle. Reservations run on `pool` (the table is not tenant-scoped) in a short
/// transaction of their own; successes and unlocks run on the caller's connection.
#[derive(Debug, Clone)]
pub struct LoginThrottle {
    pool: PgPool,
    policy: ThrottlePolicy,
}

impl LoginThrottle {
    /// A throttle with `policy`, reserving on `pool`.
    pub fn new(pool: PgPool, policy: ThrottlePolicy) -> Self {
        Self { pool, policy }
    }

    /// The limits in force.
    pub fn policy(&self) -> &ThrottlePolicy {
        &self.policy
    }

    /// Reserves one attempt on every key, atomically: either each key counts it and the
    /// answer has one [`Reserved`] per key (in the order given), or — if any key has a
    /// back-off or lock in force — nothing is counted and the answer is
    /// [`AuthError::Throttled`] with the longest wait.
    ///
    /// Takes a connection of its own from the pool and returns it before answering: call
    /// it while holding **no** connection of that pool (before a tenant transaction is
    /// opened, or after it ended), so a burst of sign-ins can never hold every
    /// connection while waiting for one more.
    pub async fn reserve(
        &self,
        keys: &[ThrottleKey<'_>],
        now: OffsetDateTime,
    ) -> AuthResult<Vec<Reserved>> {
        self.try_reserve(keys, now)
            .await?
            .map_err(|refused| AuthError::Throttled {
                retry_after: refused.retry_after,
            })
    }

    /// [`reserve`](Self::reserve), telling a refusal apart from a storage failure: the
    /// inner `Err` says how long to wait and whether a lock (rather than a back-off)
    /// refused the attempt, for the caller's audit event.
    pub async fn try_reserve(
        &self,
        keys: &[ThrottleKey<'_>],
        now: OffsetDateTime,
    ) -> AuthResult<Result<Vec<Reserved>, Refused>> {
        let hashes: Vec<Vec<u8>> = keys.iter().map(|k| k.hash().to_vec()).collect();
        let mut tx = self.pool.begin().await?;
        // Creates missing rows and locks every row in key order (no two reservations
        // lock the same rows in different orders); the no-op update returns the row as
        // it is.
        let rows: Vec<Row> = sqlx::query_as(
            "INSERT INTO app.login_throttle AS t (key_hash, failures, last_failure)
             SELECT DISTINCT k, 0, $2::timestamptz FROM unnest($1::bytea[]) AS k ORDER BY k
             ON CONFLICT (key_hash) DO UPDATE SET failures = t.failures
             RETURNING key_hash, failures, last_failure, blocked_until, locked,
                       day_started, day_failures",
        )
        .bind(&hashes)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let mut reserved = Vec::with_capacity(keys.len());
        let mut updates = Vec::with_capacity(keys.len());
        let mut wait = Duration::ZERO;
        let mut locked = false;
        for (key, hash) in keys.iter().zip(&hashes) {
            let Some(row) = rows.iter().find(|r| &r.0 == hash) else {
                return Err(AuthError::Internal);
            };
            let counters = Counters {
                failures: row.1,
                last_failure: row.2,
                blocked_until: row.3,
                locked: row.4,
                day_started: row.5,
                day_failures: row.6,
            };
            match self.policy.reserve(self.policy.rules(key), counters, now) {
                Ok((next, r)) => {
                    reserved.push(r);
                    if !updates.iter().any(|(h, _)| *h == hash) {
                        updates.push((hash, next));
                    }
                }
                Err(w) => {
                    wait = wait.max(w);
                    // Refused while locked: the lock (not a back-off) is what is in force.
                    locked |= counters.locked;
                }
            }
        }
        if wait > Duration::ZERO {
            tx.rollback().await?;
            return Ok(Err(Refused {
                retry_after: wait,
                locked,
            }));
        }
        for (hash, c) in updates {
            sqlx::query(
                "UPDATE app.login_throttle SET failures = $2, last_failure = $3,
                        blocked_until = $4, locked = $5, day_started = $6, day_failures = $7
                 WHERE key_hash = $1",
            )
            .bind(hash)
            .bind(c.failures)
            .bind(c.last_failure)
            .bind(c.blocked_until)
            .bind(c.locked)
            .bind(c.day_started)
            .bind(c.day_failures)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Ok(reserved))
    }

    /// Gives the reservations of a successful attempt back, on `conn` (the caller's
    /// transaction, so it counts only if the sign-in commits): an account's back-off and
    /// count are cleared; a second factor's consecutive count is cleared but its daily
    /// count only loses this attempt; an address only loses this attempt.
    pub async fn succeeded(
        &self,
        conn: &mut PgConnection,
        keys: &[ThrottleKey<'_>],
    ) -> AuthResult<()> {
        let mut keys: Vec<(ThrottleKey<'_>, [u8; 32])> =
            keys.iter().map(|k| (*k, k.hash())).collect();
        // Row locks in key order, like reservations.
        keys.sort_by_key(|k| k.1);
        for (key, hash) in keys {
            let statement = match key {
                ThrottleKey::Account(..) => {
                    "UPDATE app.login_throttle
                     SET failures = 0, blocked_until = NULL, locked = false
                     WHERE key_hash = $1"
                }
                ThrottleKey::SecondFactor(..) => {
                    "UPDATE app.login_throttle
                     SET failures = 0, blocked_until = NULL, locked = false,
                         day_failures = greatest(day_failures - 1, 0)
                     WHERE key_hash = $1"
                }
                // An address's back-off stays if it is still over its allowance: other
                // clients behind it may be guessing.
                ThrottleKey::Address(_) => {
                    "UPDATE app.login_throttle
                     SET failures = greatest(failures - 1, 0),
                         blocked_until = CASE WHEN failures - 1 <= $2 THEN NULL
                                              ELSE blocked_until END
                     WHERE key_hash = $1"
                }
            };
            let mut query = sqlx::query(statement).bind(hash.as_slice());
            if matches!(key, ThrottleKey::Address(_)) {
                query = query.bind(self.policy.address_free);
            }
            query.execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// Until when sign-in for `keys` is held back (a back-off or a lock), if it is at
    /// `now`: what an admin sees before lifting it.
    pub async fn held_until(
        &self,
        conn: &mut PgConnection,
        keys: &[ThrottleKey<'_>],
        now: OffsetDateTime,
    ) -> AuthResult<Option<OffsetDateTime>> {
        let hashes: Vec<Vec<u8>> = keys.iter().map(|k| k.hash().to_vec()).collect();
        let until: Option<OffsetDateTime> = sqlx::query_scalar(
            "SELECT max(blocked_until) FROM app.login_throttle
             WHERE key_hash = ANY($1) AND blocked_until > $2",
        )
        .bind(&hashes)
        .bind(now)
        .fetch_one(conn)
        .await?;
        Ok(until)
    }

    /// Lifts every lock, back-off and count of `keys` early (an admin's unlock), on
    /// `conn` (the admin's transaction, committed after the audit event). True if any
    /// key had a back-off or lock.
    pub async fn unlock(
        &self,
        conn: &mut PgConnection,
        keys: &[ThrottleKey<'_>],
    ) -> AuthResult<bool> {
        let mut hashes: Vec<Vec<u8>> = keys.iter().map(|k| k.hash().to_vec()).collect();
        hashes.sort();
        let done = sqlx::query(
            "UPDATE app.login_throttle
             SET failures = 0, blocked_until = NULL, locked = false,
                 day_started = NULL, day_failures = 0
             WHERE key_hash = ANY($1) AND blocked_until IS NOT NULL",
        )
        .bind(&hashes)
        .execute(conn)
        .await?;
        Ok(done.rows_affected() > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-11-25 09:00 UTC);

    fn fresh() -> Counters {
        Counters {
            failures: 0,
            last_failure: T0,
            blocked_until: None,
            locked: false,
            day_started: None,
            day_failures: 0,
        }
    }

    #[test]
    fn back_off_doubles_and_is_capped() {
        let p = ThrottlePolicy::default();
        assert_eq!(p.delay_after(3, 3), None);
        assert_eq!(p.delay_after(4, 3), Some(Duration::seconds(1)));
        assert_eq!(p.delay_after(5, 3), Some(Duration::seconds(2)));
        assert_eq!(p.delay_after(8, 3), Some(Duration::seconds(16)));
        assert_eq!(p.delay_after(40, 3), Some(Duration::minutes(15)));
        assert_eq!(p.delay_after(i32::MAX, 3), Some(Duration::minutes(15)));
    }

    #[test]
    fn a_reservation_sets_the_back_off_the_next_attempt_meets() {
        let p = ThrottlePolicy::default();
        let rules = p.rules(&ThrottleKey::Address("10.0.0.1".parse().unwrap()));
        let mut c = fresh();
        for n in 1..=20 {
            let (next, r) = p.reserve(rules, c, T0).unwrap();
            assert_eq!((r.failures, next.blocked_until), (n, None));
            c = next;
        }
        // The 21st goes ahead and blocks the 22nd for a second, even at the same instant.
        let (next, _) = p.reserve(rules, c, T0).unwrap();
        assert_eq!(p.reserve(rules, next, T0), Err(Duration::seconds(1)));
        assert!(p.reserve(rules, next, T0 + Duration::seconds(1)).is_ok());
        // Addresses never lock.
        assert!(!next.locked);
    }

    #[test]
    fn locks_lift_when_they_run_out_and_counting_restarts() {
        let p = ThrottlePolicy::default();
        let email = Email::parse("a@x.io").unwrap();
        let rules = p.rules(&ThrottleKey::Account(OrgId::new(), &email));
        let mut c = Counters {
            failures: 9,
            ..fresh()
        };
        let (locked, r) = p.reserve(rules, c, T0).unwrap();
        assert!(r.locks_if_failed && locked.locked);
        assert_eq!(
            p.reserve(rules, locked, T0 + Duration::minutes(14)),
            Err(Duration::minutes(1))
        );
        let (after, r) = p
            .reserve(rules, locked, T0 + Duration::minutes(15))
            .unwrap();
        assert!(r.lock_lifted && !after.locked);
        assert_eq!(r.failures, 1);
        // Failures older than the window are forgotten.
        c.failures = 5;
        let (_, r) = p.reserve(rules, c, T0 + Duration::minutes(16)).unwrap();
        assert_eq!(r.failures, 1);
    }

    #[test]
    fn second_factors_have_a_daily_cap_that_outlasts_locks() {
        let p = ThrottlePolicy::default();
        let rules = p.rules(&ThrottleKey::SecondFactor(OrgId::new(), UserId::new()));
        let mut c = fresh();
        let mut now = T0;
        for n in 1..=30 {
            // Wait out whatever back-off or lock is in force.
            if let Err(wait) = p.reserve(rules, c, now) {
                now += wait;
            }
            let (next, r) = p.reserve(rules, c, now).unwrap();
            assert_eq!(r.day_failures, n);
            assert_eq!(r.locks_if_failed, n % 10 == 0, "failure {n}");
            c = next;
        }
        // The 30th locks until a day after the first, not for 15 minutes.
        assert_eq!(c.blocked_until, Some(T0 + Duration::days(1)));
        assert!(p.reserve(rules, c, now + Duration::hours(1)).is_err());
        let (next, r) = p.reserve(rules, c, T0 + Duration::days(1)).unwrap();
        assert!(r.lock_lifted);
        assert_eq!((next.failures, next.day_failures), (1, 1));
    }

    #[test]
    fn keys_do_not_collide_and_hide_the_email() {
        let org = OrgId::new();
        let a = Email::parse("a@x.io").unwrap();
        let b = Email::parse("b@x.io").unwrap();
        let ka = ThrottleKey::Account(org, &a).hash();
        assert_ne!(ka, ThrottleKey::Account(org, &b).hash());
        assert_ne!(ka, ThrottleKey::Account(OrgId::new(), &a).hash());
        let user = UserId::new();
        assert_ne!(
            ThrottleKey::SecondFactor(org, user).hash(),
            ThrottleKey::SecondFactor(OrgId::new(), user).hash()
        );
        assert_ne!(
            ThrottleKey::Address("10.0.0.1".parse().unwrap()).hash(),
            ThrottleKey::Address("10.0.0.2".parse().unwrap()).hash()
        );
    }
}
