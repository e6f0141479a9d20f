//! [`VerifiedSessions`]: what `app.enter_session` answered for a session token, kept for
//! a few seconds so that the next read of that session needs no session check — and is
//! still refused the moment anything the answer depended on changes.
//!
//! Each remembered answer carries its user's *session epoch* (migration 0016), which
//! every change that can take a verified session's access away bumps in its own
//! transaction: one of the user's sessions revoked, shortened or deleted, the user's role
//! or status changed, any elevation of the user created, changed or removed. A remembered read sends the epoch with the
//! read, and PostgreSQL compares it in the same snapshot as the rows: when it moved, no
//! row is returned and the request is verified again in full. So a revocation committed
//! before a read began is seen by that read on every server, as without the cache.
//!
//! By the clock alone, an answer lasts no longer than the smallest of the cache's time
//! to live, the session's absolute expiry, its idle expiry and the next start or end of
//! one of its user's elevations. Only answers that allow are used: a remembered
//! principal that does not hold a permission by its own role is verified in full (an
//! elevation may have started, or its use must be recorded first).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use procuhelp_core::OrgId;
use time::{Duration, OffsetDateTime};

use crate::session::{Credential, SessionPrincipal};

/// Verified session answers, bounded in time and number. One per process, shared by
/// every request (put it in an `Arc`).
///
/// ```
/// use procuhelp_auth::session_read::VerifiedSessions;
/// use time::Duration;
///
/// let cache = VerifiedSessions::new(Duration::seconds(15), 10_000);
/// assert!(cache.is_empty());
/// // A cache that never remembers: every read checks its session in full.
/// let off = VerifiedSessions::disabled();
/// assert_eq!(off.capacity(), 0);
/// ```
pub struct VerifiedSessions {
    entries: Mutex<HashMap<Key, Remembered>>,
    ttl: Duration,
    capacity: usize,
    served: AtomicU64,
}

/// An organisation and the SHA-256 of a session token: the same lookup key the database
/// uses, so holding it grants nothing a stolen table of hashes would not.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Key {
    org: OrgId,
    pub(super) token_hash: [u8; 32],
}

impl Key {
    pub(super) fn of(credential: &Credential) -> Self {
        Self {
            org: credential.org,
            token_hash: credential.token.hash(),
        }
    }
}

/// One answer of `app.enter_session`.
#[derive(Clone)]
pub(super) struct Remembered {
    pub(super) principal: SessionPrincipal,
    /// The user's session epoch, read in the same snapshot as the session.
    pub(super) epoch: i64,
    /// Until when the answer holds by the clock.
    pub(super) valid_until: OffsetDateTime,
}

impl VerifiedSessions {
    /// How long an answer is kept at most, by default: long enough to serve a burst of
    /// reads, short enough that the once-a-minute `last_seen_at` touch stays close.
    pub const DEFAULT_TTL: Duration = Duration::seconds(15);
    /// How many answers are kept at most, by default (a few MiB).
    pub const DEFAULT_CAPACITY: usize = 10_000;

    /// Keeps at most `capacity` answers, each for at most `ttl`.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            ttl,
            capacity,
            served: AtomicU64::new(0),
        }
    }

    /// A cache that never remembers anything.
    pub fn disabled() -> Self {
        Self::new(Duration::ZERO, 0)
    }

    /// How many answers are kept now (some may have run out and not yet been dropped).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no answer is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most answers kept at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many reads were served from a remembered answer since this cache was made (a
    /// counter for metrics).
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    pub(super) fn count_served(&self) {
        self.served.fetch_add(1, Ordering::Relaxed);
    }

    /// Forgets every answer.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// The answer for `key`, if one is kept and still holds at `now`.
    pub(super) fn get(&self, key: &Key, now: OffsetDateTime) -> Option<Remembered> {
        let mut entries = self.lock();
        match entries.get(key) {
            Some(r) if r.valid_until > now => Some(r.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Keeps `answer` for `key` until the earlier of its own bound and `now + ttl`. When
    /// full, answers that ran out are dropped first; if none did, one other answer is
    /// dropped (its next read checks in full): one account opening many sessions churns
    /// the cache but cannot freeze others out of it.
    pub(super) fn remember(&self, key: Key, mut answer: Remembered, now: OffsetDateTime) {
        if self.capacity == 0 {
            return;
        }
        answer.valid_until = answer.valid_until.min(now + self.ttl);
        if answer.valid_until <= now {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, r| r.valid_until > now);
            if entries.len() >= self.capacity
                && let Some(other) = entries.keys().next().copied()
            {
                entries.remove(&other);
            }
        }
        entries.insert(key, answer);
    }

    /// Forgets the answer for `key` (its epoch moved).
    pub(super) fn forget(&self, key: &Key) {
        self.lock().remove(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Remembered>> {
        // Nothing panics while the lock is held; a poisoned map is still consistent.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for VerifiedSessions {
    fn default() -> Self {
        Self::new(Self::DEFAULT_TTL, Self::DEFAULT_CAPACITY)
    }
}

impl fmt::Debug for VerifiedSessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedSessions")
            .field("len", &self.len())
            .field("ttl", &self.ttl)
            .field("capacity", &self.capacity)
            .field("served", &self.served())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::Role;
    use crate::session::SessionStage;
    use procuhelp_core::UserId;

    fn answer(valid_until: OffsetDateTime) -> Remembered {
        Remembered {
            principal: SessionPrincipal {
                session: uuid::Uuid::now_v7(),
                user: UserId::from_uuid(uuid::Uuid::now_v7()).unwrap(),
                stage: SessionStage::Full,
                amr: vec!["pwd".into()],
                base_role: Role::ReadOnly,
                elevation: None,
                expired_elevations: Vec::new(),
            },
            epoch: 7,
            valid_until,
        }
    }

    fn key(n: u8) -> Key {
        Key {
            org: OrgId::from_uuid(uuid::Uuid::from_u128(1)).unwrap(),
            token_hash: [n; 32],
        }
    }

    #[test]
    fn an_answer_lasts_until_the_earlier_of_its_bound_and_the_ttl() {
        let now = OffsetDateTime::now_utc();
        let cache = VerifiedSessions::new(Duration::seconds(15), 10);
        cache.remember(key(1), answer(now + Duration::hours(1)), now);
        cache.remember(key(2), answer(now + Duration::seconds(5)), now);
        cache.remember(key(3), answer(now), now); // already over: not kept
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(&key(1), now).unwrap().epoch, 7);
        assert!(cache.get(&key(1), now + Duration::seconds(14)).is_some());
        assert!(cache.get(&key(1), now + Duration::seconds(15)).is_none());
        assert!(cache.get(&key(2), now + Duration::seconds(4)).is_some());
        assert!(cache.get(&key(2), now + Duration::seconds(5)).is_none());
        assert!(
            cache.is_empty(),
            "answers that ran out are dropped on sight"
        );
    }

    #[test]
    fn a_full_cache_drops_what_ran_out_first_then_makes_way() {
        let now = OffsetDateTime::now_utc();
        let cache = VerifiedSessions::new(Duration::seconds(15), 2);
        cache.remember(key(1), answer(now + Duration::seconds(1)), now);
        cache.remember(key(2), answer(now + Duration::seconds(10)), now);
        let later = now + Duration::seconds(2);
        cache.remember(key(3), answer(later + Duration::seconds(10)), later);
        assert!(cache.get(&key(3), later).is_some(), "room made from key 1");
        assert!(cache.get(&key(2), later).is_some());
        cache.remember(key(4), answer(later + Duration::seconds(10)), later);
        assert_eq!(cache.len(), 2, "full of live answers: one made way");
        assert!(cache.get(&key(4), later).is_some());
        cache.forget(&key(4));
        assert!(cache.get(&key(4), later).is_none());
        let off = VerifiedSessions::disabled();
        off.remember(key(1), answer(now + Duration::hours(1)), now);
        assert!(off.is_empty());
        assert!(!format!("{cache:?}").contains("token"));
    }
}
