//! When the pipeline signs a checkpoint of a chain.

use std::time::Duration;

use crate::{AuditError, Result};

/// When a chain that received events gets its next signed checkpoint: after
/// [`events`](Self::events) events, or once its oldest unsigned event is
/// [`interval`](Self::interval) old (by the pipeline's clock), whichever comes first.
///
/// The interval bounds how long an event stays covered by no signature — the window in
/// which whoever holds the database could rewrite it unseen by a verifier that pins the
/// key; the event count bounds how many events that can be.
///
/// ```
/// use std::time::Duration;
/// use procuhelp_audit::CheckpointSchedule;
///
/// let schedule = CheckpointSchedule::every(Duration::from_secs(300)).and_every_events(1000);
/// assert_eq!(schedule.events(), Some(1000));
/// assert_eq!(CheckpointSchedule::default().interval(), Some(Duration::from_secs(600)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointSchedule {
    events: Option<u64>,
    interval: Option<Duration>,
}

impl Default for CheckpointSchedule {
    /// Every ten minutes, or every 10,000 events of a chain.
    fn default() -> Self {
        Self {
            events: Some(10_000),
            interval: Some(Duration::from_secs(600)),
        }
    }
}

impl CheckpointSchedule {
    /// Once a chain's oldest unsigned event is `interval` old.
    pub fn every(interval: Duration) -> Self {
        Self {
            events: None,
            interval: Some(interval),
        }
    }

    /// After every `n` events of a chain.
    pub fn every_events(n: u64) -> Self {
        Self {
            events: Some(n),
            interval: None,
        }
    }

    /// Also after every `n` events of a chain.
    #[must_use]
    pub fn and_every_events(mut self, n: u64) -> Self {
        self.events = Some(n);
        self
    }

    /// Also once a chain's oldest unsigned event is `interval` old.
    #[must_use]
    pub fn and_every(mut self, interval: Duration) -> Self {
        self.interval = Some(interval);
        self
    }

    /// The event count that triggers a checkpoint.
    pub fn events(&self) -> Option<u64> {
        self.events
    }

    /// The age of the oldest unsigned event that triggers a checkpoint.
    pub fn interval(&self) -> Option<Duration> {
        self.interval
    }

    /// A zero count or interval would sign on every event (or spin): refused.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.events == Some(0) || self.interval.is_some_and(|i| i.is_zero()) {
            return Err(AuditError::Invalid {
                field: "checkpoint_schedule",
                reason: "a checkpoint count or interval must not be zero",
            });
        }
        Ok(())
    }

    /// How often the background task looks for due chains: a tenth of the interval,
    /// between 10 ms and 1 s (the clock is injected, so the task polls it).
    pub(crate) fn tick(&self) -> Duration {
        self.interval.map_or(Duration::from_secs(1), |i| {
            (i / 10).clamp(Duration::from_millis(10), Duration::from_secs(1))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_refused_and_the_tick_is_bounded() {
        assert!(CheckpointSchedule::every_events(0).validate().is_err());
        assert!(
            CheckpointSchedule::every(Duration::ZERO)
                .validate()
                .is_err()
        );
        assert!(CheckpointSchedule::default().validate().is_ok());
        assert_eq!(
            CheckpointSchedule::every(Duration::from_secs(3600)).tick(),
            Duration::from_secs(1)
        );
        assert_eq!(
            CheckpointSchedule::every(Duration::from_millis(20)).tick(),
            Duration::from_millis(10)
        );
        assert_eq!(
            CheckpointSchedule::every_events(5).tick(),
            Duration::from_secs(1)
        );
    }
}
