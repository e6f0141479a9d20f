//! An in-memory replay cache, for tests and single-process tools.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use time::OffsetDateTime;

use super::error::SamlError;
use super::response::VerifiedAssertion;

/// Remembers assertion IDs until they expire, refusing a second use.
///
/// Servers keep this in the database instead (a table keyed by assertion ID with its
/// `not_on_or_after`, insert-or-fail), so that every instance sees every use.
#[derive(Debug, Default)]
pub struct ReplayCache {
    seen: Mutex<HashMap<String, OffsetDateTime>>,
}

impl ReplayCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the assertion's ID; [`SamlError::Replayed`] if it is already recorded and
    /// not yet expired. Expired entries are dropped on the way.
    pub fn check_and_insert(
        &self,
        assertion: &VerifiedAssertion,
        now: OffsetDateTime,
    ) -> Result<(), SamlError> {
        // A panic elsewhere while holding the lock leaves a consistent map (insert and
        // retain are not interrupted half-way), so poisoning is ignored.
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.retain(|_, until| *until > now);
        if seen.contains_key(&assertion.assertion_id) {
            return Err(SamlError::Replayed);
        }
        seen.insert(assertion.assertion_id.clone(), assertion.not_on_or_after);
        Ok(())
    }
}
