//! The per-account connection cap (facts §7: 10 simultaneous connections
//! per user, 429 beyond). Every destination built for the same account (API
//! root and key) in this process shares one cap, so all their exports
//! together stay under it.
//!
//! Mailchimp counts a connection until it has finished the call, which may
//! be after audex stopped waiting: a call that timed out, or whose task was
//! dropped, keeps its place a while longer ([`Permit::hold_for`], and the
//! `abandon_hold` of a permit dropped mid-call).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use md5::{Digest, Md5};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// At most `size` calls in flight for one account.
#[derive(Debug)]
pub struct ConnectionCap {
    semaphore: Arc<Semaphore>,
    size: Mutex<usize>,
}

impl ConnectionCap {
    /// A cap of its own, shared with nobody (tests).
    pub fn new(size: usize) -> ConnectionCap {
        let size = size.max(1);
        ConnectionCap {
            semaphore: Arc::new(Semaphore::new(size)),
            size: Mutex::new(size),
        }
    }

    /// The cap of the account behind `root` and `key`, shared by everything
    /// in this process. A smaller `size` than the shared cap's tightens it;
    /// a larger one leaves it.
    pub fn shared(root: &str, key: &str, size: usize) -> Arc<ConnectionCap> {
        static REGISTRY: OnceLock<Mutex<HashMap<String, Arc<ConnectionCap>>>> = OnceLock::new();
        // The key is hashed: the registry never holds it.
        let account = format!("{root}#{}", hex::encode(Md5::digest(key.as_bytes())));
        let registry = REGISTRY.get_or_init(|| Mutex::new(HashMap::new()));
        let mut map = registry.lock().unwrap_or_else(|p| p.into_inner());
        let cap = map
            .entry(account)
            .or_insert_with(|| Arc::new(ConnectionCap::new(size)))
            .clone();
        cap.tighten(size);
        cap
    }

    fn tighten(&self, size: usize) {
        let size = size.max(1);
        let mut current = self.size.lock().unwrap_or_else(|p| p.into_inner());
        if size < *current {
            // Permits in use cannot be forgotten now; forget what is free
            // and keep the count of what was.
            let forgotten = self.semaphore.forget_permits(*current - size);
            *current -= forgotten;
        }
    }

    /// The calls allowed in flight at once.
    pub fn size(&self) -> usize {
        *self.size.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wait for a place. `abandon_hold`: how long the place stays taken
    /// when the permit is dropped before [`Permit::release`] (the caller's
    /// task was cancelled mid-call: Mailchimp may still be working on it).
    pub async fn acquire(&self, abandon_hold: Duration) -> Permit {
        // The semaphore is never closed, so acquiring cannot fail; were it
        // ever closed, the call goes ahead uncapped rather than failing.
        let permit = self.semaphore.clone().acquire_owned().await.ok();
        Permit {
            permit,
            hold: abandon_hold,
        }
    }
}

/// A place among the account's connections.
#[derive(Debug)]
pub struct Permit {
    permit: Option<OwnedSemaphorePermit>,
    hold: Duration,
}

impl Permit {
    /// The answer came back: the place is free at once.
    pub fn release(mut self) {
        self.permit.take();
    }

    /// Keep the place taken for `hold` more (a call that timed out on our
    /// side may still hold its connection at Mailchimp).
    pub fn hold_for(mut self, hold: Duration) {
        self.hold = hold;
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let Some(permit) = self.permit.take() else {
            return;
        };
        if self.hold.is_zero() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let hold = self.hold;
            runtime.spawn(async move {
                tokio::time::sleep(hold).await;
                drop(permit);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_released_place_is_free_at_once_and_a_held_one_later() {
        let cap = ConnectionCap::new(1);
        cap.acquire(Duration::from_secs(5)).await.release();
        let p = cap.acquire(Duration::from_secs(5)).await;
        p.hold_for(Duration::from_secs(3));
        let start = tokio::time::Instant::now();
        cap.acquire(Duration::ZERO).await.release();
        assert!(start.elapsed() >= Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_place_stays_taken_for_the_abandon_hold() {
        let cap = ConnectionCap::new(1);
        drop(cap.acquire(Duration::from_secs(2)).await);
        let start = tokio::time::Instant::now();
        cap.acquire(Duration::ZERO).await.release();
        assert!(start.elapsed() >= Duration::from_secs(2));
    }

    #[test]
    fn shared_per_account_and_tightened() {
        let a = ConnectionCap::shared("http://127.0.0.1:1/3.0", "k-us6", 10);
        let b = ConnectionCap::shared("http://127.0.0.1:1/3.0", "k-us6", 4);
        let c = ConnectionCap::shared("http://127.0.0.1:1/3.0", "other-us6", 10);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(a.size(), 4);
        assert_eq!(c.size(), 10);
    }
}
