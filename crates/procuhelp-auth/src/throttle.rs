//! Sign-in throttling: failed attempts are counted per account and per source address;
//! past a free allowance each failure doubles the wait before the next attempt is even
//! considered, and an account that keeps failing is locked for a while.
//!
//! Counters live in `app.login_throttle` (shared by every server instance), keyed by a
//! SHA-256 of the key — never the email or address itself. An account key is made from
//! the organisation and the normalised email whether or not such a user exists, so a
//! lock tells an attacker nothing about which accounts exist.

use std::net::IpAddr;

use procuhelp_core::OrgId;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use time::{Duration, OffsetDateTime};

use crate::directory::Email;
use crate::{AuthError, AuthResult};

/// What is throttled.
#[derive(Debug, Clone, Copy)]
pub enum ThrottleKey<'a> {
    /// One account: organisation and normalised email.
    Account(OrgId, &'a Email),
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
            ThrottleKey::Address(ip) => {
                h.update(b"procuhelp/throttle/address/v1\0");
                h.update(ip.to_string().as_bytes());
            }
        }
        h.finalize().into()
    }

    fn is_account(&self) -> bool {
        matches!(self, ThrottleKey::Account(..))
    }
}

/// Limits. Defaults: an account gets 3 free failures, then 1 s, 2 s, 4 s … of back-off
/// (at most 15 min), and is locked for 15 min at 10 failures; an address gets 20 free
/// failures (offices share addresses), then the same back-off. Counters restart after
/// 15 min without failures.
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
            base_delay: Duration::seconds(1),
            max_delay: Duration::minutes(15),
            window: Duration::minutes(15),
        }
    }
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
}

/// What a failure led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureOutcome {
    /// Consecutive failures counted for the key.
    pub failures: i32,
    /// This failure locked the account.
    pub locked_now: bool,
}

/// The throttle, on the runtime role's pool (the table is not tenant-scoped).
#[derive(Debug, Clone)]
pub struct LoginThrottle {
    pool: PgPool,
    policy: ThrottlePolicy,
}

impl LoginThrottle {
    /// A throttle with `policy`.
    pub fn new(pool: PgPool, policy: ThrottlePolicy) -> Self {
        Self { pool, policy }
    }

    /// Refuses with [`AuthError::Throttled`] when any key is blocked at `now`. Returns
    /// true if an account lock had run out and was lifted by this check (the caller
    /// records the unlock).
    pub async fn check(&self, keys: &[ThrottleKey<'_>], now: OffsetDateTime) -> AuthResult<bool> {
        let hashes: Vec<Vec<u8>> = keys.iter().map(|k| k.hash().to_vec()).collect();
        let rows: Vec<(Vec<u8>, Option<OffsetDateTime>, bool)> = sqlx::query_as(
            "SELECT key_hash, blocked_until, locked FROM app.login_throttle
             WHERE key_hash = ANY($1)",
        )
        .bind(&hashes)
        .fetch_all(&self.pool)
        .await?;
        let mut unlocked = false;
        let mut wait = Duration::ZERO;
        for (hash, blocked_until, locked) in rows {
            match blocked_until {
                Some(until) if until > now => wait = wait.max(until - now),
                Some(_) if locked => {
                    // The lock ran out: lift it, and start counting afresh.
                    let lifted = sqlx::query(
                        "UPDATE app.login_throttle SET locked = false, failures = 0,
                                blocked_until = NULL
                         WHERE key_hash = $1 AND locked AND blocked_until <= $2",
                    )
                    .bind(&hash)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                    unlocked |= lifted.rows_affected() == 1;
                }
                _ => {}
            }
        }
        if wait > Duration::ZERO {
            return Err(AuthError::Throttled { retry_after: wait });
        }
        Ok(unlocked)
    }

    /// Counts a failure against `key` and sets its back-off or lock.
    pub async fn record_failure(
        &self,
        key: ThrottleKey<'_>,
        now: OffsetDateTime,
    ) -> AuthResult<FailureOutcome> {
        let mut tx = self.pool.begin().await?;
        let (failures, was_locked): (i32, bool) = sqlx::query_as(
            "INSERT INTO app.login_throttle AS t (key_hash, failures, last_failure)
             VALUES ($1, 1, $2)
             ON CONFLICT (key_hash) DO UPDATE SET
                 failures = CASE WHEN t.last_failure < $2 - $3 AND NOT t.locked
                                 THEN 1 ELSE t.failures + 1 END,
                 last_failure = $2
             RETURNING failures, locked",
        )
        .bind(key.hash().as_slice())
        .bind(now)
        .bind(self.policy.window)
        .fetch_one(&mut *tx)
        .await?;
        let p = &self.policy;
        let (blocked_until, locked) = if key.is_account() && failures >= p.account_lock_after {
            (Some(now + p.lock_for), true)
        } else {
            let free = if key.is_account() {
                p.account_free
            } else {
                p.address_free
            };
            (p.delay_after(failures, free).map(|d| now + d), was_locked)
        };
        sqlx::query(
            "UPDATE app.login_throttle SET blocked_until = $2, locked = $3 WHERE key_hash = $1",
        )
        .bind(key.hash().as_slice())
        .bind(blocked_until)
        .bind(locked)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(FailureOutcome {
            failures,
            locked_now: locked && !was_locked,
        })
    }

    /// Forgets the failures of `key` (after a successful sign-in to that account).
    pub async fn reset(&self, key: ThrottleKey<'_>) -> AuthResult<()> {
        sqlx::query("DELETE FROM app.login_throttle WHERE key_hash = $1")
            .bind(key.hash().as_slice())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Lifts a lock or back-off early (an admin's unlock). True if there was one.
    pub async fn unlock(&self, key: ThrottleKey<'_>) -> AuthResult<bool> {
        let done = sqlx::query(
            "DELETE FROM app.login_throttle WHERE key_hash = $1 AND blocked_until IS NOT NULL",
        )
        .bind(key.hash().as_slice())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn keys_do_not_collide_and_hide_the_email() {
        let org = OrgId::new();
        let a = Email::parse("a@x.io").unwrap();
        let b = Email::parse("b@x.io").unwrap();
        let ka = ThrottleKey::Account(org, &a).hash();
        assert_ne!(ka, ThrottleKey::Account(org, &b).hash());
        assert_ne!(ka, ThrottleKey::Account(OrgId::new(), &a).hash());
        assert_ne!(
            ThrottleKey::Address("10.0.0.1".parse().unwrap()).hash(),
            ThrottleKey::Address("10.0.0.2".parse().unwrap()).hash()
        );
    }
}
