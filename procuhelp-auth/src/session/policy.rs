//! Idle and absolute session lifetimes, decided with an injected clock.

use time::{Duration, OffsetDateTime};

use super::SessionError;

/// Idle and absolute lifetimes.
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    /// Longest gap between two requests.
    pub idle: Duration,
    /// Longest life of a session whatever its use.
    pub absolute: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle: Duration::minutes(30),
            absolute: Duration::hours(12),
        }
    }
}

impl SessionPolicy {
    /// Whether a session created at `created` and last seen at `last_seen` is valid `now`.
    pub fn check(
        &self,
        created: OffsetDateTime,
        last_seen: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), SessionError> {
        if now - created >= self.absolute {
            return Err(SessionError::AbsoluteExpired);
        }
        if now - last_seen >= self.idle {
            return Err(SessionError::IdleExpired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use procuhelp_core::{Clock, ManualClock};
    use time::macros::datetime;

    #[test]
    fn idle_and_absolute_expiry_with_an_injected_clock() {
        let clock = ManualClock::new(datetime!(2026-11-25 08:00 UTC));
        let policy = SessionPolicy::default();
        let created = clock.now();
        let mut last_seen = created;
        // Active use every 20 minutes keeps it alive... until the absolute limit.
        for _ in 0..35 {
            clock.advance(Duration::minutes(20));
            policy.check(created, last_seen, clock.now()).unwrap();
            last_seen = clock.now();
        }
        clock.advance(Duration::minutes(20));
        assert_eq!(
            policy.check(created, last_seen, clock.now()),
            Err(SessionError::AbsoluteExpired)
        );
        // Idle for 30 minutes: expired.
        let fresh = clock.now();
        clock.advance(Duration::minutes(30));
        assert_eq!(
            policy.check(fresh, fresh, clock.now()),
            Err(SessionError::IdleExpired)
        );
    }
}
