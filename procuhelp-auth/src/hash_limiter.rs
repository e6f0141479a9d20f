//! A bound on concurrent password hashing.
//!
//! Argon2id with the default parameters takes 19 MiB and a core for tens of
//! milliseconds. Without a bound, every sign-in request (even for an unknown
//! organisation, which is verified against a dummy hash for enumeration resistance)
//! starts one more blocking job: a burst of 512 requests asks for 512 × 19 MiB and
//! every core. The limiter admits as many hashes as the machine has cores (by
//! default); a request that cannot get a permit within a short wait is refused at once
//! with [`AuthError::Busy`] (the server answers 503 with `Retry-After`), so the work
//! in flight, its memory and the queue of waiters are all bounded.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! use std::time::Duration;
//! use procuhelp_auth::{AuthError, hash_limiter::HashLimiter};
//!
//! let limiter = HashLimiter::new(1, Duration::ZERO);
//! let held = limiter.acquire().await?;
//! assert!(matches!(limiter.acquire().await, Err(AuthError::Busy { .. })));
//! drop(held);
//! assert!(limiter.acquire().await.is_ok());
//! # Ok::<(), AuthError>(()) }).unwrap();
//! ```

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{AuthError, AuthResult};

/// How long a refused request is told to wait before trying again.
const RETRY_AFTER: time::Duration = time::Duration::seconds(1);

/// The default wait for a permit: a few hashes' time, so that a short burst of
/// legitimate sign-ins (everyone arriving at nine) is served, not refused.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_millis(200);

/// Admits at most `permits` password hashes at a time (see the module docs).
#[derive(Debug, Clone)]
pub struct HashLimiter {
    permits: Arc<Semaphore>,
    size: usize,
    max_wait: Duration,
}

/// Permission to run one password hash. Move it into the blocking task that hashes, so
/// the permit is held until the hash is done even if the request is abandoned.
#[derive(Debug)]
pub struct HashPermit {
    _permit: OwnedSemaphorePermit,
}

impl Default for HashLimiter {
    /// As many permits as the machine has cores ([`std::thread::available_parallelism`]),
    /// and [`DEFAULT_MAX_WAIT`].
    fn default() -> Self {
        Self::for_machine(DEFAULT_MAX_WAIT)
    }
}

impl HashLimiter {
    /// A limiter with `permits` concurrent hashes (at least one) and at most `max_wait`
    /// of waiting for a permit.
    pub fn new(permits: usize, max_wait: Duration) -> Self {
        let size = permits.max(1);
        Self {
            permits: Arc::new(Semaphore::new(size)),
            size,
            max_wait,
        }
    }

    /// One permit per core of this machine.
    pub fn for_machine(max_wait: Duration) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Self::new(cores, max_wait)
    }

    /// How many hashes may run at once.
    pub fn size(&self) -> usize {
        self.size
    }

    /// A permit, waiting at most the configured time; [`AuthError::Busy`] otherwise.
    pub async fn acquire(&self) -> AuthResult<HashPermit> {
        let busy = || AuthError::Busy {
            retry_after: RETRY_AFTER,
        };
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Ok(HashPermit { _permit: permit });
        }
        if self.max_wait.is_zero() {
            return Err(busy());
        }
        match tokio::time::timeout(self.max_wait, self.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(HashPermit { _permit: permit }),
            // Timed out, or the semaphore was closed (never done here).
            _ => Err(busy()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_a_bounded_time_then_refuses() {
        let limiter = HashLimiter::new(2, Duration::from_millis(50));
        assert_eq!(limiter.size(), 2);
        let a = limiter.acquire().await.unwrap();
        let _b = limiter.acquire().await.unwrap();
        let t = std::time::Instant::now();
        let refused = limiter.acquire().await;
        assert!(
            matches!(refused, Err(AuthError::Busy { retry_after }) if retry_after >= RETRY_AFTER)
        );
        assert!(t.elapsed() < Duration::from_millis(500));
        // A permit released during the wait is handed over.
        let waiter = {
            let limiter = limiter.clone();
            tokio::spawn(async move { limiter.acquire().await.map(|_| ()) })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        drop(a);
        assert!(waiter.await.unwrap().is_ok());
    }

    #[test]
    fn at_least_one_permit() {
        assert_eq!(HashLimiter::new(0, Duration::ZERO).size(), 1);
        assert!(HashLimiter::default().size() >= 1);
    }
}
