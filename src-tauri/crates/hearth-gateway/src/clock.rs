//! The gateway's "now" for reminders and for the time a turn's context carries. The system
//! clock in production; tests hold a manual one and move it forward, so "8:00 tomorrow" is a
//! call away rather than a night. Spend periods and the inbox keep the system clock.
//!
//! A manual clock also answers the question a test asks after moving it: has every task that
//! waits on the clock looked at the new time? ([`Clock::settled`]). Without that a test can only
//! show that nothing happened at 07:59 by waiting a while and seeing nothing — a sleep that is
//! too short on a loaded machine and wasted time on an idle one.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use tokio::sync::watch;

/// A cheap-to-clone clock; every clone is the same clock.
#[derive(Clone, Default)]
pub struct Clock {
    /// `None`: the system clock. `Some`: a manual time that moves only when told.
    manual: Option<Arc<Manual>>,
}

struct Manual {
    /// The time and how many times it was set; wakes every [`Watch`].
    time: watch::Sender<(u64, DateTime<Utc>)>,
    /// Per live [`Watch`]: the newest version its task finished looking at (`None` before its
    /// first look). What [`Clock::settled`] waits on.
    looked: Mutex<HashMap<u64, Option<u64>>>,
    /// Bumped whenever `looked` changes, to wake [`Clock::settled`].
    looked_changed: watch::Sender<()>,
    next_watch: AtomicU64,
}

impl Manual {
    fn update_looked(&self, f: impl FnOnce(&mut HashMap<u64, Option<u64>>)) {
        // The map is plain data: a panic elsewhere while it was held leaves it usable.
        f(&mut self.looked.lock().unwrap_or_else(PoisonError::into_inner));
        self.looked_changed.send_replace(());
    }
}

impl Clock {
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock standing at `start` until [`Clock::set`] or [`Clock::advance`] moves it.
    pub fn manual(start: DateTime<Utc>) -> Self {
        Self {
            manual: Some(Arc::new(Manual {
                time: watch::channel((0, start)).0,
                looked: Mutex::default(),
                looked_changed: watch::channel(()).0,
                next_watch: AtomicU64::new(0),
            })),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        match &self.manual {
            Some(m) => m.time.borrow().1,
            None => Utc::now(),
        }
    }

    pub fn is_manual(&self) -> bool {
        self.manual.is_some()
    }

    /// Moves a manual clock to `to` (the system clock cannot be moved; this does nothing there).
    pub fn set(&self, to: DateTime<Utc>) {
        if let Some(m) = &self.manual {
            m.time.send_modify(|(version, time)| {
                *version += 1;
                *time = to;
            });
        }
    }

    pub fn advance(&self, by: chrono::Duration) {
        self.set(self.now() + by);
    }

    /// For tests: resolves once at least one task waits on this manual clock and every such task
    /// has looked at its current time and done what that time asked (the reminder schedule, for
    /// one, has committed and handed over whatever came due) and is waiting again. What happens
    /// after that is no longer the clock's doing, so a test can check that something did *not*
    /// come due without sleeping. Never resolves while no gateway runs on the clock; the system
    /// clock is always settled.
    pub async fn settled(&self) {
        let Some(m) = &self.manual else { return };
        let mut changes = m.looked_changed.subscribe();
        loop {
            let version = m.time.borrow().0;
            let done = {
                let looked = m.looked.lock().unwrap_or_else(PoisonError::into_inner);
                !looked.is_empty() && looked.values().all(|v| v.is_some_and(|v| v >= version))
            };
            if done {
                return;
            }
            // The sender lives in `m`, which this borrow keeps alive.
            let _ = changes.changed().await;
        }
    }

    /// A handle whose [`Watch::changed`] resolves when a manual clock moves; `None` for the
    /// system one, which never does.
    pub(crate) fn watch(&self) -> Option<Watch> {
        let m = self.manual.as_ref()?;
        let rx = m.time.subscribe();
        let seen = rx.borrow().0;
        let id = m.next_watch.fetch_add(1, Ordering::Relaxed);
        m.update_looked(|looked| {
            looked.insert(id, None);
        });
        Some(Watch { manual: m.clone(), rx, id, seen })
    }
}

/// A task's view of a manual clock. Its owner reads [`Clock::now`], acts on it, and then awaits
/// [`Watch::changed`] — which is when it counts as having looked at that time.
pub(crate) struct Watch {
    manual: Arc<Manual>,
    rx: watch::Receiver<(u64, DateTime<Utc>)>,
    id: u64,
    /// The clock's version when `changed` last returned (or at subscription): the owner has read
    /// the time since then, so by its next `changed` it has acted on at least this version.
    seen: u64,
}

impl Watch {
    /// Resolves when the clock moves; until then the owner counts as having looked at the time.
    pub(crate) async fn changed(&mut self) -> Result<(), watch::error::RecvError> {
        let (id, seen) = (self.id, self.seen);
        self.manual.update_looked(|looked| {
            looked.insert(id, Some(seen));
        });
        self.rx.changed().await?;
        self.seen = self.rx.borrow_and_update().0;
        Ok(())
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let id = self.id;
        self.manual.update_looked(|looked| {
            looked.remove(&id);
        });
    }
}

/// Waits until it is time to look at the clock again: `sleep` on the system clock (`None`: never
/// by itself), or until a manual clock moves (`moved`, the task's [`Watch`]) — for a task that
/// selects this beside its other inputs. A manual clock's watch is always awaited, so a test's
/// [`Clock::settled`] sees the task look.
pub(crate) async fn next_look(moved: Option<&mut Watch>, sleep: Option<std::time::Duration>) {
    let timer = async {
        match sleep {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    let clock_moved = async {
        match moved {
            Some(w) => {
                if w.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = timer => {}
        _ = clock_moved => {}
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.manual {
            Some(_) => write!(f, "Clock::manual({})", self.now()),
            None => f.write_str("Clock::system"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    /// Every time a waiter read.
    type Seen = Arc<Mutex<Vec<DateTime<Utc>>>>;

    /// A waiter that reads the clock after each move and records what it saw.
    fn waiter(clock: &Clock) -> (tokio::task::JoinHandle<()>, Seen) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (clock, log) = (clock.clone(), seen.clone());
        let mut watch = clock.watch().unwrap();
        let task = tokio::spawn(async move {
            loop {
                log.lock().unwrap().push(clock.now());
                if watch.changed().await.is_err() {
                    return;
                }
            }
        });
        (task, seen)
    }

    #[tokio::test]
    async fn settled_means_every_waiter_has_acted_on_the_time_it_was_set_to() {
        let clock = Clock::manual(at("2026-11-21T20:00:00Z"));
        let (task, seen) = waiter(&clock);
        clock.settled().await;
        assert_eq!(*seen.lock().unwrap(), [at("2026-11-21T20:00:00Z")]);
        clock.set(at("2026-11-22T07:59:59Z"));
        clock.settled().await;
        assert_eq!(seen.lock().unwrap().last(), Some(&at("2026-11-22T07:59:59Z")));
        // Two moves in a row may be seen as one, but settling waits for the last.
        clock.advance(chrono::Duration::seconds(1));
        clock.advance(chrono::Duration::minutes(30));
        clock.settled().await;
        assert_eq!(seen.lock().unwrap().last(), Some(&at("2026-11-22T08:30:00Z")));
        task.abort();
    }

    /// Whether `settled` is ready at the first look (a zero timeout polls the future once).
    async fn settled_now(clock: &Clock) -> bool {
        tokio::time::timeout(Duration::ZERO, clock.settled()).await.is_ok()
    }

    #[tokio::test]
    async fn a_clock_nobody_waits_on_is_not_settled_and_the_system_clock_always_is() {
        let clock = Clock::manual(at("2026-11-21T20:00:00Z"));
        assert!(!settled_now(&clock).await);
        // A waiter that went away (a stopped gateway) no longer counts.
        let (task, _) = waiter(&clock);
        clock.settled().await;
        assert!(settled_now(&clock).await);
        task.abort();
        let _ = task.await;
        assert!(!settled_now(&clock).await);
        assert!(settled_now(&Clock::system()).await);
    }
}
