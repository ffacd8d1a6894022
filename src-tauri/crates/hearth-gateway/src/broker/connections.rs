//! The bound on provider calls open at once across the household (issue 16): every call the
//! broker makes — a chat completion (its stream), a transcription, a spoken reply — holds one
//! [`Slot`] from just before it reaches the provider until it is answered (retries included).
//!
//! Waiting on the provider costs no turn slot (`core/lanes.rs`), so without this bound 200
//! members writing at once would open 200 streams; the admin may want fewer (a local model
//! server that takes four at a time, a provider's concurrency limit). A call waiting for a slot is
//! still "waiting on the provider": it holds no turn slot either, and calls get slots in the
//! order they asked (tokio's semaphore is fair).
//!
//! The bound is the household setting `provider.max_connections` (`hearth provider connections
//! N`), [`DEFAULT_MAX_CONNECTIONS`] when never set: high enough that 200 members at once are all
//! answered in one go. A lower bound takes effect as calls finish (none is cut off); a higher one
//! at once.

use std::sync::Arc;

use parking_lot::Mutex;
use rusqlite::Connection;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::store::{self, StoreError};

/// The household setting the bound is stored as.
pub(crate) const SETTING_MAX_CONNECTIONS: &str = "provider.max_connections";

/// The bound when the admin never set one.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 256;

/// The highest bound the admin may set.
pub const MAX_MAX_CONNECTIONS: u32 = 10_000;

/// The slots: a fair semaphore, and the bound it stands for.
pub(crate) struct Connections {
    slots: Arc<Semaphore>,
    /// The bound, and how many slots still in use are to be forgotten when they come back (after
    /// the bound was lowered below what was in use): the semaphore holds `max + owed` permits.
    bound: Arc<Mutex<Bound>>,
}

#[derive(Debug, Clone, Copy)]
struct Bound {
    max: u32,
    owed: u32,
}

/// One open provider call; its slot comes back when this is dropped.
pub(crate) struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    bound: Arc<Mutex<Bound>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(permit) = self.permit.take() else { return };
        let mut bound = self.bound.lock();
        if bound.owed > 0 {
            bound.owed -= 1;
            permit.forget();
        } else {
            // Back to the semaphore under the lock, so `set_max` never sees it half returned.
            drop(permit);
        }
    }
}

impl Connections {
    pub(crate) fn new(max: u32) -> Self {
        let max = max.clamp(1, MAX_MAX_CONNECTIONS);
        Self { slots: Arc::new(Semaphore::new(max as usize)), bound: Arc::new(Mutex::new(Bound { max, owed: 0 })) }
    }

    /// Waits for a slot (in the order calls asked).
    pub(crate) async fn open(&self) -> Slot {
        // The semaphore is never closed, so acquiring cannot fail.
        let permit = self.slots.clone().acquire_owned().await.ok();
        Slot { permit, bound: self.bound.clone() }
    }

    /// The bound in force.
    pub(crate) fn max(&self) -> u32 {
        self.bound.lock().max
    }

    /// Calls holding a slot now (more than the bound for a while after it was lowered).
    pub(crate) fn open_now(&self) -> u32 {
        let bound = self.bound.lock();
        (bound.max + bound.owed).saturating_sub(self.slots.available_permits() as u32)
    }

    /// A new bound (1..=[`MAX_MAX_CONNECTIONS`]): raised at once; lowered by taking free slots
    /// away now and the rest as calls finish.
    pub(crate) fn set_max(&self, max: u32) {
        let max = max.clamp(1, MAX_MAX_CONNECTIONS);
        let mut bound = self.bound.lock();
        if max > bound.max {
            let more = max - bound.max;
            let repaid = more.min(bound.owed);
            bound.owed -= repaid;
            self.slots.add_permits((more - repaid) as usize);
        } else {
            let fewer = bound.max - max;
            let taken = self.slots.forget_permits(fewer as usize) as u32;
            bound.owed += fewer - taken;
        }
        bound.max = max;
    }
}

/// The stored bound, or the default.
pub(crate) fn load_max(conn: &Connection) -> Result<u32, StoreError> {
    Ok(store::get_setting(conn, SETTING_MAX_CONNECTIONS)?
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|n| (1..=MAX_MAX_CONNECTIONS).contains(n))
        .unwrap_or(DEFAULT_MAX_CONNECTIONS))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn opens_now(c: &Connections) -> bool {
        tokio::time::timeout(Duration::from_millis(20), c.open()).await.is_ok()
    }

    #[tokio::test]
    async fn no_more_than_the_bound_are_open_and_a_change_takes_effect() {
        let c = Connections::new(2);
        let (a, b) = (c.open().await, c.open().await);
        assert_eq!(c.open_now(), 2);
        assert!(!opens_now(&c).await, "a third waits");
        drop(a);
        let a = c.open().await;

        // Lowered below what is open: nobody is cut off, and the slots coming back are not reused
        // until the count is under the new bound.
        c.set_max(1);
        assert_eq!((c.max(), c.open_now()), (1, 2));
        drop(a);
        assert_eq!(c.open_now(), 1);
        assert!(!opens_now(&c).await, "still at the bound");
        drop(b);
        assert_eq!(c.open_now(), 0);
        let a = c.open().await;
        assert!(!opens_now(&c).await, "one at a time now");

        // Raised: at once.
        c.set_max(3);
        let (b, d) = (c.open().await, c.open().await);
        assert_eq!(c.open_now(), 3);
        assert!(!opens_now(&c).await);
        drop((a, b, d));
        assert_eq!(c.open_now(), 0);
    }

    #[tokio::test]
    async fn raising_after_lowering_repays_what_was_owed_first() {
        let c = Connections::new(4);
        let open: Vec<Slot> = vec![c.open().await, c.open().await, c.open().await];
        c.set_max(1); // one free slot taken now, two owed
        c.set_max(2); // one owed forgiven, none added
        assert_eq!(c.open_now(), 3);
        drop(open);
        assert_eq!(c.open_now(), 0);
        let (_a, _b) = (c.open().await, c.open().await);
        assert!(!opens_now(&c).await, "the bound is 2");
        assert_eq!(c.max(), 2);
    }

    #[test]
    fn out_of_range_bounds_are_kept_in_range() {
        assert_eq!(Connections::new(0).max(), 1);
        assert_eq!(Connections::new(u32::MAX).max(), MAX_MAX_CONNECTIONS);
    }
}
